"""``mesh.Executor``: a ``concurrent.futures.Executor`` whose calls run on the mesh.

    with mesh.Executor(require=["cores>=4"]) as ex:
        squares = list(ex.map(square, range(10_000), chunksize=100))

How a call travels (the way multiprocessing's *spawn* start method does it):

* The function and its arguments are pickled **by reference**: a function from an
  installed package travels as its module and name, so that package must be importable
  on the nodes (``send=`` ships module files and packages with the job).
* Functions and classes of your main script travel too: the script's source goes with
  the job, and each worker runs it as module ``__mp_main__``, so code under
  ``if __name__ == '__main__':`` does not run there; everything at the top level does
  (imports included). Define what you submit at the top level of the script.
* In an interactive session (no script file) functions of ``__main__`` travel by value
  with ``cloudpickle`` when it is installed here and on the nodes.

Errors: an exception your function raised comes back as itself, with the remote
traceback as its ``__cause__`` (a ``mesh.RemoteTraceback``), or as ``mesh.RemoteError``
when it cannot be rebuilt here. A task that gave no result (its worker crashed, it timed
out, or no node could set it up: a module missing there) raises ``mesh.TaskFailed`` with
the node's reason, after ``retries`` further runs elsewhere. When the node itself goes
away while a call runs (its control connection drops, a session node dies) the call
raises ``mesh.NodeError``; when the node refuses the job, ``mesh.MeshError`` with its
reason. No call waits forever on a node that broke.

Callbacks (``add_done_callback``) run on the thread that delivers results: waiting there
for another call's result raises RuntimeError instead of waiting forever.
"""

import concurrent.futures
import itertools
import re
import sys
import threading
import time

from . import _batch, _client, _payload
from ._errors import MeshError

MAX_REQUIREMENTS = 16
# Seconds shutdown() gives the mesh jobs' reports after their last results.
REPORT_GRACE = 5.0
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def parse_requirement(text):
    """One ``require=`` entry as the node's requirement JSON (``docs/python.md``):
    ``label=NAME``, ``arch=NAME``, ``os=NAME``, ``mem>=MIB``, ``cores>=N``,
    ``python>=3.N``. Anything else raises ValueError."""
    s = str(text).strip()
    bad = ValueError(
        "%r is not a requirement; use label=NAME, arch=NAME, os=NAME, mem>=MIB, cores>=N "
        "or python>=3.N (names of 1-32 of A-Z a-z 0-9 . _ -)" % (text,)
    )
    if ">=" in s:
        key, value = (p.strip() for p in s.split(">=", 1))
        if key == "python":
            m = re.match(r"^(\d+)(?:\.(\d+))?$", value)
            if not m:
                raise bad
            return {"PythonAtLeast": {"major": int(m.group(1)), "minor": int(m.group(2) or 0)}}
        if key in ("mem", "cores") and value.isdigit():
            return {"MemAtLeast" if key == "mem" else "CoresAtLeast": int(value)}
        raise bad
    if "=" in s:
        key, value = (p.strip() for p in s.split("=", 1))
        kinds = {"label": "Label", "arch": "Arch", "os": "Os"}
        if key in kinds and _NAME.match(value):
            return {kinds[key]: value}
    raise bad


class _Future(concurrent.futures.Future):
    """A future that sends its batch at once when someone waits for it. ``output`` is
    what the call printed (also written to this process's stdout when it arrives)."""

    def __init__(self, pool):
        concurrent.futures.Future.__init__(self)
        self._pool = pool
        self.output = ""
        self.node = None

    def result(self, timeout=None):
        if not self.done():
            _batch.refuse_wait_on_delivery("future.result()")
            self._pool.flush()
        return concurrent.futures.Future.result(self, timeout)

    def exception(self, timeout=None):
        if not self.done():
            _batch.refuse_wait_on_delivery("future.exception()")
            self._pool.flush()
        return concurrent.futures.Future.exception(self, timeout)


class _Sink(object):
    """Connects one task to its future."""

    __slots__ = ("future", "executor")

    def __init__(self, future, executor):
        self.future = future
        self.executor = executor

    def claim(self):
        return self.future.set_running_or_notify_cancel()

    def settle(self, result):
        f = self.future
        f.node = result.node
        try:
            if result.output:
                f.output = result.output
                sys.stdout.write(result.output)
                sys.stdout.flush()
            try:
                value = result.value()
            except BaseException as e:
                f.set_exception(e)
            else:
                f.set_result(value)
        finally:
            self.executor._settled(f)


