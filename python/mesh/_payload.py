"""The bytes of a Python job: the code blob, the task list, task payloads, and results.

The node never looks inside these: ``_worker.py`` reads what this module writes, and
this module reads what the worker answers. The formats (kept in step with
``_worker.py``; ``FORMAT`` changes when they do):

* **code blob**: ``b"MESHPY"``, one format byte (``FORMAT``), then a pickle (protocol 4)
  of a dict; its keys are listed in ``_worker.decode_code``.
* **task list** (``docs/python.md``): for each task, a 4-byte big-endian length and the
  task's payload.
* **task payload**: a pickle (protocol 4) of ``("call", fn, args, kwargs)`` or
  ``("map", fn, [args, ...])`` for ``Executor``; of the args tuple for ``mesh.pp``.
* **result** of a task that returned: a pickle of the value (a list for a ``map``
  chunk); of one that raised: a pickle of ``{"exc": bytes | None, "type": str,
  "message": str, "traceback": str}``.

Protocol 4 keeps jobs readable by every Python from 3.4 on, so that a node with an older
Python than the submitter's runs the job, or says precisely why it cannot.
"""

import base64
import io
import os
import pickle
import platform
import struct
import sys

from ._errors import MeshError, RemoteError, RemoteTraceback

MAGIC = b"MESHPY"
FORMAT = 1
PROTOCOL = 4
MAX_BLOB = 64 << 20
_LEN = struct.Struct(">I")


def code_blob(mode, pickler="pickle", main=None, files=(), imports=(), froms=(), sources=(),
              classes=(), call=None, init=None, argv=None):
    """The code blob (see the module doc). The same inputs give the same bytes, so the
    same code has the same id and stays loaded in warm workers across jobs."""
    spec = {
        "python": platform.python_version(),
        "mode": mode,
        "pickler": pickler,
        "argv": list(argv if argv is not None else sys.argv),
        "main": main,
        "files": [(str(p), bytes(b)) for p, b in files],
        "imports": list(imports),
        "froms": [tuple(f) for f in froms],
        "sources": [(str(f), int(n), str(t)) for f, n, t in sources],
        "classes": [tuple(c) for c in classes],
        "call": call,
        "init": init,
    }
    blob = MAGIC + bytes([FORMAT]) + pickle.dumps(spec, protocol=PROTOCOL)
    if len(blob) > MAX_BLOB:
        raise MeshError(
            "the job's code is %d MiB; at most %d MiB travel (send fewer or smaller files)"
            % (len(blob) >> 20, MAX_BLOB >> 20)
        )
    return blob


def task_list(payloads):
    """The task list blob: each payload behind its 4-byte big-endian length."""
    out = bytearray()
    for p in payloads:
        out += _LEN.pack(len(p))
        out += p
    return bytes(out)


def split_task_list(data):
    """The payloads of a task list (the inverse of ``task_list``; for tests and fakes)."""
    out, at = [], 0
    while at < len(data):
        (n,) = _LEN.unpack_from(data, at)
        out.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return out


def dumps(obj, pickler=None):
    """A payload: ``pickler`` is the cloudpickle module, or None for pickle."""
    if pickler is not None:
        return pickler.dumps(obj, protocol=PROTOCOL)
    return pickle.dumps(obj, protocol=PROTOCOL)


def value_bytes(ok, node):
    """The result bytes of a ``pytask`` line's ``ok``: inline (base64) or a blob."""
    if ok.get("value") is not None:
        return base64.b64decode(ok["value"])
    if ok.get("blob"):
        return node.read_blob(ok["blob"], ok.get("len"))
    raise MeshError("the node sent a result with neither a value nor a blob")


class _Unpickler(pickle.Unpickler):
    """Reads results: the worker's ``__mp_main__`` is this process's ``__main__``, and
    classes a ``mesh.pp`` job shipped as source come back as the local ones."""

    def __init__(self, data, shipped=None):
        pickle.Unpickler.__init__(self, io.BytesIO(data))
        self._shipped = shipped or {}

    def find_class(self, module, name):
        if module == "__mp_main__":
            module = "__main__"
        try:
            return pickle.Unpickler.find_class(self, module, name)
        except AttributeError:
            found = self._shipped.get(name)
            if found is not None and module == "__main__":
                return found
            raise


def loads(data, shipped=None):
    return _Unpickler(data, shipped).load()


def decode_raised(data, node=None, shipped=None):
    """The exception a task raised, rebuilt here with the remote traceback as its
    ``__cause__``; a ``RemoteError`` when it cannot be rebuilt."""
    record = pickle.loads(data)
    tb = record.get("traceback") or ""
    exc = None
    if record.get("exc") is not None:
        try:
            exc = loads(record["exc"], shipped)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        return RemoteError(record.get("type", "?"), record.get("message", ""), tb, node)
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def raised_text(data):
    """The traceback text of a raised result (``mesh.pp`` prints it)."""
    try:
        record = pickle.loads(data)
        return record.get("traceback") or "%s: %s\n" % (record.get("type"), record.get("message"))
    except Exception as e:
        return "(the task raised, and its traceback could not be read: %s)\n" % e


def refuse_while_loading_main(what):
    """Raises when a mesh worker is loading the user's main script (module
    ``__mp_main__``): a pool created at the top level of a script, outside
    ``if __name__ == '__main__':``, would otherwise submit jobs again from every worker,
    as multiprocessing's spawn refuses to do."""
    if getattr(sys, "_mesh_loading_main", False):
        raise RuntimeError(
            "%s ran while a mesh worker loaded your main script: create it only under "
            "`if __name__ == '__main__':` (the worker loads the script's top level as module "
            "__mp_main__)" % what
        )


def main_module():
    """How the user's ``__main__`` travels, as multiprocessing's spawn does it:
    ``(main, pickler)``.

    * a script file: its source and path; the worker runs it as ``__mp_main__`` (so an
      ``if __name__ == '__main__':`` guard keeps the script's body from running there)
      and functions in it pickle by reference to ``__main__``;
    * ``python -m pkg.mod``: the module name (it must be importable on the nodes);
    * no file (an interactive session, ``python -c``): nothing, and functions defined
      there travel by value with cloudpickle when it is installed here (and on the nodes).
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name:
        if name == "__main__" or name.endswith(".__main__"):
            return None, "pickle"  # a package's __main__ (python -m unittest): never rerun
        return {"module": name}, "pickle"
    path = getattr(main, "__file__", None)
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            source = f.read()
        return {"path": os.path.abspath(path), "source": source}, "pickle"
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return None, "pickle"
    return None, "cloudpickle"


def gather_files(paths):
    """``(relative path, bytes)`` for each file to send: a file goes under its base
    name, a directory (a package) with its files under its base name, without caches."""
    out = []
    for given in paths:
        path = os.path.abspath(os.fspath(given))
        base = os.path.basename(path.rstrip(os.sep))
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out.append((base, f.read()))
        elif os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
                for name in sorted(files):
                    if name.endswith((".pyc", ".pyo")):
                        continue
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, os.path.dirname(path)).replace(os.sep, "/")
                    with open(full, "rb") as f:
                        out.append((rel, f.read()))
        else:
            raise ValueError("send=: %s is neither a file nor a directory" % given)
    return out
