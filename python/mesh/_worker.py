"""mesh's warm Python worker: runs the Python tasks a node hands it, over frames.

The node embeds this file in its binary and starts it as ``python3 worker-<hash>.py`` in
the worker's own directory (``<home>/run/<pid>/py-<slot>``), on machines where the
``mesh`` package is *not* installed. So this file is self-contained: standard library
only, nothing from the ``mesh`` package, and syntax old Pythons parse (3.6 and newer), so
that a node with an old Python can still say *why* it cannot run a job instead of dying
with a SyntaxError of its own.

Frames (``docs/python.md``, "The worker frames"): one kind byte, a 4-byte big-endian
length, then that many bytes, on the worker's original stdin (node -> worker) and stdout
(worker -> node).

* ``T``: a 32-byte code id, then a task's payload. The worker answers ``N`` (empty) when
  it has not loaded that code; the node then sends ``C`` and the same ``T`` again.
* ``C``: a 32-byte code id, then the code blob. Loading runs the job's initializer once.
* ``R``: 1 status byte (0 returned, 1 raised, 2 failed to set up), a 4-byte big-endian
  length and the result bytes, then what the task printed (UTF-8) to the end.

The code blob, task payloads and result bytes are the package's private format; the
package (``mesh/_payload.py``) writes what this file reads. See ``decode_code`` and
``Code.prepare`` below for the exact layout.

Invariants:

* The worker ends soon after the node that started it dies, even in the middle of a task
  (``die_with_parent``: a thread watches the parent process), and lives as long as the
  node does, whichever of its threads started it.
* ``import mesh`` works on a node without the mesh package (``MeshStub``): a user's main
  script imports it at the top level, and the worker loads that top level.

* The frame channel stays clean: the original stdin and stdout are duplicated for frames,
  then fd 0 becomes /dev/null and fds 1 and 2 the file ``worker.log``, so nothing a task
  writes, not even from C code or a child process, reaches the node's pipe.
* At most ``MAX_CODES`` codes stay loaded (least recently used goes first), and at most
  ``MAX_FAILED`` remembered load failures: the worker's memory stays bounded.
* Only user errors are answered with status 1; anything about the node (a module it
  lacks, a pickle its Python cannot read, source it cannot compile) is status 2 with a
  message that names the cause, so the node can retry the task elsewhere. A task whose
  own code fails to import a module that is not installed here is status 2 as well: the
  same call may well run on a node that has it.
"""

import collections
import importlib
import io
import linecache
import os
import pickle
import platform
import re
import shutil
import struct
import sys
import threading
import time
import traceback
import types

MAGIC = b"MESHPY"
# The code blob format this worker reads; the package writes the same number.
FORMAT = 1
PROTOCOL = 4

RETURNED, RAISED, SETUP_FAILED = 0, 1, 2
# What a task printed that travels back; the rest is cut, with a note saying so.
OUTPUT_LIMIT = 64 * 1024
MAX_CODES = 4
MAX_FAILED = 16
# The largest frame the node may send: a 64 MiB blob plus its header, with room to spare.
MAX_FRAME = (64 << 20) + (1 << 20)
# worker.log is emptied when it grows past this (checked after each task).
LOG_LIMIT = 8 << 20
# Exit status when the node breaks the protocol (a frame of an unknown kind, too large).
EXIT_PROTOCOL = 3
# Exit status when the node that started this worker died.
EXIT_ORPHANED = 4
# Seconds between looks whether the node is still alive (see die_with_parent).
PARENT_POLL = 0.5

_HERE = sys._getframe().f_code.co_filename
_HEADER = struct.Struct(">BI")
_LEN = struct.Struct(">I")


class SetupError(Exception):
    """The task cannot be set up on this node; the message tells the user why."""


def python_version():
    return platform.python_version()


# ---------------------------------------------------------------------------------------
# The frame channel


