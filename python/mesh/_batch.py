"""The submission engine behind ``mesh.pp.Server`` and ``mesh.Executor``.

Scripts submit one call at a time, in a loop; a mesh job per call would cost a round of
uploads and scheduling per call. So a ``Pool`` groups the calls that share a code (the
same function, depfuncs and modules for pp; one executor) into one mesh job: one code
blob, many tasks. A batch goes when no call joined it for ``LINGER`` seconds, when it is
``MAX_AGE`` old, when it reaches ``MAX_TASKS`` tasks or ``MAX_BYTES`` of payload, or at
once when someone waits for one of its calls (``flush``).

Threads (all daemons), and why:

* the **flusher** seals batches and launches them (uploads the blobs, submits the job),
  so that ``submit()`` never waits on the node;
* one **reader** per running job (at most ``_client.MAX_JOBS``) reads its reply lines
  and only queues them: the node gives each line 5 s to be read, so user code must
  never run on a reader;
* one **delivery** thread decodes results and resolves futures and pp jobs, running
  user callbacks in order, away from the readers.

Bounds: at most ``MAX_SEALED`` sealed batches wait for launch; past that, ``submit()``
from the user's thread blocks until the mesh catches up (from a pool's own threads it
never blocks: a callback that submits must not deadlock). The delivery queue holds at
most one event per task in flight.
"""

import collections
import sys
import threading
import time

from . import _payload
from ._errors import MeshError, NodeError, TaskFailed

LINGER = 0.005
MAX_AGE = 0.05
MAX_TASKS = 65536
MAX_BYTES = 32 << 20
MAX_SEALED = 8

_internal = threading.local()


def mark_internal():
    """Marks this thread as one of the package's own: it never blocks on backpressure."""
    _internal.flag = True


def is_internal():
    return getattr(_internal, "flag", False)


def on_delivery_thread():
    """Whether this thread delivers results (it runs callbacks): waiting here for a
    result would wait forever, as that result is delivered by this very thread."""
    return getattr(_internal, "delivery", False)


def refuse_wait_on_delivery(what):
    if on_delivery_thread():
        raise RuntimeError(
            "%s inside a callback would wait forever: callbacks run on the thread that "
            "delivers results, so no result arrives while one runs" % what
        )


class Result(object):
    """What became of one task: ``status`` is "returned", "raised" or "failed"; ``data``
    the result bytes (returned, raised); ``reason`` the node's text (failed); ``error``
    the exception class of a failure: ``TaskFailed`` (the task gave no result),
    ``NodeError`` (the node went away or broke the protocol), ``MeshError`` (the node
    refused the job)."""

    __slots__ = ("status", "data", "output", "node", "attempts", "took_s", "reason", "error")

    def __init__(self, status, data=None, output="", node=None, attempts=None, took_s=0.0, reason=None,
                 error=TaskFailed):
        self.status = status
        self.data = data
        self.output = output
        self.node = node
        self.attempts = attempts
        self.took_s = took_s
        self.reason = reason
        self.error = error

    def failure(self):
        reason = self.reason or "the task failed"
        if self.error is TaskFailed:
            return TaskFailed(reason, self.node, self.attempts)
        return self.error(reason)

    def value(self, shipped=None):
        """The task's value; or raises what became of it: the exception the function
        raised (rebuilt here with the remote traceback as its ``__cause__``, or a
        ``RemoteError``), ``failure()`` when it gave no result, ``MeshError`` when its value
        does not unpickle here. Every front end decodes results with this."""
        if self.status == "returned":
            try:
                return _payload.loads(self.data, shipped)
            except Exception as e:
                raise MeshError("the task's result could not be unpickled here: %r" % (e,))
        if self.status == "raised":
            raise _payload.decode_raised(self.data, self.node, shipped)
        raise self.failure()


class Code(object):
    """A job's code as a pool batches by it: ``key`` (hashable; equal keys share a
    job), ``blob()`` (its bytes, computed once) and the job's options."""

    def __init__(self, key, make_blob, timeout_s=None, retries=1, requirements=()):
        self.key = (key, timeout_s, retries, tuple(map(_freeze, requirements)))
        self._make_blob = make_blob
        self._blob = None
        self.timeout_s = timeout_s
        self.retries = retries
        self.requirements = list(requirements)

    def blob(self):
        if self._blob is None:
            self._blob = self._make_blob()
        return self._blob


