"""Talking to the mesh node: its control socket, a session node when none runs, the
blob store (through the socket) and pins.

The node under the home (``home=``, else ``MESH_HOME``, else ``~/.mesh``) serves JSON
lines on ``<home>/control.sock`` (``docs/PROTOCOL.md``, ``docs/python.md``): one request
line per connection, then its reply lines. When nothing answers there, the package starts
a *session node*, ``mesh session --home <home>/sessions/<id>``, with a pipe on its stdin
that stays open for the life of this Python process: the node ends when the pipe closes,
however this process ends. Its stderr goes to ``<home>/sessions/<id>.log`` so that a node
that fails to start can say why.

Bounds: at most ``MAX_JOBS`` jobs on the node at once (one connection each; the node
serves 64 clients, 16 of any other user than its own), a reply line of at most ``MAX_LINE`` bytes, ``REQUEST_TIMEOUT`` for a
one-line request, ``START_TIMEOUT`` for a session node to come up.
"""

import atexit
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time

from ._errors import MeshError, NodeError

SOCKET = "control.sock"
MAX_JOBS = 8
MAX_LINE = (64 << 20) + 1
# The largest blob the node stores or sends whole (crate::store::MAX_BLOB).
MAX_BLOB = 64 << 20
REQUEST_TIMEOUT = 120.0
START_TIMEOUT = 30.0
# The longest path a Unix socket address holds (sun_path, with its terminating NUL).
MAX_SOCKET_PATH = 107

_nodes = {}
_nodes_lock = threading.Lock()


def resolve_home(home=None):
    """The home directory: the argument, else ``MESH_HOME``, else ``~/.mesh``."""
    home = home or os.environ.get("MESH_HOME") or os.path.join("~", ".mesh")
    return os.path.abspath(os.path.expanduser(str(home)))


def connect(home=None, key=None, local=False, workers=None):
    """The node this process uses for ``home``: shared by every pool of the process.

    A node already serving ``<home>/control.sock`` is used as it is (``key`` and
    ``workers`` are its own business then). Otherwise, or with ``local=True`` (which asks
    for this machine only), a session node is started for this process; it lives until
    the process exits, so later executors and servers find their code still warm.
    """
    home = resolve_home(home)
    wanted = (home, bool(local))
    with _nodes_lock:
        node = _nodes.get(wanted)
        if node is not None and node.alive():
            return node
        socket_path = os.path.join(home, SOCKET)
        if not local and _answers(socket_path):
            node = Node(home, home)
        else:
            session = Session(home, key=key, local=local, workers=workers)
            session.start()
            node = Node(home, session.home, session)
        _nodes[wanted] = node
        return node


def _answers(path):
    """Whether a node accepts connections on the socket at ``path``."""
    if not os.path.exists(path) or len(path.encode()) > MAX_SOCKET_PATH:
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def mesh_binary():
    """The ``mesh`` binary: ``MESH_BIN``, else ``mesh`` on ``PATH``."""
    named = os.environ.get("MESH_BIN")
    if named:
        return named
    found = shutil.which("mesh")
    if not found:
        raise NodeError(
            "no mesh node runs under this home and the mesh binary is not on PATH: "
            "install mesh (or set MESH_BIN to it), or start `mesh join`"
        )
    return found


