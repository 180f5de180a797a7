"""Test support: the node's side of the worker frames, a fake node, a fake ``mesh`` binary.

``WorkerProc`` starts the real ``mesh/_worker.py`` and speaks its frames, as the Rust node
does (``src/exec/python/worker.rs``). ``FakeNode`` serves a control socket that speaks the
JSON lines of ``docs/python.md`` (``upload``, ``read``, ``unpin``, ``peers``, ``submit`` of
a ``Python`` job), keeps uploads in its own directory under their sha256 (the package
treats ids as opaque hex) and records what the package pinned,
and runs tasks on real workers, so the package is tested end to end without Rust.

The fake must never turn its own bug into a hang: every thread it starts records what it
raised in ``FakeNode.errors`` (``MeshTestCase`` fails the test with them), and a job whose
thread broke has its connection dropped, as a crashed node's would be, so the package's
calls fail with ``NodeError`` instead of waiting. ``MeshTestCase`` also arms a watchdog:
a test still running after ``TEST_TIMEOUT`` seconds dumps every thread's stack and ends
the run with an error.
"""

import base64
import faulthandler
import hashlib
import json
import os
import queue
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
WORKER = os.path.join(PYTHON_DIR, "mesh", "_worker.py")
FAKE_MESH = os.path.join(HERE, "fake_mesh.py")
sys.path.insert(0, PYTHON_DIR)

_HEADER = struct.Struct(">BI")
INLINE_VALUE = 64 * 1024
# The longest frame a worker may send (src/exec/python/worker.rs): a 64 MiB value, plus.
MAX_FRAME = (64 << 20) + (1 << 20)
# The longest any one test may take before the watchdog ends the run.
TEST_TIMEOUT = 90
# The longest the fake waits for a worker's answer when the job sets no timeout: a
# worker that does not answer by then is a bug, reported as one.
ANSWER_LIMIT = 30.0
# How long the node gives each reply line to be written (src/node/control.rs IO_TIMEOUT).
IO_TIMEOUT = 5.0


class WorkerDied(Exception):
    pass


class Cancelled(Exception):
    pass