class Executor(concurrent.futures.Executor):
    """Runs calls on the mesh: the nodes that allow runs (``mesh join --allow-run``) and
    this machine's own node.

    ``max_workers``: worker slots of the session node this executor starts when no node
    runs under the home (ignored when one does). ``initializer(*initargs)`` runs once
    per warm worker process, when it loads this executor's code (its failure fails the
    tasks with ``TaskFailed``). ``require``: requirements of the nodes that may run the
    tasks, such as ``"label=gpu"``, ``"arch=aarch64"``, ``"mem>=2048"`` (MiB),
    ``"cores>=4"``, ``"python>=3.10"``. ``timeout``: seconds a task may run before its
    worker is ended (it then fails, and is retried). ``retries``: further runs a failed
    task gets. ``send``: module files or package directories shipped with the code and
    put on the workers' ``sys.path``. ``home``, ``key``: the mesh home and key (see
    ``MESH_HOME``, ``MESH_KEY``). ``local=True``: this machine only (a session node with
    ``--local``, even when a node runs under the home).
    """

    def __init__(self, max_workers=None, *, initializer=None, initargs=(), require=(), timeout=None,
                 retries=1, send=(), home=None, key=None, local=False):
        _payload.refuse_while_loading_main("mesh.Executor()")
        if max_workers is not None and int(max_workers) <= 0:
            raise ValueError("max_workers must be greater than 0")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, or None")
        if int(retries) < 0:
            raise ValueError("retries must be 0 or more")
        if isinstance(require, str):
            require = [require]
        requirements = [parse_requirement(r) for r in require]
        if len(requirements) > MAX_REQUIREMENTS:
            raise ValueError("at most %d requirements" % MAX_REQUIREMENTS)
        if isinstance(send, str):
            send = [send]
        files = _payload.gather_files(send)
        self._main, pickler_name = _payload.main_module()
        self._cloud = None
        if pickler_name == "cloudpickle":
            import cloudpickle

            self._cloud = cloudpickle
        init = None
        if initializer is not None:
            self._check_travels(initializer, "initializer")
            init = self._dumps((initializer, tuple(initargs)))
        main = self._main

        def make_blob():
            return _payload.code_blob("ref", pickler_name, main=main, files=files, init=init)

        self._code = _batch.Code(("executor", id(self)), make_blob, timeout, int(retries), requirements)
        self._pool = _batch.Pool(lambda: _client.connect(home, key, local, max_workers))
        self._lock = threading.Lock()
        self._pending = set()
        self._shutdown = False

    # Submitting.

    def submit(self, fn, /, *args, **kwargs):
        """Schedules ``fn(*args, **kwargs)``; returns its future."""
        return self._submit(("call", fn, args, kwargs), fn)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """``fn`` over the items, results in order; each chunk of ``chunksize`` items is
        one task. ``timeout`` (seconds) bounds the whole iteration, as in
        ``concurrent.futures``."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        end = None if timeout is None else timeout + time.monotonic()
        calls = zip(*iterables)
        items = []
        while True:
            chunk = list(itertools.islice(calls, chunksize))
            if not chunk:
                break
            items.append(self._prepare(("map", fn, chunk), fn))
        futures = self._add(items, flush=True)
        return _in_order(futures, end)

    def _submit(self, call, fn):
        return self._add([self._prepare(call, fn)])[0]

    def _prepare(self, call, fn):
        """``(payload, future)`` of a call, checked and pickled."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        self._check_travels(fn, "function")
        return self._dumps(call), _Future(self._pool)

    def _add(self, items, flush=False):
        """Hands prepared calls to the pool (a map's calls together: one job)."""
        futures = [f for _, f in items]
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.update(futures)
        try:
            self._pool.add_many(self._code, [(p, _Sink(f, self)) for p, f in items], flush)
        except BaseException:
            with self._lock:
                self._pending.difference_update(futures)
            raise
        return futures

    def _dumps(self, obj):
        try:
            return _payload.dumps(obj, self._cloud)
        except Exception as e:
            raise TypeError("cannot send this call to the mesh: it does not pickle: %s" % e) from e

    def _check_travels(self, fn, what):
        if self._main is None and self._cloud is None and getattr(fn, "__module__", None) == "__main__":
            raise MeshError(
                "the %s %s is defined in __main__, which has no file here (an interactive "
                "session): install cloudpickle (here and on the nodes), or define it in a module "
                "the nodes can import (send=[...] ships it)" % (what, getattr(fn, "__qualname__", fn))
            )

    def _settled(self, future):
        with self._lock:
            self._pending.discard(future)

    # Ending.

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Takes no more calls. ``cancel_futures`` cancels the calls that have not gone to
        the mesh yet; ``wait`` waits for the rest. The session node, if one was started,
        stays for the life of the process (later executors find their code warm)."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending)
        if cancel_futures:
            for f in pending:
                f.cancel()
        self._pool.close(cancel=False)
        if wait:
            _batch.refuse_wait_on_delivery("shutdown(wait=True)")
            while True:
                with self._lock:
                    pending = [f for f in self._pending if not f.done()]
                if not pending:
                    break
                concurrent.futures.wait(pending)
            # The jobs' reports (statistics) come just after their last results.
            if self._pool.wait_idle(REPORT_GRACE):
                self._pool.stop_delivery()

    def progress(self):
        """``{"done": d, "total": t}``: this executor's calls that have a result (or
        failed, or were cancelled) so far, of all it was given."""
        done, total = self._pool.progress()
        return {"done": done, "total": total}

    def stats(self):
        """Per node that ran this executor's tasks: a dict of ``name``, ``tasks``,
        ``task_time_s``, ``share`` (of all its tasks, 0 to 1) and ``workers``."""
        return self._pool.stats.rows()


def _in_order(futures, end):
    """Yields the results of chunk futures in order; cancels the rest if abandoned."""
    futures.reverse()
    try:
        while futures:
            f = futures.pop()
            if end is None:
                chunk = f.result()
            else:
                chunk = f.result(end - time.monotonic())
            for value in chunk:
                yield value
    finally:
        for f in futures:
            f.cancel()