class Session(object):
    """A ``mesh session`` node started for this Python process.

    Its stdin is a pipe this process keeps open: when the process exits, however it
    exits, the pipe closes and the node ends. It runs in its own process group so that a
    Ctrl-C meant for the script does not end it before the script is done with it.
    """

    def __init__(self, home, key=None, local=False, workers=None):
        self.parent = home
        self.id = "%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.home = os.path.join(home, "sessions", self.id)
        self.log = self.home + ".log"
        self.key = key
        self.local = local
        self.workers = workers
        self.proc = None

    def command(self):
        cmd = [mesh_binary(), "session", "--home", self.home, "--remove-home"]
        if self.local:
            cmd.append("--local")
        if self.workers:
            cmd += ["--workers", str(int(self.workers))]
        return cmd

    def start(self):
        """Starts the node and waits until its control socket answers."""
        socket_path = os.path.join(self.home, SOCKET)
        if len(socket_path.encode()) > MAX_SOCKET_PATH:
            raise NodeError(
                "the session's control socket %s is longer than a Unix socket allows "
                "(%d bytes): use a shorter home (MESH_HOME)" % (socket_path, MAX_SOCKET_PATH)
            )
        os.makedirs(os.path.dirname(self.home), mode=0o700, exist_ok=True)
        env = dict(os.environ)
        if self.key is not None:
            # The key travels in the environment, not on the command line, where any
            # user of the machine could read it in the process list.
            env["MESH_KEY"] = str(self.key)
        cmd = self.command()
        with open(self.log, "wb") as log:
            try:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise NodeError("could not start %s: %s" % (cmd[0], e))
        _sessions.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                raise NodeError(
                    "the session node (%s) exited with status %s before it served its "
                    "control socket:\n%s" % (" ".join(cmd), code, self.log_text())
                )
            if _answers(socket_path):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise NodeError(
                    "the session node (%s) did not serve %s within %d s:\n%s"
                    % (" ".join(cmd), socket_path, START_TIMEOUT, self.log_text())
                )
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, limit=8192):
        try:
            with open(self.log, "rb") as f:
                text = f.read()
        except OSError:
            return "(no output)"
        text = text[-limit:].decode("utf-8", "replace").strip()
        return text or "(no output)"

    def stop(self, wait=3.0):
        """Closes the node's stdin (which ends it) and waits a little for it to go."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return  # it goes on ending by itself; the log stays for whoever looks
        if proc.returncode == 0:
            try:
                os.remove(self.log)
            except OSError:
                pass


_sessions = []


def _end_sessions():
    for s in list(_sessions):
        s.stop()


atexit.register(_end_sessions)



class Pins(object):
    """Blob ids this process asked the node to keep from its store's pruning. The node
    holds the pins (``upload`` with ``pin``) for as long as this process lives; ``remove``
    lets it have some back sooner (``unpin``)."""

    def __init__(self, node):
        self.node = node
        self.ids = set()
        self.lock = threading.Lock()

    def added(self, blob_id):
        with self.lock:
            self.ids.add(blob_id)

    def remove(self, blob_ids):
        with self.lock:
            gone = [i for i in blob_ids if i in self.ids]
            self.ids.difference_update(gone)
        if gone:
            self.node.request({"cmd": "unpin", "ids": gone})


class Node(object):
    """One mesh node's control socket, store and pins, as this process uses them.

    ``home`` is the user's home; ``node_home`` the node's own (the same, or a session's),
    where ``control.sock`` is. The node's store is reached only through the socket
    (``upload``, ``read``, ``unpin``: ``docs/PROTOCOL.md``), never by its files.
    """

    def __init__(self, home, node_home, session=None):
        self.home = home
        self.node_home = node_home
        self.socket_path = os.path.join(node_home, SOCKET)
        self.session = session
        self.pins = Pins(self)
        self.slots = threading.BoundedSemaphore(MAX_JOBS)

    def alive(self):
        if self.session is not None:
            return self.session.alive()
        return _answers(self.socket_path)

    def describe_failure(self, text, wait=0.5):
        """Adds the session node's last words to an error, if it died. Its connections
        close while it exits, a moment before it can be seen to have ended: this gives
        it ``wait`` seconds."""
        if self.session is None or self.session.proc is None:
            return text
        try:
            self.session.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return text
        return "%s; the session node ended:\n%s" % (text, self.session.log_text())

    def _connect(self, timeout):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise NodeError(self.describe_failure("cannot reach the mesh node at %s: %s" % (self.socket_path, e)))
        return s

    def request(self, obj, timeout=REQUEST_TIMEOUT, body=None, raw_reply=False):
        """Sends one request line (and ``body``'s bytes after it) and returns its one
        reply (an ``error`` raises). With ``raw_reply``, the reply is a ``bytes`` line
        and that many raw bytes follow: those are returned."""
        s = self._connect(timeout)
        try:
            s.sendall(json.dumps(obj).encode() + b"\n")
            if body is not None:
                s.sendall(body)
            reader = s.makefile("rb")
            line = reader.readline(MAX_LINE)
            reply = self._reply(line)
            if raw_reply:
                return self._raw(reader, reply)
        except OSError as e:
            raise NodeError(self.describe_failure("the mesh node at %s failed: %s" % (self.socket_path, e)))
        finally:
            s.close()
        return reply

    def _reply(self, line):
        if not line.endswith(b"\n"):
            raise NodeError(self.describe_failure("the mesh node closed the connection without an answer"))
        try:
            reply = json.loads(line)
        except ValueError as e:
            raise NodeError("the mesh node sent a malformed answer: %s" % e)
        if not isinstance(reply, dict):
            raise NodeError("the mesh node sent a malformed answer: %r" % (line[:200],))
        if "error" in reply:
            raise MeshError("the mesh node answered: %s" % reply["error"])
        return reply

    @staticmethod
    def _raw(reader, reply):
        n = reply.get("bytes")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_BLOB:
            raise MeshError("the mesh node answered a read with %r" % (reply,))
        data = reader.read(n)
        if len(data) != n:
            raise NodeError("the mesh node sent %d of the %d bytes it announced" % (len(data), n))
        return data

    def put_bytes(self, data, pin=True):
        """Stores ``data`` in the node's store (``upload``); returns its id (hex). With
        ``pin``, the node keeps it from pruning while this process lives."""
        if len(data) > MAX_BLOB:
            raise MeshError("%d bytes cannot go to the mesh in one piece; at most %d can" % (len(data), MAX_BLOB))
        request = {"cmd": "upload", "len": len(data)}
        if pin:
            request["pin"] = True
        reply = self.request(request, body=data)
        blob_id = reply.get("blob")
        if not isinstance(blob_id, str):
            raise MeshError("the mesh node answered an upload with %r" % (reply,))
        if pin:
            self.pins.added(blob_id)
        return blob_id

    def read_blob(self, blob_id, length=None):
        """A blob of the node's store (a large result), checked against its length."""
        if not blob_id or not all(c in "0123456789abcdef" for c in blob_id):
            raise MeshError("the node named a malformed blob id %r" % (blob_id,))
        data = self.request({"cmd": "read", "id": blob_id}, raw_reply=True)
        if length is not None and len(data) != length:
            raise MeshError("blob %s holds %d bytes, not the %d announced" % (blob_id[:16], len(data), length))
        return data

    def peers(self):
        """The node's view of the mesh (``mesh peers --json``'s rows)."""
        return self.request({"cmd": "peers"}).get("peers", {}).get("rows", [])

    def start_job(self, job, handler, stopped):
        """Runs ``job`` (a JobSpec dict) on its own connection, on a new thread, once one
        of the ``MAX_JOBS`` slots is free. ``handler.line(obj)`` gets each reply line,
        then ``handler.closed(error_text_or_None, cancelled)`` once. Returns the connection holder
        (``cancel()`` ends the job), or None when ``stopped()`` turned true first."""
        while not self.slots.acquire(timeout=0.1):
            if stopped():
                return None
        conn = _JobConnection(self, job, handler)
        t = threading.Thread(target=conn.run, name="mesh-job", daemon=True)
        t.start()
        return conn


class _JobConnection(object):
    """One submitted job: its socket, its reader thread."""

    def __init__(self, node, job, handler):
        self.node = node
        self.job = job
        self.handler = handler
        self.sock = None
        self.cancelled = False
        self.lock = threading.Lock()

    def cancel(self):
        """Closes the connection: the node cancels the job mesh-wide."""
        with self.lock:
            self.cancelled = True
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def run(self):
        from . import _batch

        _batch.mark_internal()
        error = None
        try:
            error = self._talk()
        except Exception as e:  # never let a reader thread die silently
            error = "the connection to the mesh node failed: %s" % (e,)
        finally:
            try:
                if self.sock is not None:
                    self.sock.close()
            except OSError:
                pass
            finally:
                self.node.slots.release()
                self.handler.closed(error, self.cancelled)

    def _talk(self):
        """Submits the job and hands each reply line on. Returns None once the job's
        ``report`` (or ``error``) line came, else why the connection ended without it."""
        with self.lock:
            if self.cancelled:
                return "the job was cancelled"
            try:
                self.sock = self.node._connect(REQUEST_TIMEOUT)
            except NodeError as e:
                return str(e)
        sock = self.sock
        try:
            sock.sendall(json.dumps({"cmd": "submit", "job": self.job}).encode() + b"\n")
        except OSError as e:
            return "the job was cancelled" if self.cancelled else "sending the job to the mesh node: %s" % e
        sock.settimeout(None)  # a job runs as long as it takes; the node writes promptly
        lines = sock.makefile("rb")
        while True:
            try:
                line = lines.readline(MAX_LINE)
            except OSError as e:
                return "the job was cancelled" if self.cancelled else "reading from the mesh node: %s" % e
            if not line:
                if self.cancelled:
                    return "the job was cancelled"
                return "the mesh node closed the connection before the job finished"
            if not line.endswith(b"\n"):
                return "the mesh node sent a reply line longer than %d bytes" % MAX_LINE
            try:
                obj = json.loads(line)
            except ValueError as e:
                return "the mesh node sent a malformed line: %s" % e
            if not isinstance(obj, dict):
                return "the mesh node sent a malformed line: %r" % (line[:200],)
            self.handler.line(obj)
            if "report" in obj or "error" in obj:
                return None


def describe_exit():
    """For tests: the sessions this process started."""
    return list(_sessions)


def _stderr(text):
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:
        pass
