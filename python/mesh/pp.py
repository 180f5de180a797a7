"""Parallel Python's API (pp 1.6/1.7) on the mesh: ``import mesh.pp as pp`` and a pp
script runs unchanged.

    import mesh.pp as pp
    job_server = pp.Server()                      # ppservers are ignored: the mesh finds itself
    job = job_server.submit(sum_primes, (100,), depfuncs=(isprime,), modules=("math",))
    print(job())
    job_server.print_stats()

What travels, as with pp:

* ``func`` and ``depfuncs`` travel as **source** (``inspect.getsource``) and are exec'd in
  one namespace on the worker, after ``import``-ing each of ``modules`` there by name.
  Lambdas cannot travel (they have no name to call); builtins and functions without
  source (``math.sin``) travel by reference and must be importable on the nodes.
* ``args`` travel as a pickle, and results come back as one. A bound method travels with
  its instance (pickled) and, when the class is defined in your script, the class's
  source, as do instances of your script's classes among the arguments.
* ``globals=globals()`` adds every module, function and class of that namespace, as pp
  did (except the mesh package itself, which the nodes need not have): the functions and
  classes defined there travel as source; modules, and names imported from them
  (``from math import sqrt``), are imported by name on the worker. Plain values
  (constants) do not travel, as with pp.

Where it differs from pp, on purpose:

* When the job's function raises, the remote traceback is printed to **stderr** and
  ``job()`` returns None (pp printed it into the job's output). A task that gives no
  result (its worker crashed, or no node could set it up) prints the node's reason to
  stderr and also returns None. What a job printed is printed to stdout when its result
  is unpickled, as pp does (at ``job()``, or before its callback).
* Calls of the same function with the same depfuncs and modules are sent together as
  one mesh job, a few milliseconds after the last one (or at once when you wait for one).
* ``ppservers`` is ignored: the nodes of the mesh find each other. ``secret`` is the
  mesh key of the session node started when no node runs under ``MESH_HOME``; ``ncpus``
  its worker count (a node that already runs keeps its own). ``restart``, ``proto`` and
  ``socket_timeout`` are accepted and ignored: workers stay warm and are replaced by the
  node after 10,000 tasks or when they grow too large.
* A task that gives no result is run again elsewhere up to ``RETRIES`` (2) more times.
* Callbacks run one at a time on one background thread, the one that delivers results:
  a callback may submit jobs, but calling ``job()`` or ``wait()`` on an unfinished job
  there raises RuntimeError (it would wait forever).
* ``get_stats()`` has one row per mesh node that ran jobs (pp had one per ppserver, and
  ``"local"``); ``get_active_nodes()`` lists this machine's node and the members that
  allow runs and have a Python 3.
"""

import inspect
import os
import pickle
import re
import sys
import textwrap
import threading
import time
import types

from . import _batch, _client, _payload
from ._errors import MeshError

version = "1.6.4"
__version__ = version
copyright = "Parallel Python's API, on the mesh"

# Further runs a task that gave no result gets (a crash, a node that cannot load it).
RETRIES = 2
# Seconds wait() gives the mesh jobs' reports after their last results.
REPORT_GRACE = 5.0
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\s+as\s+[A-Za-z_][A-Za-z0-9_]*)?$")


class Statistics(object):
    """One node's figures, as pp's ``get_stats()`` returns them."""

    def __init__(self, ncpus, rworker=None):
        self.ncpus = ncpus
        self.time = 0.0
        self.njobs = 0
        self.rworker = rworker


class _Task(object):
    """A submitted job: call it to wait for its result (pp's ``_Task``)."""

    def __init__(self, server, tid, group, callback, callbackargs, shipped):
        self.server = server
        self.tid = tid
        self.group = group
        self.callback = callback
        self.callbackargs = callbackargs
        self.finished = False
        self.unpickled = False
        self.result = None
        self.sresult = None
        self._shipped = shipped
        self._outcome = None
        self._unpickle_lock = threading.Lock()

    def __call__(self, raw_result=False):
        """Waits for the job and returns its result (None if it raised or failed)."""
        self.wait()
        self._unpickle()
        return self.sresult if raw_result else self.result

    def wait(self):
        """Waits for the job to finish."""
        if self.finished:
            return
        _batch.refuse_wait_on_delivery("job()")
        self.server._pool.flush()
        # The server's condition, not an Event per job: jobs are many and cheap. A job
        # sets ``finished`` and then notifies under the server's lock (``_finished``).
        with self.server._lock:
            while not self.finished:
                self.server._lock.wait()

    # The pool's sink interface.

    def claim(self):
        return True

    def settle(self, outcome):
        self._outcome = outcome
        if outcome.status != "failed":
            self.sresult = outcome.data
        try:
            if self.callback is not None:
                self._unpickle()
                try:
                    self.callback(*(tuple(self.callbackargs) + (self.result,)))
                except Exception:
                    sys.stderr.write("mesh.pp: the callback of job %d raised:\n" % self.tid)
                    import traceback

                    traceback.print_exc()
        finally:
            self.finished = True
            self.server._finished(self)

    def _unpickle(self):
        """Prints what the job printed and decodes its result, once."""
        with self._unpickle_lock:
            if self.unpickled or self._outcome is None:
                return
            self.unpickled = True
            o = self._outcome
            if o.output:
                sys.stdout.write(o.output)
                sys.stdout.flush()
            if o.status == "returned":
                try:
                    self.result = o.value(self._shipped)
                except MeshError as e:
                    sys.stderr.write("mesh.pp: job %d: %s\n" % (self.tid, e))
            elif o.status == "raised":
                where = " on %s" % o.node if o.node else ""
                sys.stderr.write(
                    "mesh.pp: job %d raised%s:\n%s" % (self.tid, where, _payload.raised_text(o.data))
                )
            else:
                sys.stderr.write("mesh.pp: job %d failed: %s\n" % (self.tid, o.failure()))
            sys.stderr.flush()


