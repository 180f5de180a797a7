"""The real ``_worker.py``, driven over its frames as the node drives it."""

import glob
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import time
import types
import unittest

import support
import tasks
from mesh import _payload
from support import MeshTestCase, WorkerProc, code_id_of

RETURNED, RAISED, SETUP_FAILED = 0, 1, 2


def ref_code(**kw):
    return _payload.code_blob("ref", **kw)


def call(fn, *args, **kwargs):
    return pickle.dumps(("call", fn, args, kwargs), protocol=4)


class WorkerTest(MeshTestCase):
    def setUp(self):
        super().setUp()
        self.w = WorkerProc()
        self.addCleanup(self._close)

    def _close(self):
        self.w.close()

    def run_task(self, blob, payload):
        status, result, output, asked = self.w.call(code_id_of(blob), payload, blob, timeout=30)
        return status, result, output.decode("utf-8"), asked

    def test_a_task_before_its_code_gets_N_then_runs_after_C(self):
        blob = ref_code()
        cid = code_id_of(blob)
        self.w.send("T", cid + call(tasks.add, 2, 3))
        kind, body = self.w.receive(timeout=30)
        self.assertEqual((kind, body), ("N", b""))
        self.w.send("C", cid + blob)
        self.w.send("T", cid + call(tasks.add, 2, 3))
        kind, body = self.w.receive(timeout=30)
        self.assertEqual(kind, "R")
        self.assertEqual(body[0], RETURNED)
        (n,) = struct.unpack(">I", body[1:5])
        self.assertEqual(pickle.loads(body[5 : 5 + n]), 5)
        # The code stays loaded: the next task runs at once.
        status, result, _, asked = self.run_task(blob, call(tasks.add, "a", "b"))
        self.assertFalse(asked)
        self.assertEqual(pickle.loads(result), "ab")

    def test_a_raised_exception_comes_back_with_its_traceback(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.boom, 7))
        self.assertEqual(status, RAISED)
        record = pickle.loads(result)
        exc = pickle.loads(record["exc"])
        self.assertIsInstance(exc, ValueError)
        self.assertEqual(str(exc), "boom 7")
        self.assertEqual(record["type"], "builtins.ValueError")
        self.assertIn("tasks.py", record["traceback"])
        self.assertIn('raise ValueError("boom %s" % x)', record["traceback"])
        self.assertNotIn("_worker.py", record["traceback"])

    def test_an_exception_that_does_not_unpickle_still_says_what_it_was(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.raise_stubborn))
        self.assertEqual(status, RAISED)
        record = pickle.loads(result)
        self.assertIsNone(record["exc"])
        self.assertEqual(record["type"], "tasks.Stubborn")
        self.assertEqual(record["message"], "stubborn 1")
        self.assertIn("raise Stubborn(1, 2)", record["traceback"])

    def test_a_result_that_does_not_pickle_is_raised_as_a_TypeError(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.unpicklable))
        self.assertEqual(status, RAISED)
        record = pickle.loads(result)
        self.assertIn("cannot be pickled", record["message"])

    def test_a_missing_module_is_status_2_naming_it(self):
        # A task whose function lives in a module this node does not have.
        fake = types.ModuleType("mesh_absent_mod")

        def f():
            return 1

        f.__module__, f.__qualname__ = "mesh_absent_mod", "f"
        fake.f = f
        sys.modules["mesh_absent_mod"] = fake
        try:
            payload = call(f)
        finally:
            del sys.modules["mesh_absent_mod"]
        status, result, _, _ = self.run_task(ref_code(), payload)
        self.assertEqual(status, SETUP_FAILED)
        message = result.decode()
        self.assertIn("module 'mesh_absent_mod' is not installed on this node (Python %s" %
                      ".".join(map(str, sys.version_info[:2])), message)

    def test_a_code_that_cannot_load_answers_every_task_with_its_reason(self):
        blob = _payload.code_blob("pp", imports=["mesh_no_such_numpy"], sources=[], call=("func", "f"))
        status, result, _, asked = self.run_task(blob, pickle.dumps((1,), protocol=4))
        self.assertTrue(asked)
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("module 'mesh_no_such_numpy' is not installed on this node", result.decode())
        # Remembered: the next task of that code is answered without asking for it again.
        status, result2, _, asked = self.run_task(blob, pickle.dumps((2,), protocol=4))
        self.assertFalse(asked)
        self.assertEqual((status, result2), (SETUP_FAILED, result))

    def test_a_syntax_error_in_sent_source_is_status_2(self):
        blob = _payload.code_blob("pp", sources=[("job.py", 3, "def f(x):\n    return x +\n")], call=("func", "f"))
        status, result, _, _ = self.run_task(blob, pickle.dumps((1,), protocol=4))
        self.assertEqual(status, SETUP_FAILED)
        message = result.decode()
        self.assertIn("does not compile", message)
        self.assertIn("job.py, line 4", message)

    def test_a_pickle_newer_than_the_node_reads_says_so(self):
        body = b"\x80\x63" + pickle.dumps({}, protocol=4)[2:]
        blob = _payload.MAGIC + bytes([_payload.FORMAT]) + body
        status, result, _, _ = self.run_task(blob, call(tasks.add, 1, 2))
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("cannot read pickle protocol 99", result.decode())

    def test_a_module_the_task_imports_that_is_missing_here_is_status_2(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.import_missing))
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("module 'mesh_test_module_that_is_not_here' is not installed on this node", result.decode())
        self.assertIn("needed by the task's code", result.decode())

    def test_what_a_task_prints_comes_back_and_the_frames_stay_clean(self):
        status, result, output, _ = self.run_task(ref_code(), call(tasks.chatty, 5))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, 5))
        self.assertEqual(output, "hello 5\nto stderr 5\n")
        status, result, output, _ = self.run_task(ref_code(), call(tasks.add, 1, 1))
        self.assertEqual(output, "")

    def test_writes_to_fd_1_and_2_go_to_the_log_not_the_frames(self):
        status, result, output, _ = self.run_task(ref_code(), call(tasks.raw_write, 21))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, 42))
        self.assertEqual(output, "")
        status, result, _, _ = self.run_task(ref_code(), call(tasks.add, 2, 2))
        self.assertEqual(pickle.loads(result), 4)
        with open(os.path.join(self.w.cwd, "worker.log"), "rb") as f:
            log = f.read()
        self.assertIn(b"RAW BYTES ON FD 1", log)
        self.assertIn(b"RAW BYTES ON FD 2", log)

    def test_huge_output_is_cut_at_64_KiB_with_a_note(self):
        status, result, output, _ = self.run_task(ref_code(), call(tasks.huge_output, 200000))
        self.assertEqual(pickle.loads(result), "done")
        self.assertLessEqual(len(output.encode()), 64 * 1024)
        self.assertTrue(output.startswith("x" * 60000))
        self.assertIn("[mesh: the task printed 200000 bytes; only the first 64 KiB are kept]", output)

    def test_the_initializer_runs_once_per_code_load(self):
        a = ref_code(init=pickle.dumps((tasks.init, ("a",)), protocol=4))
        b = ref_code(init=pickle.dumps((tasks.init, ("b",)), protocol=4))
        for _ in range(3):
            _, result, _, _ = self.run_task(a, call(tasks.init_state))
            self.assertEqual(pickle.loads(result), {"init": 1, "tag": "a"})
        _, result, _, _ = self.run_task(b, call(tasks.init_state))
        self.assertEqual(pickle.loads(result), {"init": 2, "tag": "b"})
        _, result, _, asked = self.run_task(a, call(tasks.init_state))
        self.assertFalse(asked)
        self.assertEqual(pickle.loads(result)["init"], 2)

    def test_a_failing_initializer_is_status_2_with_its_traceback(self):
        blob = ref_code(init=pickle.dumps((tasks.init_fails, ("x",)), protocol=4))
        status, result, _, _ = self.run_task(blob, call(tasks.add, 1, 2))
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("the initializer raised", result.decode())
        self.assertIn("initializer refuses x", result.decode())

    def test_at_most_four_codes_stay_loaded_least_recently_used_first(self):
        codes = [ref_code(argv=["code%d" % i]) for i in range(5)]
        for blob in codes[:4]:
            self.assertTrue(self.run_task(blob, call(tasks.add, 1, 1))[3])
        self.assertFalse(self.run_task(codes[0], call(tasks.add, 1, 1))[3])  # 0 is now the newest
        self.assertTrue(self.run_task(codes[4], call(tasks.add, 1, 1))[3])  # evicts 1
        self.assertFalse(self.run_task(codes[0], call(tasks.add, 1, 1))[3])
        self.assertFalse(self.run_task(codes[2], call(tasks.add, 1, 1))[3])
        self.assertTrue(self.run_task(codes[1], call(tasks.add, 1, 1))[3])

    def test_eof_ends_the_worker_with_status_0(self):
        self.run_task(ref_code(), call(tasks.add, 1, 1))
        self.assertEqual(self.w.close(), 0)

    def test_an_unknown_frame_ends_the_worker_with_status_3(self):
        self.w.send("X", b"\0" * 40)
        self.assertEqual(self.w.proc.wait(30), 3)

    def test_the_main_script_loads_as___mp_main___without_its_guarded_body(self):
        source = (
            b"import sys\n"
            b"LOADED_AS = __name__\n"
            b"def triple(x):\n"
            b"    return 3 * x, __name__, sys.modules['__main__'].__name__\n"
            b"if __name__ == '__main__':\n"
            b"    raise SystemExit('the guarded body ran')\n"
        )
        blob = ref_code(main={"path": "/somewhere/script.py", "source": source})
        main = sys.modules["__main__"]

        def triple(x):
            return None

        triple.__module__, triple.__qualname__ = "__main__", "triple"
        main.triple = triple
        try:
            payload = call(triple, 5)
        finally:
            del main.triple
        status, result, _, _ = self.run_task(blob, payload)
        self.assertEqual(status, RETURNED, result)
        self.assertEqual(pickle.loads(result), (15, "__mp_main__", "__mp_main__"))

    def test_a_name_missing_from_the_main_script_says_where_to_define_it(self):
        blob = ref_code(main={"path": "/somewhere/script.py", "source": b"x = 1\n"})
        main = sys.modules["__main__"]

        def hidden():
            return None

        hidden.__module__, hidden.__qualname__ = "__main__", "hidden"
        main.hidden = hidden
        try:
            payload = call(hidden)
        finally:
            del main.hidden
        status, result, _, _ = self.run_task(blob, payload)
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("'hidden' is not defined at the top level of the main script", result.decode())

    def test_sent_files_are_importable_and_per_code(self):
        v1 = ref_code(files=[("mesh_sent_helper.py", b"def version():\n    return 1\n")])
        v2 = ref_code(files=[("mesh_sent_helper.py", b"def version():\n    return 2\n")])
        fake = types.ModuleType("mesh_sent_helper")

        def version():
            return 0

        version.__module__, version.__qualname__ = "mesh_sent_helper", "version"
        fake.version = version
        sys.modules["mesh_sent_helper"] = fake
        try:
            payload = call(version)
        finally:
            del sys.modules["mesh_sent_helper"]
        self.assertEqual(pickle.loads(self.run_task(v1, payload)[1]), 1)
        self.assertEqual(pickle.loads(self.run_task(v2, payload)[1]), 2)
        self.assertEqual(pickle.loads(self.run_task(v1, payload)[1]), 1)

    def test_pp_code_runs_its_source_with_its_modules(self):
        source = "def hyp(a, b):\n    return math.sqrt(a * a + b * b)\n"
        blob = _payload.code_blob("pp", imports=["math"], sources=[("job.py", 10, source)], call=("func", "hyp"))
        status, result, _, _ = self.run_task(blob, pickle.dumps((3, 4), protocol=4))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, 5.0))

    def test_a_map_chunk_returns_a_list(self):
        payload = pickle.dumps(("map", tasks.add, [(1, 2), (3, 4), (5, 6)]), protocol=4)
        status, result, _, _ = self.run_task(ref_code(), payload)
        self.assertEqual((status, pickle.loads(result)), (RETURNED, [3, 7, 11]))


    def test_what_a_task_writes_to_fd_1_from_C_or_a_child_goes_to_the_log(self):
        status, result, output, _ = self.run_task(ref_code(), call(tasks.c_printf, 1))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, 2))
        self.assertEqual(output, "captured 1\n")
        self.assertEqual(pickle.loads(self.run_task(ref_code(), call(tasks.add, 2, 3))[1]), 5)
        with open(os.path.join(self.w.cwd, "worker.log"), "rb") as f:
            log = f.read()
        self.assertIn(b"C PRINTF 1", log)
        self.assertIn(b"CHILD ECHO", log)

    def test_a_task_reads_an_empty_stdin_not_the_frames(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.read_stdin))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, ("", b"")))
        self.assertEqual(pickle.loads(self.run_task(ref_code(), call(tasks.add, 1, 2))[1]), 3)

    def test_a_pp_code_runs_as___main___and_a_ref_code_as___mp_main__(self):
        status, result, _, _ = self.run_task(ref_code(), call(tasks.main_name))
        self.assertEqual(pickle.loads(result), "__mp_main__")
        pp = _payload.code_blob("pp", sources=[("job.py", 1, "import sys\ndef f():\n    return sys.modules['__main__'].__name__\n")],
                                call=("func", "f"))
        status, result, _, _ = self.run_task(pp, pickle.dumps((), protocol=4))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, "__main__"))

    def test_pp_froms_bind_names_imported_from_modules(self):
        source = "def f(x):\n    return root(x), Counter('aab').most_common(1)\n"
        blob = _payload.code_blob("pp", froms=[("math", "sqrt", "root"), ("collections", "Counter", "Counter")],
                                  sources=[("job.py", 1, source)], call=("func", "f"))
        status, result, _, _ = self.run_task(blob, pickle.dumps((9,), protocol=4))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, (3.0, [("a", 2)])))