class Channel(object):
    """Frames over two file descriptors, the node's pipes."""

    def __init__(self, rfd, wfd):
        self._r = io.open(rfd, "rb", buffering=1 << 16)
        self._w = io.open(wfd, "wb", buffering=1 << 16)

    def read(self):
        """The next frame as ``(kind, payload)``, or None when the node closed the pipe."""
        head = self._r.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack(head)
        if length > MAX_FRAME:
            raise ProtocolError("a frame of %d bytes (at most %d)" % (length, MAX_FRAME))
        payload = self._r.read(length) if length else b""
        if len(payload) < length:
            return None
        return kind, payload

    def write(self, kind, *parts):
        length = sum(len(p) for p in parts)
        self._w.write(_HEADER.pack(kind, length))
        for p in parts:
            self._w.write(p)
        self._w.flush()


class ProtocolError(Exception):
    """The node sent something this worker cannot take."""


def take_channel():
    """Keeps the original stdin and stdout for frames and points fds 0, 1 and 2 away.

    ``os.dup`` gives descriptors that child processes do not inherit. Afterwards fd 0 is
    /dev/null and fds 1 and 2 append to ``worker.log`` in the current directory, so that
    C-level output (a library's printf, a child process) can never corrupt a frame.
    """
    rfd = os.dup(0)
    wfd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open("worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return Channel(rfd, wfd)


def die_with_parent(interval=PARENT_POLL):
    """Ends this worker (``os._exit``) soon after the node that started it dies, even in
    the middle of a task.

    A daemon thread looks every ``interval`` seconds whether the parent *process* is
    still the one that started the worker (a dead node's children are reparented to init
    or a subreaper). Between tasks the closed frame pipe ends the worker as well.

    Not ``prctl(PR_SET_PDEATHSIG)``: Linux sends that signal when the *thread* that
    forked the worker exits, not its process, so a node (or a test) that starts workers
    from short-lived threads would see its warm workers killed while idle.
    """
    parent = os.getppid()
    if parent == 1:  # started by init, or the node is already gone: nothing to watch
        return None

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(EXIT_ORPHANED)

    t = threading.Thread(target=watch, name="mesh-worker-parent")
    t.daemon = True
    t.start()
    return t


# ---------------------------------------------------------------------------------------
# A stand-in for the mesh package, for nodes that do not have it


# The source of the modules ``import mesh`` finds on a node without the mesh package:
# enough for a main script's top level (``import mesh``, ``import mesh.pp as pp``, ``from
# mesh import Executor, TaskFailed``) to load, the exceptions (so that one a task raises
# comes back as itself), and classes that refuse to be used here.
_STUB_ERRORS = """
class MeshError(Exception):
    pass


class NodeError(MeshError):
    pass


class TaskFailed(MeshError):
    def __init__(self, reason, node=None, attempts=None):
        MeshError.__init__(self, reason)
        self.reason, self.node, self.attempts = reason, node, attempts

    def __reduce__(self):
        return (type(self), (self.reason, self.node, self.attempts))


class RemoteTraceback(Exception):
    def __init__(self, tb):
        Exception.__init__(self, tb)
        self.tb = tb


class RemoteError(MeshError):
    def __init__(self, type_name, message, traceback, node=None):
        MeshError.__init__(self, "%s: %s" % (type_name, message))
        self.type_name, self.message, self.traceback, self.node = type_name, message, traceback, node

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.traceback, self.node))


def refuse(what):
    raise RuntimeError(
        "%s ran on a mesh worker, which has no mesh package: create it only under "
        "`if __name__ == '__main__':` in your script (the worker loads the script's top "
        "level as module __mp_main__)" % what
    )
"""

_STUB_EXECUTOR = """
from mesh._errors import refuse


class Executor(object):
    def __init__(self, *args, **kwargs):
        refuse("mesh.Executor()")


def parse_requirement(text):
    refuse("mesh.executor.parse_requirement()")
"""

_STUB_MESH = """
from mesh._errors import MeshError, NodeError, RemoteError, RemoteTraceback, TaskFailed
from mesh.executor import Executor

__version__ = "0+worker"
"""

_STUB_PP = """
from mesh._errors import refuse

version = "1.6.4"
__version__ = version


class Server(object):
    default_port = 60000
    default_secret = "epo20pdosl;dksldkmm"

    def __init__(self, *args, **kwargs):
        refuse("mesh.pp.Server()")


class Template(object):
    def __init__(self, job_server, func, depfuncs=(), modules=(), callback=None, callbackargs=(),
                 group="default", globals=None):
        refuse("mesh.pp.Template()")
"""

STUB_MODULES = {
    "mesh": _STUB_MESH,
    "mesh._errors": _STUB_ERRORS,
    "mesh.executor": _STUB_EXECUTOR,
    "mesh.pp": _STUB_PP,
}


class MeshStub(object):
    """A last-resort finder (the end of ``sys.meta_path``): only when the node has no
    ``mesh`` package of its own, nor one sent with the job, ``import mesh`` finds these."""

    def find_spec(self, name, path=None, target=None):
        if name not in STUB_MODULES:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(name, self, is_package=(name == "mesh"))

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__mesh_stub__ = True
        exec(compile(STUB_MODULES[module.__name__], "<mesh stub %s>" % module.__name__, "exec"), module.__dict__)


def install_mesh_stub():
    if not any(isinstance(f, MeshStub) for f in sys.meta_path):
        sys.meta_path.append(MeshStub())


# ---------------------------------------------------------------------------------------
# Capturing what a task prints


class _Captured(object):
    """The first ``limit`` bytes written to a task's stdout and stderr, in order."""

    def __init__(self, limit):
        self.limit = limit
        self.buf = bytearray()
        self.total = 0

    def write(self, data):
        data = bytes(data)
        self.total += len(data)
        room = self.limit - len(self.buf)
        if room > 0:
            self.buf += data[:room]
        return len(data)

    def text(self):
        """UTF-8 bytes of what was printed, at most ``limit`` bytes, a note if cut."""
        if self.total <= self.limit:
            return bytes(self.buf)
        note = (
            "\n[mesh: the task printed %d bytes; only the first %d KiB are kept]\n"
            % (self.total, self.limit // 1024)
        ).encode("utf-8")
        cut = max(self.limit - len(note), 0)
        while cut > 0 and (self.buf[cut] & 0xC0) == 0x80:  # not inside a character
            cut -= 1
        return bytes(self.buf[:cut]) + note


class _Sink(io.BufferedIOBase):
    """The binary side of a captured stream. ``fileno()`` is the real descriptor (the
    log), so that code handing ``sys.stdout`` to a child process still works."""

    def __init__(self, captured, fd):
        io.BufferedIOBase.__init__(self)
        self._captured = captured
        self._fd = fd

    def writable(self):
        return True

    def write(self, data):
        if self.closed:
            raise ValueError("write to closed file")
        return self._captured.write(data)

    def fileno(self):
        return self._fd

    def isatty(self):
        return False


class Capture(object):
    """Points ``sys.stdout`` and ``sys.stderr`` at one bounded buffer while a task runs.

    The two text streams are made once and reused by every task (pointed at that task's
    buffer), as making them costs more than a tiny task; a task that closes one gets a
    new one next time.
    """

    _streams = {}

    def __init__(self, limit=OUTPUT_LIMIT):
        self.captured = _Captured(limit)
        self._saved = None

    def __enter__(self):
        self._saved = (sys.stdout, sys.stderr)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            kept = Capture._streams.get(name)
            if kept is None or kept[0].closed:
                sink = _Sink(self.captured, fd)
                stream = io.TextIOWrapper(sink, encoding="utf-8", errors="backslashreplace", write_through=True)
                kept = Capture._streams[name] = (stream, sink)
            kept[1]._captured = self.captured
            setattr(sys, name, kept[0])
        return self

    def __exit__(self, *exc):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        sys.stdout, sys.stderr = self._saved
        return False

    def text(self):
        return self.captured.text()


# ---------------------------------------------------------------------------------------
# Explaining failures


_CANT_GET = re.compile(r"Can't get attribute '([^']+)' on <module '([^']+)'")


def explain(exc, during, submitter=None):
    """A message for the user that names the real cause of a set-up failure."""
    here = "this node (Python %s)" % python_version()
    theirs = " (the submitter runs Python %s)" % submitter if submitter else ""
    if isinstance(exc, SetupError):
        return str(exc)
    if isinstance(exc, ImportError) and getattr(exc, "name", None) and _missing(exc):
        return "module '%s' is not installed on %s; it is needed %s" % (exc.name, here, during)
    if isinstance(exc, ImportError):
        return "an import failed on %s %s: %s" % (here, during, _one_line(exc))
    if isinstance(exc, SyntaxError):
        where = "%s, line %s" % (exc.filename, exc.lineno)
        text = (exc.text or "").strip()
        return "the job's source does not compile on %s%s, %s: %s (%s)%s" % (
            here,
            theirs,
            during,
            exc.msg,
            where,
            ("\n    " + text) if text else "",
        )
    if isinstance(exc, AttributeError):
        m = _CANT_GET.search(str(exc))
        if m:
            name, module = m.group(1), m.group(2)
            if module in ("__main__", "__mp_main__"):
                return (
                    "'%s' is not defined at the top level of the main script as this node "
                    "loads it, %s: define it outside `if __name__ == '__main__':` (or pass "
                    "it in depfuncs with mesh.pp)" % (name, during)
                )
            return "module '%s' on %s has no '%s' (a different version?), %s" % (
                module,
                here,
                name,
                during,
            )
    if isinstance(exc, (pickle.UnpicklingError, EOFError, ValueError)) and "pickle" in str(exc):
        return "this node's Python %s cannot read the job's pickle %s%s: %s" % (
            python_version(),
            during,
            theirs,
            _one_line(exc),
        )
    return "failed %s on %s: %s\n%s" % (during, here, _one_line(exc), _format(exc).rstrip())


def _missing(exc):
    """Whether an ImportError says a module is absent (not that importing it failed)."""
    return type(exc).__name__ == "ModuleNotFoundError" or str(exc).startswith("No module named")


def _one_line(exc):
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _format(exc):
    """The traceback of ``exc`` without this file's own frames in front."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _HERE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def check_protocol(data, what, submitter=None):
    """Refuses a pickle newer than this Python reads, saying so in words."""
    if len(data) >= 2 and data[0] == 0x80 and data[1] > pickle.HIGHEST_PROTOCOL:
        theirs = " (the submitter runs Python %s)" % submitter if submitter else ""
        raise SetupError(
            "this node's Python %s cannot read pickle protocol %d, used by %s%s"
            % (python_version(), data[1], what, theirs)
        )


class _Unpickler(pickle.Unpickler):
    """Finds classes the job shipped as source (mesh.pp) before importing by name."""

    def __init__(self, file, shipped):
        pickle.Unpickler.__init__(self, file)
        self._shipped = shipped

    def find_class(self, module, name):
        found = self._shipped.get((module, name))
        if found is not None:
            return found
        return pickle.Unpickler.find_class(self, module, name)


# ---------------------------------------------------------------------------------------
# The code blob


def decode_code(blob):
    """The code blob: ``MESHPY``, a format byte, then a pickle (protocol 4) of a dict.

    Keys of the dict (all present):
      python   the submitter's Python version, text, for messages
      mode     "ref": tasks carry their function (concurrent.futures style);
               "pp": the job's function travels as source (Parallel Python style)
      pickler  "pickle", or "cloudpickle" when the submitter had no main script file
      argv     the submitter's sys.argv, set while the main script loads
      main     None, {"path": str, "source": bytes} (run as module __mp_main__),
               or {"module": str} (run by name as __mp_main__, as `python -m` did)
      files    [(relative path, bytes)]: written under a per-code directory on sys.path
      imports  ["math", "numpy as np", ...] ("pp"): `import <each>` in the namespace
      froms    [(module, qualname, name)] ("pp"; may be absent): the namespace's `name`
               is `module`'s attribute `qualname` (`from math import sqrt`)
      sources  [(filename, first line, source text)] ("pp"): exec'd in one namespace
      classes  [(module, qualname, name in namespace)] ("pp"): shipped classes, found
               by the unpickler before any import
      call     None ("ref"), or ("func", name) | ("method", name) | ("ref", pickle) ("pp")
      init     None, or a pickle of (initializer, initargs): run once, at load
    """
    if blob[: len(MAGIC)] != MAGIC or len(blob) < len(MAGIC) + 1:
        raise SetupError("the job's code is not a mesh code blob (a different mesh package?)")
    version = blob[len(MAGIC)]
    if version != FORMAT:
        raise SetupError(
            "the job's code is in format %d, and this node's worker reads format %d: "
            "use the same mesh release on the submitter and the nodes" % (version, FORMAT)
        )
    body = blob[len(MAGIC) + 1 :]
    check_protocol(body, "the job's code")
    try:
        spec = pickle.loads(body)
    except Exception as e:
        raise SetupError(explain(e, "while reading the job's code"))
    if not isinstance(spec, dict):
        raise SetupError("the job's code is damaged (not a dict)")
    return spec


class Code(object):
    """One job's loaded code: its main module or namespace, its files, how to call."""

    def __init__(self, code_id):
        self.id = code_id
        self.spec = None
        self.main = None
        self.dir = None
        self.shipped = {}
        self.stash = {}
        self.call = None
        self.cloud = None
        self.submitter = None

    # Unpickling and pickling with this code's conventions.

    def loads(self, data, what):
        check_protocol(data, what, self.submitter)
        return _Unpickler(io.BytesIO(data), self.shipped).load()

    def dumps(self, value):
        if self.cloud is not None:
            return self.cloud.dumps(value, protocol=PROTOCOL)
        return pickle.dumps(value, protocol=PROTOCOL)

    def prepare(self, payload):
        """The task's call, ready to run. A task payload is a pickle (protocol 4) of:

        mode "ref": ("call", fn, args, kwargs) -> fn(*args, **kwargs), or
                    ("map", fn, [args, ...])   -> [fn(*args) for each]
        mode "pp":  the args tuple -> func(*args); for ("method", name) the first
                    argument is the instance: getattr(args[0], name)(*args[1:])
        """
        task = self.loads(payload, "the task's arguments")
        if self.spec["mode"] == "pp":
            return self._pp_call(tuple(task))
        kind = task[0]
        if kind == "call":
            fn, args, kwargs = task[1], task[2], task[3]
            return lambda: fn(*args, **kwargs)
        if kind == "map":
            fn, chunk = task[1], task[2]
            return lambda: [fn(*args) for args in chunk]
        raise SetupError("the task is damaged (kind %r)" % (kind,))

    def _pp_call(self, args):
        how, what = self.call
        if how == "method":
            return lambda: getattr(args[0], what)(*args[1:])
        fn = self.main.__dict__[what] if how == "func" else what
        return lambda: fn(*args)


class Worker(object):
    """Serves frames: keeps the last few codes loaded and runs tasks one at a time."""

    def __init__(self, channel):
        self.channel = channel
        self.codes = collections.OrderedDict()
        self.failed = collections.OrderedDict()
        self.active = None
        self.own_main = sys.modules.get("__main__")
        self.base_path = list(sys.path)

    def serve(self):
        """Answers frames until the node closes the pipe: 0, or 3 on a protocol error."""
        while True:
            try:
                frame = self.channel.read()
            except ProtocolError as e:
                _log("mesh worker: %s" % e)
                return EXIT_PROTOCOL
            if frame is None:
                return 0
            kind, payload = frame
            if len(payload) < 32 or kind not in (ord("T"), ord("C")):
                _log("mesh worker: unexpected frame %r of %d bytes" % (chr(kind), len(payload)))
                return EXIT_PROTOCOL
            code_id, body = payload[:32], payload[32:]
            if kind == ord("C"):
                self.load(code_id, body)
            else:
                self.task(code_id, body)
            del payload, body
            _trim_log()

    # Tasks

    def task(self, code_id, payload):
        code = self.codes.get(code_id)
        if code is None:
            message = self.failed.get(code_id)
            if message is None:
                self.channel.write(ord("N"))
            else:
                self.answer(SETUP_FAILED, message.encode("utf-8"), b"")
            return
        self.codes.move_to_end(code_id)
        status, result, output = self.run(code, payload)
        self.answer(status, result, output)

    def answer(self, status, result, output):
        self.channel.write(ord("R"), bytes([status]), _LEN.pack(len(result)), result, output)

    def run(self, code, payload):
        """Runs one task of ``code``: ``(status, result bytes, output bytes)``."""
        self.activate(code)
        capture = Capture()
        with capture:
            status, result = self._run_captured(code, payload)
        return status, result, capture.text()

    def _run_captured(self, code, payload):
        try:
            call = code.prepare(payload)
        except BaseException as e:
            return SETUP_FAILED, explain(e, "to read the task's arguments", code.submitter).encode("utf-8")
        try:
            value = call()
        except BaseException as e:
            if isinstance(e, ImportError) and getattr(e, "name", None) and _missing(e):
                # A module missing here may be installed on another node: a set-up
                # failure, retried elsewhere, not the function's own error.
                return SETUP_FAILED, explain(e, "by the task's code", code.submitter).encode("utf-8")
            return RAISED, self.raised(code, e)
        del call
        try:
            return RETURNED, code.dumps(value)
        except BaseException as e:
            try:
                raise TypeError(
                    "the task's result (%s) cannot be pickled: %s" % (type(value).__name__, _one_line(e))
                )
            except TypeError as wrapped:
                return RAISED, self.raised(code, wrapped)

    def raised(self, code, exc):
        """Result bytes of a raised task: a pickle (protocol 4) of a dict with
        ``exc`` (the pickled exception, or None if it does not pickle and unpickle here),
        ``type`` (qualified name), ``message`` and ``traceback`` (text)."""
        text = _format(exc)
        try:
            exc_bytes = code.dumps(exc)
            code.loads(exc_bytes, "the exception")
        except BaseException:
            exc_bytes = None
        cls = type(exc)
        try:
            message = str(exc)
        except BaseException:
            message = "<unprintable %s>" % cls.__name__
        record = {
            "exc": exc_bytes,
            "type": "%s.%s" % (cls.__module__, cls.__qualname__),
            "message": message,
            "traceback": text,
        }
        return pickle.dumps(record, protocol=PROTOCOL)

    # Codes

    def load(self, code_id, blob):
        """Loads a code; a failure is remembered and answers that code's tasks."""
        if code_id in self.codes:
            return
        self.failed.pop(code_id, None)
        code = Code(code_id)
        try:
            self.set_up(code, blob)
        except BaseException as e:
            self.deactivate()
            _remove_dir(code.dir)
            self.failed[code_id] = explain(e, "to load the job's code", code.submitter)
            while len(self.failed) > MAX_FAILED:
                self.failed.popitem(last=False)
            return
        self.codes[code_id] = code
        while len(self.codes) > MAX_CODES:
            _, old = self.codes.popitem(last=False)
            self.evict(old)

    def set_up(self, code, blob):
        spec = decode_code(blob)
        code.spec = spec
        code.submitter = spec.get("python")
        if spec.get("pickler") == "cloudpickle":
            try:
                import cloudpickle
            except ImportError:
                raise SetupError(
                    "module 'cloudpickle' is not installed on this node (Python %s); it is "
                    "needed for functions defined in an interactive session"
                    % python_version()
                )
            code.cloud = cloudpickle
        if spec.get("files"):
            code.dir = write_files(code.id, spec["files"])
        code.main = types.ModuleType("__main__" if spec["mode"] == "pp" else "__mp_main__")
        self.activate(code)
        if spec["mode"] == "pp":
            self.set_up_pp(code, spec)
        else:
            self.set_up_main(code, spec)
        if spec.get("init") is not None:
            initializer, initargs = code.loads(spec["init"], "the initializer")
            try:
                initializer(*initargs)
            except BaseException as e:
                raise SetupError(
                    "the initializer raised on this node (Python %s):\n%s"
                    % (python_version(), _format(e).rstrip())
                )

    def set_up_main(self, code, spec):
        main = spec.get("main")
        if not main:
            return
        saved_argv = sys.argv
        sys.argv = list(spec.get("argv") or [main.get("path", "")])
        # Tells the mesh package, if a script's top level creates an Executor or a pp
        # Server while it loads here, to refuse instead of submitting jobs from a worker.
        sys._mesh_loading_main = True
        try:
            if "module" in main:
                import runpy

                found = runpy.run_module(main["module"], run_name="__mp_main__", alter_sys=False)
                code.main.__dict__.update(found)
            else:
                path, source = main["path"], main["source"]
                code.main.__file__ = path
                compiled = compile(source, path, "exec", dont_inherit=True)
                _remember_source(path, source)
                exec(compiled, code.main.__dict__)
        finally:
            sys.argv = saved_argv
            del sys._mesh_loading_main

    def set_up_pp(self, code, spec):
        ns = code.main.__dict__
        for name in spec.get("imports") or ():
            exec("import " + name, ns)
        for module, qualname, name in spec.get("froms") or ():
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            ns[name] = found
        for filename, first, text in spec.get("sources") or ():
            padded = "\n" * max(first - 1, 0) + text
            compiled = compile(padded, filename, "exec", dont_inherit=True)
            _remember_source(filename, padded, merge=True)
            exec(compiled, ns)
        for module, qualname, name in spec.get("classes") or ():
            code.shipped[(module, qualname)] = ns[name]
        how, what = spec["call"]
        if how == "ref":
            code.call = ("ref", code.loads(what, "the job's function"))
        else:
            if how == "func" and what not in ns:
                raise SetupError("the job's source does not define %s()" % what)
            code.call = (how, what)

    def activate(self, code):
        """Makes ``code`` the one whose ``__main__``, files and modules are in sys."""
        if self.active is code:
            return
        self.deactivate()
        sys.modules["__main__"] = code.main
        sys.modules["__mp_main__"] = code.main
        if code.dir:
            sys.path.insert(0, code.dir)
        sys.modules.update(code.stash)
        code.stash = {}
        self.active = code

    def deactivate(self):
        code, self.active = self.active, None
        if code is None:
            return
        if code.dir:
            inside = code.dir + os.sep
            while code.dir in sys.path:
                sys.path.remove(code.dir)
            for name, mod in list(sys.modules.items()):
                where = getattr(mod, "__file__", None) or ""
                if where.startswith(inside):
                    code.stash[name] = sys.modules.pop(name)
        if self.own_main is not None:
            sys.modules["__main__"] = self.own_main
        sys.modules.pop("__mp_main__", None)

    def evict(self, code):
        if self.active is code:
            self.deactivate()
        code.stash.clear()
        _remove_dir(code.dir)


def write_files(code_id, files):
    """Writes a code's sent files under ``code-<id>/`` here; returns that directory."""
    root = os.path.abspath("code-" + code_id.hex()[:16])
    _remove_dir(root)
    os.makedirs(root)
    for rel, data in files:
        parts = rel.replace("\\", "/").split("/")
        if rel.startswith("/") or not rel or any(p in ("", ".", "..") for p in parts):
            raise SetupError("the job sends a file with an unsafe path: %r" % (rel,))
        path = os.path.join(root, *parts)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        with open(path, "wb") as f:
            f.write(data)
    return root


def _remove_dir(path):
    if path and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def _remember_source(filename, source, merge=False):
    """Lets tracebacks show the lines of shipped source (no file of that name here)."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    lines = source.splitlines(True)
    if merge and filename in linecache.cache:
        old = list(linecache.cache[filename][2])
        for i, line in enumerate(lines):
            if line.strip():
                while len(old) <= i:
                    old.append("\n")
                old[i] = line
        lines = old
    linecache.cache[filename] = (len(source), None, lines, filename)


def _log(text):
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _trim_log():
    """Keeps worker.log bounded: it is emptied when it passes ``LOG_LIMIT``."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fstat(1).st_size > LOG_LIMIT:
            os.ftruncate(1, 0)
    except Exception:
        pass


def main():
    channel = take_channel()
    die_with_parent()
    install_mesh_stub()
    here = os.path.dirname(os.path.abspath(_HERE))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # the node's script directory holds nothing for tasks
    return Worker(channel).serve()


if __name__ == "__main__":
    sys.exit(main())