class Server(object):
    """Parallel Python's job server, on the mesh (see the module doc)."""

    default_port = 60000
    default_secret = "epo20pdosl;dksldkmm"

    def __init__(self, ncpus="autodetect", ppservers=(), secret=None, restart=False, proto=2,
                 socket_timeout=3600, home=None, local=False, **ignored):
        _payload.refuse_while_loading_main("mesh.pp.Server()")
        self._created = time.time()
        self._ncpus = None
        self._explicit = False
        self.set_ncpus(ncpus)
        self._secret = secret
        self._home = home
        self._local = local
        self._pool = _batch.Pool(self._connect)
        self._codes = {}
        self._lock = threading.Condition()
        self._tids = 0
        self._active = {}
        self._destroyed = False

    def _connect(self):
        workers = self._ncpus if self._explicit and self._ncpus else None
        return _client.connect(self._home, self._secret, self._local, workers)

    # Submitting.

    def submit(self, func, args=(), depfuncs=(), modules=(), callback=None, callbackargs=(),
               group="default", globals=None):
        """Submits ``func(*args)``; returns the job (call it for the result).

        ``depfuncs``: functions and classes ``func`` uses (sent as source);
        ``modules``: names of modules to import first on the worker; ``callback``:
        called as ``callback(*callbackargs, result)`` once the result is in, from a
        background thread; ``globals``: a namespace whose modules, functions and
        classes are all added.
        """
        if self._destroyed:
            raise RuntimeError("Cannot submit jobs: server instance has been destroyed")
        args = _tuple(args, "args")
        depfuncs = _tuple(depfuncs, "depfuncs")
        modules = _tuple(modules, "modules")
        callbackargs = _tuple(callbackargs, "callbackargs")
        if globals is not None and not isinstance(globals, dict):
            raise TypeError("globals argument must be a dictionary")
        method = None
        if isinstance(func, types.MethodType):
            args = (func.__self__,) + args
            method = func.__name__
        payload, found = _dump_args(args)
        code = self._code_for(func, method, depfuncs, modules, globals, found)
        with self._lock:
            self._tids += 1
            task = _Task(self, self._tids, group, callback, callbackargs, code.shipped)
            self._active[task.tid] = task
        try:
            self._pool.add(code, payload, task)
        except BaseException:
            self._finished(task)
            raise
        return task

    def _code_for(self, func, method, depfuncs, modules, globals, found):
        fkey = (func.__func__, type(func.__self__)) if method else func
        key = (fkey, depfuncs, modules, id(globals) if globals is not None else None,
               len(globals) if globals is not None else 0, frozenset(found))
        code = self._codes.get(key)
        if code is None:
            code = self._build_code(key, func, method, depfuncs, modules, globals, found)
            if len(self._codes) > 256:
                self._codes.clear()
            self._codes[key] = code
        return code

    def _build_code(self, key, func, method, depfuncs, modules, globals, found):
        imports = [_module_name(m) for m in modules]
        froms = []
        ship = list(depfuncs)
        if globals is not None:
            more_imports, froms, more_ship = _from_globals(globals)
            imports += [m for m in more_imports if m not in imports]
            ship += more_ship
        ship += sorted(found, key=lambda o: getattr(o, "__qualname__", ""))
        if method:
            call = ("method", method)
            cls = type(func.__self__)
            if cls.__module__ == "__main__":
                ship.append(cls)
        elif _has_source(func):
            call = ("func", func.__name__)
            ship.append(func)
        else:
            call = ("ref", pickle.dumps(func, protocol=_payload.PROTOCOL))
        sources, classes, shipped = _sources(ship, strict_ids={id(o) for o in depfuncs} | {id(func)},
                                             leave=globals is not None)
        code = _batch.Code(("pp", id(self), key),
                           lambda: _payload.code_blob("pp", imports=imports, froms=froms, sources=sources,
                                                      classes=classes, call=call, argv=[]),
                           None, RETRIES, ())
        code.shipped = shipped
        return code

    # Waiting and statistics.

    def wait(self, group=None):
        """Waits for all jobs (of ``group``) to finish."""
        if self._pending(group):
            _batch.refuse_wait_on_delivery("wait()")
        self._pool.flush()
        with self._lock:
            while any(group is None or t.group == group for t in self._active.values()):
                self._lock.wait(0.1)
        if group is None and not _batch.on_delivery_thread():
            # The mesh jobs' reports come just after their last results: wait a little
            # for them, so that get_stats() right after wait() counts every node.
            self._pool.wait_idle(REPORT_GRACE)

    def _pending(self, group=None):
        with self._lock:
            return any(group is None or t.group == group for t in self._active.values())

    def _finished(self, task):
        with self._lock:
            self._active.pop(task.tid, None)
            self._lock.notify_all()

    def get_ncpus(self):
        """Workers: the count given to ``Server``/``set_ncpus``, else the mesh's (this
        node's workers plus those of the members that run others' programs)."""
        if self._explicit:
            return self._ncpus
        try:
            total = sum(self.get_active_nodes().values())
        except Exception:
            total = 0
        return total or self._ncpus

    def set_ncpus(self, ncpus="autodetect"):
        """Sets the worker count of the session node this server starts. A node that
        already runs (``mesh join``, or this process's session) keeps its own."""
        explicit = ncpus != "autodetect"
        if not explicit:
            ncpus = os.cpu_count() or 1
        if not isinstance(ncpus, int) or ncpus < 0:
            raise ValueError("ncpus must be an integer > 0")
        self._ncpus = ncpus
        self._explicit = explicit

    def get_active_nodes(self):
        """``{node name: workers}`` of the nodes that may run this server's jobs: this
        machine's node and the members that allow runs, if they have a Python 3."""
        nodes = {}
        for row in self._pool.node().peers():
            facts = row.get("facts") or {}
            if facts.get("python") is None:
                continue
            if row.get("self") or (row.get("state") == "member" and facts.get("allow_run")):
                nodes[row.get("name") or "?"] = int(row.get("workers") or 0)
        return nodes

    def get_stats(self):
        """``{node name: Statistics}`` of the nodes that ran this server's jobs."""
        stats = {}
        for row in self._pool.stats.rows():
            s = Statistics(row["workers"])
            s.njobs = row["tasks"]
            s.time = row["task_time_s"]
            stats[row["name"]] = s
        return stats

    def print_stats(self):
        """Prints pp's statistics table, one row per mesh node."""
        print("Job execution statistics:")
        walltime = time.time() - self._created
        statistics = list(self.get_stats().items())
        totaljobs = 0.0
        for ppserver, stat in statistics:
            totaljobs += stat.njobs
        print(" job count | % of all jobs | job time sum | time per job | job server")
        for ppserver, stat in statistics:
            if stat.njobs:
                print("    %6i |        %6.2f |     %8.4f |  %11.6f | %s"
                      % (stat.njobs, 100.0 * stat.njobs / totaljobs, stat.time,
                         stat.time / stat.njobs, ppserver))
        print("Time elapsed since server creation %s" % walltime)
        print("%s active tasks, %s cores" % (len(self._active), self.get_ncpus()))
        print("")

    def destroy(self):
        """Ends the server: jobs not finished are cancelled (their ``job()`` gives None)."""
        self._destroyed = True
        self._pool.close(cancel=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wait()
        self.destroy()
        return False


class Template(object):
    """A function with its depfuncs, modules and callback fixed: ``submit(*args)``."""

    def __init__(self, job_server, func, depfuncs=(), modules=(), callback=None, callbackargs=(),
                 group="default", globals=None):
        self.job_server = job_server
        self.func = func
        self.depfuncs = depfuncs
        self.modules = modules
        self.callback = callback
        self.callbackargs = callbackargs
        self.group = group
        self.globals = globals

    def submit(self, *args):
        return self.job_server.submit(self.func, args, self.depfuncs, self.modules, self.callback,
                                      self.callbackargs, self.group, self.globals)


# Helpers.


def _tuple(value, name):
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise TypeError("%s argument must be a tuple" % name)


def _module_name(name):
    if not isinstance(name, str) or not _MODULE.match(name.strip()):
        raise ValueError("modules: %r is not a module name (like 'math' or 'os.path')" % (name,))
    return name.strip()


class _Recorder(pickle.Pickler):
    """Pickles arguments and notes the classes and functions of ``__main__`` among them,
    which must travel as source (the worker has no ``__main__`` of the user's)."""

    def __init__(self, f):
        pickle.Pickler.__init__(self, f, protocol=_payload.PROTOCOL)
        self.found = set()

    def reducer_override(self, obj):
        if isinstance(obj, (type, types.FunctionType)):
            if getattr(obj, "__module__", None) == "__main__":
                self.found.add(obj)
        else:
            cls = type(obj)
            if getattr(cls, "__module__", None) == "__main__":
                self.found.add(cls)
        return NotImplemented


def _dump_args(args):
    import io

    buf = io.BytesIO()
    r = _Recorder(buf)
    try:
        r.dump(args)
    except Exception as e:
        raise TypeError("cannot send these args to the mesh: they do not pickle: %s" % e) from e
    return buf.getvalue(), r.found


def _has_source(func):
    if not isinstance(func, types.FunctionType):
        return False
    if func.__name__ == "<lambda>":
        raise ValueError(
            "mesh.pp sends functions as source, as pp does, and a lambda has no name to call "
            "on the worker: define it with def"
        )
    try:
        inspect.getsourcelines(func)
    except (OSError, TypeError):
        if func.__module__ == "__main__":
            raise ValueError(
                "mesh.pp sends functions as source, as pp does, and the source of %s is not "
                "available (defined interactively?): define it in a file" % func.__qualname__
            )
        return False
    return True


def _from_globals(namespace):
    """What pp's ``globals=`` adds: ``(imports, froms, ship)``. ``imports``: the namespace's
    modules (``import x`` / ``import x as y``); ``froms``: functions and classes it took
    from other modules, and builtins such as ``sqrt`` of ``from math import sqrt``
    (``(module, qualname, name)``: imported by name on the worker); ``ship``: the
    functions and classes defined in it (sent as source). The mesh package itself is left
    out: the nodes need not have it."""
    imports, froms, ship = [], [], []
    home = namespace.get("__name__")
    for name, obj in namespace.items():
        if name.startswith("__"):
            continue
        if isinstance(obj, types.ModuleType):
            modname = obj.__name__
            if modname in ("__main__", "builtins") or _is_mesh(modname):
                continue
            imports.append(modname if name == modname else "%s as %s" % (modname, name))
        elif isinstance(obj, (types.FunctionType, type, types.BuiltinFunctionType)):
            module = getattr(obj, "__module__", None)
            if module == home:
                if not isinstance(obj, types.BuiltinFunctionType):
                    ship.append(obj)
            elif _importable_as(obj, module):
                froms.append((module, obj.__qualname__, name))
    return imports, froms, ship


def _is_mesh(modname):
    return modname == "mesh" or modname.startswith("mesh.")


def _importable_as(obj, module):
    """Whether ``obj`` is found again as ``module``'s attribute ``obj.__qualname__``."""
    if not module or module in ("builtins", "__main__") or _is_mesh(module):
        return False
    found = sys.modules.get(module)
    for part in getattr(obj, "__qualname__", "<>").split("."):
        found = getattr(found, part, None)
    return found is obj


def _sources(objs, strict_ids, leave):
    """``(sources, classes, shipped)`` for functions and classes sent as source: classes
    after their shipped bases; each object once. An object whose source cannot be read
    raises ValueError if the user named it (``strict_ids``), else is left out."""
    wanted, seen = [], set()
    for obj in objs:
        if id(obj) not in seen:
            seen.add(id(obj))
            wanted.append(obj)
    ordered, placed = [], set()
    ids = {id(o) for o in wanted}

    def place(obj):
        if id(obj) in placed:
            return
        placed.add(id(obj))
        if isinstance(obj, type):
            for base in obj.__bases__:
                if id(base) in ids:
                    place(base)
        ordered.append(obj)

    for obj in wanted:
        place(obj)
    sources, classes, shipped = [], [], {}
    for obj in ordered:
        try:
            lines, first = inspect.getsourcelines(obj)
            filename = inspect.getsourcefile(obj) or inspect.getfile(obj)
        except (OSError, TypeError) as e:
            if id(obj) in strict_ids or not leave:
                raise ValueError(
                    "mesh.pp sends functions and classes as source, as pp does, and the source of "
                    "%r is not available: %s" % (obj, e)
                )
            continue
        sources.append((filename, max(first, 1), textwrap.dedent("".join(lines))))
        if isinstance(obj, type):
            classes.append((obj.__module__, obj.__qualname__, obj.__name__))
            shipped[obj.__qualname__] = obj
    return sources, classes, shipped