def _freeze(obj):
    if isinstance(obj, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


class Stats(object):
    """Per-node figures of a pool's tasks: tasks, task time, workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.nodes = collections.OrderedDict()

    def _row(self, name):
        row = self.nodes.get(name)
        if row is None:
            row = self.nodes[name] = {"name": name, "tasks": 0, "task_time_s": 0.0, "workers": 0}
        return row

    def task(self, node, took_s):
        with self.lock:
            row = self._row(node or "?")
            row["tasks"] += 1
            row["task_time_s"] += float(took_s or 0.0)

    def report(self, report):
        with self.lock:
            for n in report.get("nodes") or ():
                if isinstance(n, dict) and n.get("name"):
                    row = self._row(n["name"])
                    row["workers"] = max(row["workers"], int(n.get("workers") or 0))

    def rows(self):
        """One dict per node that ran tasks: name, tasks, task_time_s, share (of all
        tasks, 0 to 1), workers."""
        with self.lock:
            rows = [dict(r) for r in self.nodes.values() if r["tasks"]]
        total = sum(r["tasks"] for r in rows)
        for r in rows:
            r["share"] = r["tasks"] / total if total else 0.0
        return rows


class _Batch(object):
    def __init__(self, code):
        self.code = code
        self.payloads = []
        self.sinks = []
        self.bytes = 0
        self.first = self.last = time.monotonic()


class _Run(object):
    """One launched job: its sinks by task index, and what its lines said."""

    def __init__(self, pool, sinks, inputs_id):
        self.pool = pool
        self.sinks = sinks
        self.done = [False] * len(sinks)
        self.left = len(sinks)
        self.inputs_id = inputs_id
        self.error = None
        self.reported = False
        self.conn = None

    # Called on the reader thread: queue only.
    def line(self, obj):
        self.pool._deliver(self._on_line, obj)

    def closed(self, error, cancelled=False):
        """The job's connection ended: ``error`` is None after its report (or error
        line), else why it ended; ``cancelled`` when this process ended it."""
        self.pool._deliver(self._on_closed, (error, cancelled))

    # Called on the delivery thread.
    def _on_line(self, obj):
        if "pytask" in obj:
            self._on_task(obj["pytask"])
        elif "waiting" in obj:
            _say("mesh: the job waits: %s" % obj["waiting"])
        elif "report" in obj:
            self.reported = True
            report = obj["report"] or {}
            self.pool.stats.report(report)
            for item in report.get("failed") or ():
                task, reason = item[0], item[1]
                self._resolve(task, Result("failed", reason=reason))
        elif "error" in obj:
            self.error = obj["error"]

    def _on_task(self, t):
        index = t.get("task")
        if not isinstance(index, int) or not 0 <= index < len(self.sinks) or self.done[index]:
            return
        node, attempts, took = t.get("node"), t.get("attempts"), t.get("took_s") or 0.0
        ok = t.get("ok")
        if ok is not None:
            try:
                data = _payload.value_bytes(ok, self.pool.node())
            except Exception as e:
                result = Result("failed", node=node, attempts=attempts, reason="its result could not be read: %s" % e)
            else:
                status = "raised" if ok.get("raised") else "returned"
                result = Result(status, data, ok.get("output") or "", node, attempts, took)
                self.pool.stats.task(node, took)
        else:
            result = Result("failed", node=node, attempts=attempts, reason=t.get("error") or "the task failed")
        self._resolve(index, result)

    def _resolve(self, index, result):
        if not isinstance(index, int) or not 0 <= index < len(self.sinks) or self.done[index]:
            return
        self.done[index] = True
        self.left -= 1
        self.pool._settle(self.sinks[index], result)

    def _on_closed(self, args):
        error, cancelled = args
        if self.left:
            kind = NodeError
            if self.error:
                reason, kind = "the mesh node refused or ended the job: %s" % self.error, MeshError
            elif cancelled:
                reason, kind = "the job was cancelled", TaskFailed
            elif error:
                reason = error
            elif self.reported:
                reason, kind = "the job ended without a result for this task", TaskFailed
            else:
                reason = "the mesh node closed the connection before the job finished"
            if kind is NodeError:
                reason = self.pool.node().describe_failure(reason)
            for i in range(len(self.sinks)):
                self._resolve(i, Result("failed", reason=reason, error=kind))
        self.pool._ended(self)


class Pool(object):
    """Batches calls into mesh jobs and delivers their results (see the module doc).

    ``connect`` is called once, at the first submission, and returns the ``_client.Node``.
    A sink is any object with ``claim()`` (False when it was cancelled before it went)
    and ``settle(result)`` (called once, on the delivery thread).
    """

    def __init__(self, connect):
        self._connect = connect
        self._node = None
        self.stats = Stats()
        self.lock = threading.Condition()
        self.open = collections.OrderedDict()
        self.sealed = collections.deque()
        self.runs = set()
        self.launching = 0
        self.closed = False
        self.code_ids = collections.OrderedDict()
        self.events = collections.deque()
        self.events_ready = threading.Condition()
        self._flusher = None
        self._delivery = None
        # Calls added, and calls whose result (or failure) was delivered: progress().
        self.calls = 0
        self.delivered = 0

    # The node, lazily.

    def node(self):
        if self._node is None:
            with self.lock:
                if self._node is None:
                    self._node = self._connect()
        return self._node

    # Submitting.

    def add(self, code, payload, sink, flush=False):
        """Adds one task; it goes with the next batch of its code."""
        self.add_many(code, [(payload, sink)], flush)

    def add_many(self, code, items, flush=False):
        """Adds ``(payload, sink)`` pairs of one code together (one job, unless they pass
        ``MAX_TASKS`` or ``MAX_BYTES``); ``flush`` sends them at once."""
        if not items:
            return
        self.node()
        with self.lock:
            if self.closed:
                raise RuntimeError("cannot submit: this pool was shut down")
            self._start_threads()
            self.calls += len(items)
            # The flusher is woken only when its plans change (a new batch to time, one
            # sealed), not by every call: a stream of calls must not ping it each time.
            wake = flush
            for payload, sink in items:
                batch = self.open.get(code.key)
                if batch is None:
                    batch = self.open[code.key] = _Batch(code)
                    wake = True
                batch.payloads.append(payload)
                batch.sinks.append(sink)
                batch.bytes += len(payload) + 4
                batch.last = time.monotonic()
                if len(batch.payloads) >= MAX_TASKS or batch.bytes >= MAX_BYTES:
                    self._seal(code.key)
                    wake = True
            if flush:
                self._seal(code.key)
            if wake:
                self.lock.notify_all()
            if not is_internal():
                while len(self.sealed) >= MAX_SEALED and not self.closed:
                    self.lock.wait(0.1)

    def flush(self):
        """Sends every batch now (someone waits for one of its calls)."""
        with self.lock:
            for key in list(self.open):
                self._seal(key)
            self.lock.notify_all()

    def _seal(self, key):
        batch = self.open.pop(key, None)
        if batch is not None:
            self.sealed.append(batch)

    def _start_threads(self):
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="mesh-flusher", daemon=True)
            self._flusher.start()
            self._delivery = threading.Thread(target=self._deliver_loop, name="mesh-delivery", daemon=True)
            self._delivery.start()

    def _flush_loop(self):
        mark_internal()
        while True:
            with self.lock:
                batch = self._next_batch()
                if batch is None:
                    return
                self.launching += 1
                self.lock.notify_all()
            try:
                self._launch(batch)
            except BaseException as e:  # never strand a batch: its calls fail instead
                self._fail_batch(batch, "the job could not be submitted: %r" % (e,), MeshError)
            finally:
                with self.lock:
                    self.launching -= 1
                    self.lock.notify_all()

    def _next_batch(self):
        """Waits for a sealed batch, sealing open ones whose time is up. None: closed."""
        while True:
            now = time.monotonic()
            wake = None
            for key, b in list(self.open.items()):
                due = min(b.last + LINGER, b.first + MAX_AGE)
                if due <= now or self.closed:
                    self._seal(key)
                else:
                    wake = due if wake is None else min(wake, due)
            if self.sealed:
                return self.sealed.popleft()
            if self.closed:
                return None
            self.lock.wait(None if wake is None else max(wake - now, 0.0005))

    def _launch(self, batch):
        """Uploads a batch's blobs and submits its job (waiting for a free slot)."""
        kept = [(p, s) for p, s in zip(batch.payloads, batch.sinks) if s.claim()]
        if not kept:
            return
        payloads, sinks = [p for p, _ in kept], [s for _, s in kept]
        code = batch.code
        run = None
        try:
            node = self.node()
            code_id = self._code_id(node, code)
            inputs_id = node.put_bytes(_payload.task_list(payloads))
            run = _Run(self, sinks, inputs_id)
            job = {
                "Python": {
                    "tasks": len(payloads),
                    "inputs": inputs_id,
                    "code": code_id,
                    "timeout_ms": None if code.timeout_s is None else max(1, int(code.timeout_s * 1000)),
                    "retries": int(code.retries),
                    "needs": {"native": True, "python": True, "requirements": code.requirements},
                }
            }
            with self.lock:
                self.runs.add(run)
            run.conn = node.start_job(job, run, lambda: self.closed and self.cancelling)
            if run.conn is None:
                run.closed("the job was cancelled", cancelled=True)
        except Exception as e:
            if isinstance(e, MeshError):  # NodeError: no node; MeshError: it answered an error
                reason, kind = str(e), type(e)
            else:
                reason, kind = "the job could not be submitted: %s" % e, MeshError
            if run is not None:
                with self.lock:
                    self.runs.discard(run)
                    self.lock.notify_all()
                if run.inputs_id:
                    self._unpin(run.inputs_id)
            self._fail_sinks(sinks, reason, kind)

    def _fail_batch(self, batch, reason, error):
        self._fail_sinks(batch.sinks, reason, error)

    def _fail_sinks(self, sinks, reason, error):
        result = Result("failed", reason=reason, error=error)
        for sink in sinks:
            self._deliver(lambda s: self._settle(s, result), sink)

    def _unpin(self, blob_id):
        try:
            self.node().pins.remove([blob_id])
        except Exception:
            pass

    def _code_id(self, node, code):
        """The code blob's id, put once per pool (pinned for the process's life)."""
        blob_id = self.code_ids.get(code.key)
        if blob_id is None:
            blob_id = node.put_bytes(code.blob())
            self.code_ids[code.key] = blob_id
            while len(self.code_ids) > 256:
                self.code_ids.popitem(last=False)
        return blob_id

    # Delivering.

    def _deliver(self, fn, arg):
        with self.events_ready:
            self.events.append((fn, arg))
            self.events_ready.notify()

    def _deliver_loop(self):
        mark_internal()
        _internal.delivery = True
        while True:
            with self.events_ready:
                while not self.events:
                    self.events_ready.wait()
                fn, arg = self.events.popleft()
            if fn is None:
                return
            try:
                fn(arg)
            except Exception as e:  # a bug here must not stop every later delivery
                _say("mesh: internal error while delivering a result: %r" % (e,))

    def _settle(self, sink, result):
        try:
            sink.settle(result)
        except Exception as e:
            _say("mesh: a result could not be delivered: %r" % (e,))
        finally:
            with self.stats.lock:
                self.delivered += 1

    def progress(self):
        """``(done, total)``: calls with a result (or a failure) so far, calls added."""
        with self.stats.lock:
            done = self.delivered
        with self.lock:
            return done, self.calls

    def _ended(self, run):
        if run.inputs_id:
            self._unpin(run.inputs_id)  # before the run counts as ended: a pool that waits sees it unpinned
        with self.lock:
            self.runs.discard(run)
            self.lock.notify_all()

    # Ending.

    cancelling = False

    def idle(self):
        with self.lock:
            return not (self.open or self.sealed or self.runs or self.launching)

    def wait_idle(self, timeout=None):
        """Waits until every submitted batch has ended (its results delivered)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush()
        with self.lock:
            while self.open or self.sealed or self.runs or self.launching:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.lock.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, cancel=False):
        """Stops taking calls. With ``cancel``, drops what has not gone and ends the jobs
        on the node (their calls fail); else lets everything finish."""
        with self.lock:
            self.closed = True
            if cancel:
                self.cancelling = True
                dropped = list(self.open.values()) + list(self.sealed)
                self.open.clear()
                self.sealed.clear()
                runs = list(self.runs)
            else:
                dropped, runs = [], []
            self.lock.notify_all()
        for batch in dropped:
            for sink in batch.sinks:
                if sink.claim():
                    self._deliver(lambda s: self._settle(s, Result("failed", reason="the job was cancelled")), sink)
        for run in runs:
            if run.conn is not None:
                run.conn.cancel()

    def stop_delivery(self):
        """Ends the delivery thread after what is queued (at the end of ``shutdown``)."""
        if self._delivery is not None:
            self._deliver(None, None)


def _say(text):
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:
        pass