class WorkerProc(object):
    """One real worker process and the node's side of its frames."""

    def __init__(self, cwd=None, env=None, python=None, pythonpath=None):
        self.cwd = cwd or tempfile.mkdtemp(prefix="mesh-w-")
        self._own_cwd = cwd is None
        e = dict(os.environ)
        if pythonpath is None:
            pythonpath = [HERE] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else [])
        e["PYTHONPATH"] = os.pathsep.join(pythonpath)
        if env:
            e.update(env)
        with open(os.path.join(self.cwd, "startup.log"), "wb") as startup:
            self.proc = subprocess.Popen(
                [python or sys.executable, WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=startup,
                cwd=self.cwd,
                env=e,
                start_new_session=True,
            )
        self.tasks_run = 0

    def send(self, kind, payload=b""):
        try:
            self.proc.stdin.write(_HEADER.pack(ord(kind), len(payload)) + payload)
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:  # a broken pipe, or a pipe we closed
            raise WorkerDied("the worker's stdin is closed (%s; status %s)" % (e, self.proc.poll()))

    def receive(self, timeout=None, stop=None):
        """The next frame ``(kind, payload)``, read as the node reads it: WorkerDied on
        EOF, or when the worker breaks the protocol (a kind other than ``N`` or ``R``, a
        frame longer than ``MAX_FRAME``); TimeoutError past ``timeout``; Cancelled as
        soon as ``stop()`` turns true."""
        deadline = None if timeout is None else time.monotonic() + timeout
        head = self._read_exact(_HEADER.size, deadline, stop)
        kind, n = _HEADER.unpack(head)
        if chr(kind) not in "NR" or n > MAX_FRAME:
            raise WorkerDied("the worker broke the protocol: a frame of kind %r and %d bytes" % (chr(kind), n))
        # Once a frame has begun, the rest follows at once: a worker stalled mid-frame is
        # as broken as one that died.
        body_deadline = time.monotonic() + ANSWER_LIMIT
        if deadline is not None:
            body_deadline = min(body_deadline, max(deadline, time.monotonic() + 5.0))
        return chr(kind), self._read_exact(n, body_deadline, stop)

    def _read_exact(self, n, deadline, stop):
        fd = self.proc.stdout.fileno()
        out = bytearray()
        while len(out) < n:
            wait = 0.05 if stop is not None else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    if out:
                        raise WorkerDied("the worker stalled in the middle of a frame")
                    raise TimeoutError("the worker did not answer in time")
                wait = left if wait is None else min(wait, left)
            try:
                ready, _, _ = select.select([fd], [], [], wait)
                chunk = os.read(fd, min(n - len(out), 1 << 20)) if ready else None
            except (OSError, ValueError) as e:
                raise WorkerDied("reading from the worker: %s" % e)
            if chunk is None:
                if stop is not None and stop():
                    raise Cancelled()
                continue
            if not chunk:
                if out:
                    raise WorkerDied("a frame cut short (status %s)" % self.proc.wait())
                raise WorkerDied("the worker closed its pipe (status %s)" % self.proc.wait())
            out += chunk
        return bytes(out)

    def call(self, code_id, payload, code_blob=None, timeout=None, stop=None):
        """Runs a task as the node does: ``T``; on ``N`` send ``C`` and ``T`` again.
        Returns ``(status, result bytes, output bytes, asked_for_code)``."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left():
            return None if deadline is None else max(deadline - time.monotonic(), 0.001)

        self.send("T", code_id + payload)
        kind, body = self.receive(left(), stop)
        asked = False
        if kind == "N":
            asked = True
            if code_blob is None:
                raise AssertionError("the worker asked for code the test did not give")
            self.send("C", code_id + code_blob)
            self.send("T", code_id + payload)
            kind, body = self.receive(left(), stop)
        if kind != "R":
            raise AssertionError("unexpected frame %r" % kind)
        self.tasks_run += 1
        status = body[0]
        (n,) = struct.unpack(">I", body[1:5])
        return status, body[5 : 5 + n], body[5 + n :], asked

    def close(self, timeout=10):
        """Closes its stdin and returns its exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        self._close_pipes()
        if self._own_cwd:
            shutil.rmtree(self.cwd, ignore_errors=True)
        return code

    def kill(self):
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        self.proc.wait()
        self._close_pipes()

    def _close_pipes(self):
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def code_id_of(blob):
    return hashlib.sha256(blob).digest()


class FakeNode(object):
    """A control socket at ``<home>/control.sock`` that runs Python jobs on real workers.

    ``nodes`` are ``(name, workers)`` pairs: the fake's worker slots, each named as the
    mesh node it pretends to be, so statistics have several rows. ``others`` are further
    rows of ``peers`` that must not run anything (no ``allow_run``, no Python, another
    key). ``jobs`` records every submitted job spec, ``lines`` every reply line of every
    job, ``blob_results`` the results sent as blobs, ``pinned`` the ids pinned now,
    ``errors`` what broke in the fake.
    ``worker_pythonpath``: the workers' ``PYTHONPATH`` entries (default: this directory,
    so that they import ``tasks`` as a node with the user's modules installed would).

    ``fault`` (set by a test, used by the next submit) breaks the node on purpose:
    ``("drop", n)`` closes the connection after ``n`` ``pytask`` lines, without a report;
    ``("refuse", text)`` answers ``{"error": text}``; ``("garbage", n)`` sends a line that
    is not JSON after ``n`` ``pytask`` lines; ``("waiting", text)`` sends a ``waiting``
    notice first, then runs the job.
    """

    def __init__(self, home, nodes=(("alpha", 2), ("beta", 1)), others=(), worker_pythonpath=None):
        self.home = home
        self.worker_pythonpath = worker_pythonpath
        self.blobs = os.path.join(home, "fake-store")
        os.makedirs(self.blobs, exist_ok=True)
        self.path = os.path.join(home, "control.sock")
        self.slots = [(name, i) for name, n in nodes for i in range(n)]
        self.nodes = list(nodes)
        self.others = list(others)
        self.jobs = []
        self.lines = []
        self.puts = []
        self.pinned = set()
        self.blob_results = 0
        self.errors = []
        self.fault = None
        self.workers = {}
        self.lock = threading.Lock()
        self.idle = queue.Queue()
        for slot in self.slots:
            self.idle.put(slot)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(32)
        self.stopped = False
        self.thread = self._spawn(self._accept)

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            os.remove(self.path)
        except OSError:
            pass
        with self.lock:
            workers, self.workers = list(self.workers.values()), {}
        for w in workers:
            w.close(timeout=5)

    # Threads that cannot fail silently.

    def _spawn(self, target, *args, **kwargs):
        on_error = kwargs.pop("on_error", None)

        def run():
            try:
                target(*args)
            except BaseException:
                self.broke("thread %s" % getattr(target, "__name__", target))
                if on_error is not None:
                    try:
                        on_error()
                    except BaseException:
                        self.broke("cleaning up after thread %s" % getattr(target, "__name__", target))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def broke(self, where):
        """Records the exception being handled as a bug of the fake."""
        self.errors.append("%s:\n%s" % (where, traceback.format_exc()))

    # Serving.

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._spawn(self._serve, conn, on_error=lambda c=conn: _drop(c))

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            line = f.readline(65536)
            if not line:
                return
            req = json.loads(line)
            cmd = req.get("cmd")
            conn.settimeout(IO_TIMEOUT)
            if cmd == "upload":
                self._send(conn, self._upload(f, req))
            elif cmd == "read":
                self._send_blob(conn, req["id"])
            elif cmd == "unpin":
                with self.lock:
                    self.pinned.difference_update(req["ids"])
                self._send(conn, {"ok": None})
            elif cmd == "peers":
                self._send(conn, {"peers": {"rows": self.peer_rows()}})
            elif cmd == "submit":
                self._submit(conn, req["job"])
            else:
                self._send(conn, {"error": "bad request: %r" % cmd})
        finally:
            f.close()
            conn.close()

    def peer_rows(self):
        python = {"major": sys.version_info[0], "minor": sys.version_info[1]}
        rows = []
        for i, (name, n) in enumerate(self.nodes):
            rows.append({"name": name, "peer_id": "fake-" + name, "workers": n, "self": i == 0,
                         "state": "member", "facts": {"allow_run": i > 0, "python": python}})
        for name, n, state, allow_run, has_python in self.others:
            facts = {"allow_run": allow_run}
            if has_python:
                facts["python"] = python
            rows.append({"name": name, "peer_id": "fake-" + name, "workers": n, "self": False,
                         "state": state, "facts": facts})
        return rows

    def _send(self, conn, obj, lock=None):
        data = json.dumps(obj).encode() + b"\n"
        if lock is None:
            conn.sendall(data)
        else:
            with lock:
                conn.sendall(data)

    def _upload(self, f, req):
        data = f.read(req["len"])
        if len(data) != req["len"]:
            return {"error": "upload: the client sent %d of %d bytes" % (len(data), req["len"])}
        blob_id = self.store(data)
        if req.get("pin"):
            with self.lock:
                self.pinned.add(blob_id)
        return {"blob": blob_id}

    def _send_blob(self, conn, blob_id):
        try:
            data = self._read(blob_id)
        except OSError as e:
            self._send(conn, {"error": "read: %s" % e})
            return
        self._send(conn, {"bytes": len(data)})
        conn.sendall(data)

    def store(self, data):
        blob_id = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, blob_id), "wb") as fh:
            fh.write(data)
        self.puts.append(blob_id)
        return blob_id

    def _read(self, blob_id):
        with open(os.path.join(self.blobs, blob_id), "rb") as fh:
            return fh.read()

    # Jobs.

    def _submit(self, conn, job):
        spec = job["Python"]
        self.jobs.append(spec)
        fault, self.fault = self.fault, None
        if fault and fault[0] == "refuse":
            self._send(conn, {"error": fault[1]})
            return
        if set(spec) != {"tasks", "inputs", "code", "timeout_ms", "retries", "needs"}:
            raise AssertionError("a Python job with fields %s" % sorted(spec))
        if not (spec["needs"]["native"] is True and spec["needs"]["python"] is True):
            raise AssertionError("a Python job that does not need native Python: %r" % (spec["needs"],))
        code = self._read(spec["code"])
        payloads = split(self._read(spec["inputs"]))
        if len(payloads) != spec["tasks"]:
            raise AssertionError("the task list holds %d payloads for %d tasks" % (len(payloads), spec["tasks"]))
        timeout = None if spec["timeout_ms"] is None else spec["timeout_ms"] / 1000.0
        started = time.monotonic()
        todo = queue.Queue()
        for i in range(len(payloads)):
            todo.put((i, 1))
        wlock = threading.Lock()
        state = {"done": 0, "sent": 0, "failed": [], "gone": False, "per": {}}
        finished = threading.Event()
        total = len(payloads)

        def send_line(obj):
            self.lines.append(obj)
            conn.sendall((json.dumps(obj) + "\n").encode())

        def watch_client():  # a closed connection cancels the job
            while not finished.is_set() and not state["gone"]:
                try:
                    ready, _, _ = select.select([conn], [], [], 0.05)
                except (OSError, ValueError):  # the job's own thread closed it: it is over
                    return
                if ready:
                    try:
                        if not conn.recv(64):
                            state["gone"] = True
                    except OSError:
                        state["gone"] = True

        def break_connection():
            state["gone"] = True
            finished.set()
            _drop(conn)

        if fault and fault[0] == "waiting":
            with wlock:
                send_line({"waiting": fault[1]})
        self._spawn(watch_client)

        def settle(line, node, took):
            with wlock:
                if state["gone"]:
                    state["done"] += 1
                    if state["done"] == total:
                        finished.set()
                    return
                state["done"] += 1
                per = state["per"].setdefault(node, [0, 0.0])
                if "ok" in line:
                    per[0] += 1
                per[1] += took
                try:
                    if fault and fault[0] in ("drop", "garbage") and state["sent"] == fault[1]:
                        if fault[0] == "garbage":
                            conn.sendall(b"this is not json\n")
                        break_connection()
                        return
                    send_line({"pytask": line})
                    state["sent"] += 1
                    send_line({"progress": {"done": state["done"], "total": total}})
                except OSError:
                    state["gone"] = True  # the package went away (or did not read for 5 s)
                if state["done"] == total:
                    finished.set()

        def run_one(index, attempt):
            slot = self.idle.get()
            try:
                if state["gone"]:
                    settle({"task": index, "node": slot[0], "attempts": attempt, "took_s": 0.0,
                            "error": "the job was cancelled"}, slot[0], 0.0)
                    return
                t0 = time.monotonic()
                error = None
                try:
                    status, result, output, _ = self._worker(slot).call(
                        bytes.fromhex(spec["code"]), payloads[index], code,
                        timeout if timeout is not None else ANSWER_LIMIT, lambda: state["gone"])
                except TimeoutError:
                    self._drop(slot)
                    if timeout is None:
                        raise AssertionError("a worker gave no answer within %s s" % ANSWER_LIMIT)
                    error = "timed out after %.1f s; its worker was ended" % timeout
                except WorkerDied as e:
                    self._drop(slot)
                    error = "the Python worker died while running the task (%s)" % e
                except Cancelled:
                    self._drop(slot)
                    error = "the job was cancelled"
                took = time.monotonic() - t0
                if error is None and status == 2:
                    error = "on this node's Python %d.%d: %s" % (sys.version_info[0], sys.version_info[1],
                                                                 result.decode("utf-8", "replace"))
                elif error is None and status not in (0, 1):
                    raise AssertionError("a worker answered with status %r" % status)
                if error is not None:
                    if attempt <= spec["retries"] and not state["gone"]:
                        todo.put((index, attempt + 1))
                        return
                    with wlock:
                        state["failed"].append([index, error])
                    settle({"task": index, "node": slot[0], "attempts": attempt, "took_s": took,
                            "error": error}, slot[0], took)
                    return
                ok = {"raised": status == 1, "value": None, "blob": None, "len": len(result),
                      "output": output.decode("utf-8", "replace")}
                if len(result) <= INLINE_VALUE:
                    ok["value"] = base64.b64encode(result).decode()
                else:
                    ok["blob"] = self.store(result)
                    self.blob_results += 1
                settle({"task": index, "node": slot[0], "attempts": attempt, "took_s": took, "ok": ok},
                       slot[0], took)
            finally:
                self.idle.put(slot)

        def pump():
            while not finished.is_set():
                try:
                    index, attempt = todo.get(timeout=0.05)
                except queue.Empty:
                    continue
                run_one(index, attempt)

        if total:
            for _ in range(len(self.slots)):
                self._spawn(pump, on_error=break_connection)
            finished.wait()
        if state["gone"]:
            return  # a cancelled (or broken) job sends nothing more
        elapsed = time.monotonic() - started
        nodes = [{"name": name, "peer_id": "fake-" + name, "workers": n, "tasks": state["per"].get(name, [0, 0])[0],
                  "task_time": _duration(state["per"].get(name, [0, 0.0])[1]), "steals": 0}
                 for name, n in self.nodes]
        report = {"results": "Python", "elapsed": _duration(elapsed), "tasks": total,
                  "failed": state["failed"], "nodes": nodes, "workers": len(self.slots),
                  "duplicates": 0, "backups": 0, "retried": 0, "halted": False}
        try:
            with wlock:
                send_line({"report": report})
        except OSError:
            pass

    def _worker(self, slot):
        with self.lock:
            w = self.workers.get(slot)
            if w is None:
                w = self.workers[slot] = WorkerProc(pythonpath=self.worker_pythonpath)
            return w

    def _drop(self, slot):
        with self.lock:
            w = self.workers.pop(slot, None)
        if w is not None:
            w.kill()
            shutil.rmtree(w.cwd, ignore_errors=True)