MAIN_IMPORTING_MESH = (
    b"import mesh\n"
    b"import mesh.pp as pp\n"
    b"from mesh import Executor, TaskFailed, MeshError\n"
    b"def f(x):\n"
    b"    return x + 1, issubclass(TaskFailed, MeshError), mesh.__name__\n"
)

MAIN_WITHOUT_GUARD = MAIN_IMPORTING_MESH + b"ex = mesh.Executor()\n"


def main_call(name, *args):
    """A payload calling ``name`` of the user's main script, as the package pickles it."""
    main = sys.modules["__main__"]

    def stand_in(*a):
        return None

    stand_in.__module__, stand_in.__qualname__ = "__main__", name
    setattr(main, name, stand_in)
    try:
        return call(stand_in, *args)
    finally:
        delattr(main, name)


class MainScriptTest(MeshTestCase):
    """A user's main script imports mesh; the nodes need not have it."""

    def run_main(self, source, pythonpath):
        w = WorkerProc(pythonpath=pythonpath)
        self.addCleanup(w.close)
        blob = ref_code(main={"path": "/somewhere/script.py", "source": source})
        status, result, _, _ = w.call(code_id_of(blob), main_call("f", 1), blob, timeout=30)
        return status, result

    def test_a_script_that_imports_mesh_loads_on_a_node_without_the_package(self):
        status, result = self.run_main(MAIN_IMPORTING_MESH, [support.HERE])
        self.assertEqual(status, RETURNED, result)
        self.assertEqual(pickle.loads(result), (2, True, "mesh"))

    def test_an_executor_at_the_top_level_of_the_script_is_refused_without_the_package(self):
        status, result = self.run_main(MAIN_WITHOUT_GUARD, [support.HERE])
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("mesh.Executor() ran on a mesh worker", result.decode())

    def test_an_executor_at_the_top_level_of_the_script_is_refused_with_the_package(self):
        status, result = self.run_main(MAIN_WITHOUT_GUARD, [support.HERE, support.PYTHON_DIR])
        self.assertEqual(status, SETUP_FAILED)
        self.assertIn("mesh.Executor() ran while a mesh worker loaded your main script", result.decode())


class LifetimeTest(MeshTestCase):
    """A warm worker lives as long as its node, whichever thread started it."""

    def test_a_worker_outlives_the_thread_that_started_it(self):
        # Linux's PR_SET_PDEATHSIG fires when the *thread* that forked a child exits: a
        # worker that asked for it would die as soon as a short-lived thread of the node
        # that started it ended.
        box = {}
        blob = ref_code()

        def start():  # the thread lives until the worker has answered once (set up)
            w = box["w"] = WorkerProc()
            box["first"] = pickle.loads(w.call(code_id_of(blob), call(tasks.add, 1, 1), blob, timeout=30)[1])

        t = threading.Thread(target=start)
        t.start()
        t.join()
        w = box["w"]
        self.addCleanup(w.close)
        self.assertEqual(box["first"], 2)
        time.sleep(1.0)
        self.assertIsNone(w.proc.poll(), "the worker died with the thread that started it")
        self.assertEqual(pickle.loads(w.call(code_id_of(blob), call(tasks.add, 2, 2), blob, timeout=30)[1]), 4)

    def test_a_worker_ends_soon_after_its_node_dies_even_mid_task(self):
        # A stand-in node: starts a worker, gives it a long task, prints the worker's pid
        # and then dies without closing anything.
        node = textwrap.dedent("""
            import os, pickle, sys, time
            sys.path.insert(0, %r)
            import support, tasks
            from mesh import _payload
            w = support.WorkerProc()
            blob = _payload.code_blob("ref")
            cid = support.code_id_of(blob)
            w.send("C", cid + blob)
            w.send("T", cid + pickle.dumps(("call", tasks.sleepy, (60,), {}), protocol=4))
            time.sleep(0.3)
            print(w.proc.pid, w.cwd, flush=True)
            os._exit(0)
        """ % support.HERE)
        done = subprocess.run([sys.executable, "-c", node], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        pid, cwd = done.stdout.split(None, 1)
        pid = int(pid)
        self.addCleanup(shutil.rmtree, cwd.strip(), True)
        deadline = time.monotonic() + 10
        while support.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(support.pid_alive(pid), "the worker outlived its node")


def _interpreter(version):
    """A Python of ``version`` (``(3, 6)``) that runs here, or None."""
    name = "python%d.%d" % version
    candidates = [os.environ.get("MESH_TEST_PYTHON%d%d" % version), shutil.which(name)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%d.%d.*/bin/%s" % (version + (name,)))))
    for c in candidates:
        if not c:
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == str(version):
            return c
    return None


class OldPythonTest(MeshTestCase):
    """The worker runs on the oldest Python it supports (3.6), and tells old Pythons why
    they cannot read a job instead of crashing."""

    def test_the_worker_runs_tasks_on_python_3_6(self):
        python = _interpreter((3, 6))
        if python is None:
            self.skipTest("no Python 3.6 here (set MESH_TEST_PYTHON36)")
        w = WorkerProc(python=python)
        self.addCleanup(w.close)

        def run(blob, payload):
            return w.call(code_id_of(blob), payload, blob, timeout=30)

        status, result, output, _ = run(ref_code(), call(tasks.chatty, 4))
        self.assertEqual((status, pickle.loads(result), output), (RETURNED, 4, b"hello 4\nto stderr 4\n"))
        status, result, _, _ = run(ref_code(), call(tasks.boom, 2))
        self.assertEqual(status, RAISED)
        self.assertEqual(str(pickle.loads(pickle.loads(result)["exc"])), "boom 2")
        source = "def hyp(a, b):\n    return math.sqrt(a * a + b * b)\n"
        blob = _payload.code_blob("pp", imports=["math"], sources=[("job.py", 1, source)], call=("func", "hyp"))
        status, result, _, _ = run(blob, pickle.dumps((3, 4), protocol=4))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, 5.0))
        status, result, _, _ = run(ref_code(main={"path": "/s.py", "source": MAIN_IMPORTING_MESH}), main_call("f", 1))
        self.assertEqual((status, pickle.loads(result)), (RETURNED, (2, True, "mesh")))
        body = pickle.dumps({}, protocol=5 if sys.version_info >= (3, 8) else 4)
        if body[1] == 5:
            status, result, _, _ = run(_payload.MAGIC + bytes([_payload.FORMAT]) + body, call(tasks.add, 1, 2))
            self.assertEqual(status, SETUP_FAILED)
            self.assertIn("cannot read pickle protocol 5", result.decode())


if __name__ == "__main__":
    unittest.main()