def _drop(conn):
    """Ends a connection at once, as a node that crashed would."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _duration(seconds):
    secs = int(seconds)
    return {"secs": secs, "nanos": int((seconds - secs) * 1e9)}


def split(data):
    out, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from(">I", data, at)
        out.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return out


def short_tempdir(prefix="m"):
    """A temporary directory with a short path (Unix socket paths hold 107 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def fake_mesh_binary(directory, mode=None):
    """An executable ``mesh`` (for ``MESH_BIN``) that runs ``tests/fake_mesh.py``."""
    path = os.path.join(directory, "mesh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")
        if mode:
            f.write("FAKE_MESH_MODE=%s; export FAKE_MESH_MODE\n" % mode)
        f.write('exec "%s" "%s" "$@"\n' % (sys.executable, FAKE_MESH))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purpose.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class MeshTestCase(unittest.TestCase):
    """A test that cannot hang: a watchdog ends the run if it outlasts ``TEST_TIMEOUT``.
    With a class attribute ``node`` (a FakeNode), what broke in the fake during the test
    fails it."""

    node = None

    def setUp(self):
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        if self.node is not None:
            self._fake_errors = len(self.node.errors)
            self.addCleanup(self._check_fake)

    def _check_fake(self):
        new = self.node.errors[self._fake_errors :]
        if new:
            self.fail("the fake node broke during this test:\n" + "\n".join(new))


class FakeHome(MeshTestCase):
    """A fake node in a fresh home, found through MESH_HOME."""

    nodes = (("alpha", 2), ("beta", 1))
    others = ()
    worker_pythonpath = None

    @classmethod
    def setUpClass(cls):
        cls.home = short_tempdir()
        cls.node = FakeNode(cls.home, cls.nodes, cls.others, cls.worker_pythonpath)
        cls._old_home = os.environ.get("MESH_HOME")
        os.environ["MESH_HOME"] = cls.home

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        if cls._old_home is None:
            os.environ.pop("MESH_HOME", None)
        else:
            os.environ["MESH_HOME"] = cls._old_home
        shutil.rmtree(cls.home, ignore_errors=True)
