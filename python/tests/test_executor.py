"""``mesh.Executor`` end to end against the fake node (real workers, no Rust)."""

import concurrent.futures
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import support
import tasks
from support import FakeHome, FakeNode, MeshTestCase, short_tempdir

import mesh
from mesh import _batch, _client
from mesh.executor import parse_requirement


class ExecutorTest(FakeHome, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.ex = mesh.Executor()
        self.addCleanup(self.ex.shutdown)

    def test_submit_returns_the_value(self):
        self.assertEqual(self.ex.submit(tasks.add, 2, b=3).result(30), 5)

    def test_map_of_10000_items_is_exact_and_in_order(self):
        before = len(self.node.jobs)
        out = list(self.ex.map(tasks.square, range(10000), timeout=60))
        self.assertEqual(out, [x * x for x in range(10000)])
        jobs = self.node.jobs[before:]
        self.assertEqual([j["tasks"] for j in jobs], [10000], "a map goes as one job")

    def test_map_chunks_are_tasks_and_keep_the_order(self):
        before = len(self.node.jobs)
        out = list(self.ex.map(tasks.add, range(1000), range(1000), chunksize=64))
        self.assertEqual(out, [2 * x for x in range(1000)])
        self.assertEqual([j["tasks"] for j in self.node.jobs[before:]], [16])

    def test_map_stops_at_the_shortest_iterable(self):
        self.assertEqual(list(self.ex.map(tasks.add, [1, 2, 3], [10, 20], chunksize=2)), [11, 22])

    def test_a_map_of_nothing_sends_nothing(self):
        before = len(self.node.jobs)
        self.assertEqual(list(self.ex.map(tasks.square, [])), [])
        self.assertEqual(len(self.node.jobs), before)

    def test_a_raised_exception_comes_back_as_itself_with_the_remote_traceback(self):
        f = self.ex.submit(tasks.boom, 3)
        with self.assertRaises(ValueError) as caught:
            f.result(30)
        self.assertEqual(str(caught.exception), "boom 3")
        cause = caught.exception.__cause__
        self.assertIsInstance(cause, mesh.RemoteTraceback)
        self.assertIn('raise ValueError("boom %s" % x)', str(cause))
        self.assertIn("tasks.py", str(cause))
        self.assertNotIn("_worker.py", str(cause))

    def test_an_exception_of_the_mesh_package_raised_by_a_task_comes_back_as_itself(self):
        # The worker has no mesh package: its stand-in defines the same exceptions.
        with self.assertRaises(mesh.TaskFailed) as caught:
            self.ex.submit(tasks.raise_task_failed).result(30)
        e = caught.exception
        self.assertEqual((e.reason, e.node, e.attempts), ("inner", "somewhere", 3))
        self.assertIsInstance(e.__cause__, mesh.RemoteTraceback)

    def test_an_exception_that_cannot_be_rebuilt_is_a_RemoteError(self):
        with self.assertRaises(mesh.RemoteError) as caught:
            self.ex.submit(tasks.raise_stubborn).result(30)
        e = caught.exception
        self.assertEqual((e.type_name, e.message), ("tasks.Stubborn", "stubborn 1"))
        self.assertIn("raise Stubborn(1, 2)", e.traceback)
        self.assertIn(e.node, ("alpha", "beta"))

    def test_map_raises_at_the_failing_item(self):
        it = self.ex.map(tasks.fail_on, [1, 2, 3], [2, 2, 2])
        self.assertEqual(next(it), 1)
        with self.assertRaises(ValueError) as caught:
            next(it)
        self.assertEqual(str(caught.exception), "bad item 2")

    def test_a_missing_module_fails_the_task_naming_it(self):
        with self.assertRaises(mesh.TaskFailed) as caught:
            self.ex.submit(tasks.import_missing).result(60)
        self.assertIn("module 'mesh_test_module_that_is_not_here' is not installed on this node", str(caught.exception))
        self.assertEqual(caught.exception.attempts, 2, "a set-up failure is retried elsewhere")

    def test_a_crashed_worker_fails_the_task_after_its_retries(self):
        before = len(self.node.jobs)
        with self.assertRaises(mesh.TaskFailed) as caught:
            self.ex.submit(tasks.crash).result(60)
        self.assertIn("died", str(caught.exception))
        self.assertEqual(caught.exception.attempts, 2)
        self.assertEqual(self.node.jobs[before]["retries"], 1)
        # The next call gets a fresh worker.
        self.assertEqual(self.ex.submit(tasks.add, 1, 2).result(30), 3)

    def test_a_large_result_travels_as_a_blob(self):
        before = self.node.blob_results
        self.assertEqual(self.ex.submit(tasks.big, 300000).result(30), b"y" * 300000)
        self.assertEqual(self.node.blob_results, before + 1)
        self.assertEqual(self.ex.submit(tasks.big, 1000).result(30), b"y" * 1000)
        self.assertEqual(self.node.blob_results, before + 1, "a small result travels inline")

    def test_what_a_task_prints_is_shown_here_and_kept_on_its_future(self):
        out = io.StringIO()
        with redirect_stdout(out):
            f = self.ex.submit(tasks.chatty, 3)
            f.result(30)
        self.assertEqual(f.output, "hello 3\nto stderr 3\n")
        self.assertIn("hello 3\n", out.getvalue())

    def test_what_a_task_writes_to_fd_1_from_C_does_not_break_the_frames(self):
        with redirect_stdout(io.StringIO()):
            f = self.ex.submit(tasks.c_printf, 4)
            self.assertEqual(f.result(30), 5)
        self.assertEqual(f.output, "captured 4\n")

    def test_instances_travel_both_ways(self):
        p = tasks.Point(3, -4)
        self.assertEqual(self.ex.submit(tasks.Point.norm1, p).result(30), 7)
        self.assertEqual(self.ex.submit(tasks.Point, 1, 2).result(30), tasks.Point(1, 2))

    def test_futures_work_with_as_completed_and_wait(self):
        fs = [self.ex.submit(tasks.square, i) for i in range(50)]
        got = sorted(f.result() for f in concurrent.futures.as_completed(fs, timeout=60))
        self.assertEqual(got, sorted(i * i for i in range(50)))
        slow = self.ex.submit(tasks.sleepy, 0.3)
        fast = self.ex.submit(tasks.add, 1, 1)
        done, _ = concurrent.futures.wait([slow, fast], timeout=30, return_when=concurrent.futures.FIRST_COMPLETED)
        self.assertIn(fast, done)
        self.assertEqual(slow.result(30), 0.3)

    def test_waiting_for_a_result_inside_a_done_callback_is_refused_not_a_deadlock(self):
        seen = {}
        ran = threading.Event()
        slow = self.ex.submit(tasks.sleepy, 0.5)
        first = self.ex.submit(tasks.sleepy, 0.2)

        def callback(f):
            seen["thread"] = threading.current_thread().name
            try:
                seen["value"] = slow.result()
            except BaseException as e:
                seen["error"] = e
            ran.set()

        first.add_done_callback(callback)
        self.assertTrue(ran.wait(30))
        self.assertEqual(seen["thread"], "mesh-delivery")
        self.assertIsInstance(seen.get("error"), RuntimeError, seen)
        self.assertIn("would wait forever", str(seen["error"]))
        self.assertEqual(slow.result(30), 0.5)

    def test_stats_has_a_row_per_node(self):
        ex = mesh.Executor()
        list(ex.map(tasks.square, range(300)))
        ex.shutdown()
        rows = ex.stats()
        self.assertEqual(sum(r["tasks"] for r in rows), 300)
        self.assertAlmostEqual(sum(r["share"] for r in rows), 1.0)
        self.assertGreater(sum(r["task_time_s"] for r in rows), 0.0)
        for r in rows:
            self.assertIn(r["name"], ("alpha", "beta"))
            self.assertEqual(set(r), {"name", "tasks", "task_time_s", "share", "workers"})
            self.assertEqual(r["workers"], {"alpha": 2, "beta": 1}[r["name"]])


    def test_progress_counts_calls_and_results(self):
        ex = mesh.Executor()
        self.assertEqual(ex.progress(), {"done": 0, "total": 0})
        futures = [ex.submit(tasks.square, i) for i in range(50)]
        self.assertEqual(ex.progress()["total"], 50)
        for f in futures:
            f.result(60)
        # A result is delivered (counted) right after its future resolves.
        deadline = time.monotonic() + 60
        while ex.progress()["done"] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(ex.progress(), {"done": 50, "total": 50})
        ex.shutdown()


class BatchingTest(FakeHome, unittest.TestCase):
    def test_calls_submitted_in_a_loop_share_a_job(self):
        before = len(self.node.jobs)
        with mesh.Executor() as ex:
            fs = [ex.submit(tasks.add, i, i) for i in range(100)]
            self.assertEqual([f.result(30) for f in fs], [2 * i for i in range(100)])
        jobs = self.node.jobs[before:]
        self.assertEqual(sum(j["tasks"] for j in jobs), 100)
        self.assertLessEqual(len(jobs), 3, "calls a few microseconds apart go together")

    def test_executors_do_not_share_jobs(self):
        before = len(self.node.jobs)
        with mesh.Executor() as a, mesh.Executor(timeout=10) as b:
            fa, fb = a.submit(tasks.add, 1, 1), b.submit(tasks.add, 2, 2)
            self.assertEqual((fa.result(30), fb.result(30)), (2, 4))
        jobs = self.node.jobs[before:]
        self.assertEqual(sorted(j["timeout_ms"] or 0 for j in jobs), [0, 10000])

    def test_a_batch_is_split_at_MAX_TASKS(self):
        before = len(self.node.jobs)
        with mock.patch.object(_batch, "MAX_TASKS", 10):
            with mesh.Executor() as ex:
                self.assertEqual(list(ex.map(tasks.square, range(25))), [i * i for i in range(25)])
        self.assertEqual(sorted(j["tasks"] for j in self.node.jobs[before:]), [5, 10, 10])

    def test_a_batch_waits_for_more_calls_until_someone_waits_for_one(self):
        with mock.patch.object(_batch, "LINGER", 60.0), mock.patch.object(_batch, "MAX_AGE", 60.0):
            ex = mesh.Executor()
            self.addCleanup(ex.shutdown)
            before = len(self.node.jobs)
            f = ex.submit(tasks.add, 20, 22)
            time.sleep(0.3)
            self.assertEqual(len(self.node.jobs), before, "the batch lingers for more calls")
            t0 = time.monotonic()
            self.assertEqual(f.result(30), 42)
            self.assertLess(time.monotonic() - t0, 10)
            self.assertEqual(len(self.node.jobs), before + 1)


class LifecycleTest(FakeHome, unittest.TestCase):
    def test_the_initializer_runs_once_per_warm_worker_process(self):
        with mesh.Executor(initializer=tasks.init, initargs=("once-a",)) as ex:
            results = list(ex.map(tasks.init_count, ["once-a"] * 200))
            results += list(ex.map(tasks.init_count, ["once-a"] * 200))
        self.assertEqual({count for count, _ in results}, {1})
        self.assertLessEqual(len({pid for _, pid in results}), 3)

    def test_a_failing_initializer_fails_the_tasks_with_its_reason(self):
        with mesh.Executor(initializer=tasks.init_fails, initargs=("z",), retries=0) as ex:
            with self.assertRaises(mesh.TaskFailed) as caught:
                ex.submit(tasks.add, 1, 2).result(60)
        self.assertIn("initializer refuses z", str(caught.exception))
        self.assertEqual(caught.exception.attempts, 1)

    def test_the_context_manager_waits_and_shutdown_refuses_new_calls(self):
        with mesh.Executor() as ex:
            fs = [ex.submit(tasks.sleepy, 0.01) for _ in range(20)]
        self.assertTrue(all(f.done() for f in fs))
        with self.assertRaises(RuntimeError):
            ex.submit(tasks.add, 1, 2)
        with self.assertRaises(RuntimeError):
            ex.map(tasks.add, [1], [2])

    def test_shutdown_with_cancel_futures_cancels_what_has_not_gone(self):
        with mock.patch.object(_batch, "LINGER", 60.0), mock.patch.object(_batch, "MAX_AGE", 60.0):
            ex = mesh.Executor()
            sent = ex.submit(tasks.square, 7)
            self.assertEqual(sent.result(30), 49)
            fs = [ex.submit(tasks.square, i) for i in range(50)]  # lingering: not gone yet
            ex.shutdown(wait=True, cancel_futures=True)
        self.assertTrue(all(f.cancelled() for f in fs))
        self.assertFalse(sent.cancelled())

    def test_shutdown_without_wait_returns_at_once_and_the_calls_still_finish(self):
        ex = mesh.Executor()
        f = ex.submit(tasks.sleepy, 0.5)
        t0 = time.monotonic()
        ex.shutdown(wait=False)
        self.assertLess(time.monotonic() - t0, 0.4)
        self.assertEqual(f.result(30), 0.5)

    def test_a_timeout_ends_the_task(self):
        with mesh.Executor(timeout=0.3, retries=0) as ex:
            with self.assertRaises(mesh.TaskFailed) as caught:
                ex.submit(tasks.sleepy, 30).result(60)
            self.assertIn("timed out", str(caught.exception))
            self.assertEqual(ex.submit(tasks.add, 1, 1).result(30), 2)
        self.assertEqual(self.node.jobs[-1]["timeout_ms"], 300)

    def test_requirements_reach_the_job(self):
        with mesh.Executor(require=["label=gpu", "python>=3.9", "mem>=2048"]) as ex:
            self.assertEqual(ex.submit(tasks.add, 1, 1).result(30), 2)
        self.assertEqual(
            self.node.jobs[-1]["needs"],
            {"native": True, "python": True, "requirements": [
                {"Label": "gpu"}, {"PythonAtLeast": {"major": 3, "minor": 9}}, {"MemAtLeast": 2048}]},
        )

    def test_bad_arguments_are_refused_at_once(self):
        for kwargs in ({"max_workers": 0}, {"timeout": 0}, {"retries": -1}, {"require": ["gpu"]}):
            with self.assertRaises(ValueError, msg=kwargs):
                mesh.Executor(**kwargs)
        with mesh.Executor() as ex:
            with self.assertRaises(ValueError):
                ex.map(tasks.square, [1], chunksize=0)
            with self.assertRaises(TypeError):
                ex.submit(tasks.add, threading.Lock(), 1)

    def test_sent_modules_are_importable_on_the_workers(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "mesh_sent_mod.py"), "w") as f:
            f.write("def hello(name):\n    return 'hello ' + name\n")
        os.makedirs(os.path.join(d, "mesh_sent_pkg"))
        with open(os.path.join(d, "mesh_sent_pkg", "__init__.py"), "w") as f:
            f.write("from .inner import VALUE\n")
        with open(os.path.join(d, "mesh_sent_pkg", "inner.py"), "w") as f:
            f.write("VALUE = 42\n")
        sys.path.insert(0, d)
        try:
            import mesh_sent_mod

            with mesh.Executor(send=[os.path.join(d, "mesh_sent_mod.py"), os.path.join(d, "mesh_sent_pkg")]) as ex:
                self.assertEqual(ex.submit(mesh_sent_mod.hello, "mesh").result(30), "hello mesh")
                self.assertEqual(ex.submit(eval, "__import__('mesh_sent_pkg').VALUE").result(30), 42)
        finally:
            sys.path.remove(d)
            sys.modules.pop("mesh_sent_mod", None)

    def test_the_code_stays_pinned_and_the_task_list_is_unpinned_when_its_job_ends(self):
        before = set(self.node.pinned)
        jobs_before = len(self.node.jobs)
        with mesh.Executor() as ex:
            ex.submit(tasks.add, 1, 1).result(30)
        job = self.node.jobs[jobs_before]
        after = set(self.node.pinned)
        self.assertIn(job["code"], after, "the code is pinned for the process's life")
        self.assertLessEqual(after - before, {job["code"]})
        self.assertNotIn(job["inputs"], after, "the task list went with its job")
        self.assertIn(job["inputs"], self.node.puts, "the task list was uploaded")
        self.assertFalse(os.path.exists(os.path.join(self.home, "blobs")), "the package never touches the store's files")


class NodeFailureTest(FakeHome, unittest.TestCase):
    """A node that breaks never leaves a call waiting: its calls fail, and say why."""

    def setUp(self):
        super().setUp()
        self.addCleanup(setattr, self.node, "fault", None)

    def calls(self, n=6):
        ex = mesh.Executor(retries=0)
        fs = [ex.submit(tasks.square, i) for i in range(n)]
        done, not_done = concurrent.futures.wait(fs, timeout=30)
        self.assertEqual(not_done, set())
        t0 = time.monotonic()
        ex.shutdown()
        self.assertLess(time.monotonic() - t0, 10)
        return fs

    def test_a_dropped_connection_fails_the_calls_with_NodeError(self):
        self.node.fault = ("drop", 1)
        fs = self.calls()
        errors = [f.exception() for f in fs if f.exception() is not None]
        self.assertTrue(errors, "the node dropped every job after one result")
        for e in errors:
            self.assertIsInstance(e, mesh.NodeError)
            self.assertIn("closed the connection before the job finished", str(e))
        for i, f in enumerate(fs):
            if f.exception() is None:
                self.assertEqual(f.result(), i * i)

    def test_a_garbled_line_fails_the_calls_with_NodeError(self):
        self.node.fault = ("garbage", 0)
        for f in self.calls(3):
            self.assertIsInstance(f.exception(), mesh.NodeError)
            self.assertIn("malformed line", str(f.exception()))

    def test_a_refused_job_fails_its_calls_with_the_nodes_reason(self):
        self.node.fault = ("refuse", "no node here runs Python 3.99")
        for f in self.calls(3):
            e = f.exception()
            self.assertIs(type(e), mesh.MeshError)
            self.assertIn("no node here runs Python 3.99", str(e))

    def test_a_waiting_notice_is_shown_and_the_job_goes_on(self):
        self.node.fault = ("waiting", "no member has Python 3.99 yet")
        err = io.StringIO()
        with redirect_stderr(err):
            fs = self.calls(2)
        self.assertEqual([f.result() for f in fs], [0, 1])
        self.assertIn("mesh: the job waits: no member has Python 3.99 yet", err.getvalue())

    def test_no_node_and_no_binary_fails_at_submit_with_NodeError(self):
        home = short_tempdir()
        self.addCleanup(shutil.rmtree, home, True)
        empty = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, empty, True)
        with mock.patch.dict(os.environ, {"PATH": empty}):
            os.environ.pop("MESH_BIN", None)
            with self.assertRaises(mesh.NodeError) as caught:
                mesh.Executor(home=home).submit(tasks.add, 1, 1)
        self.assertIn("the mesh binary is not on PATH", str(caught.exception))
        with mock.patch.dict(os.environ, {"MESH_BIN": os.path.join(empty, "no-such-mesh")}):
            with self.assertRaises(mesh.NodeError) as caught:
                mesh.Executor(home=home).submit(tasks.add, 1, 1)
        self.assertIn("could not start", str(caught.exception))


class SessionTest(MeshTestCase):
    """The session node: how it is started, and that it ends with its Python process."""

    def setUp(self):
        super().setUp()
        self.home = short_tempdir()
        self.addCleanup(shutil.rmtree, self.home, True)
        bindir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, bindir, True)
        self.record = os.path.join(bindir, "record.json")
        env = {"MESH_BIN": support.fake_mesh_binary(bindir), "FAKE_MESH_RECORD": self.record}
        patch = mock.patch.dict(os.environ, env)
        patch.start()
        self.addCleanup(patch.stop)
        self.addCleanup(self._forget_sessions)

    def _forget_sessions(self):
        for key in [k for k in _client._nodes if k[0] == self.home]:
            node = _client._nodes.pop(key)
            if node.session is not None:
                node.session.stop()
                if node.session.proc.poll() is None:
                    node.session.proc.kill()
                    node.session.proc.wait()

    def recorded(self):
        with open(self.record) as f:
            return json.load(f)

    def test_a_session_node_is_started_when_none_runs_and_ends_when_told(self):
        with mesh.Executor(home=self.home, key="s3cret", max_workers=3) as ex:
            self.assertEqual(ex.submit(tasks.add, 1, 2).result(30), 3)
        node = _client.connect(self.home)
        session = node.session
        self.assertIsNotNone(session)
        rec = self.recorded()
        self.assertEqual(rec["argv"], ["session", "--home", session.home, "--remove-home", "--workers", "3"])
        self.assertEqual(os.path.dirname(session.home), os.path.join(self.home, "sessions"))
        self.assertRegex(os.path.basename(session.home), r"^%d-[0-9a-f]{6}$" % os.getpid())
        self.assertEqual(rec["key"], "s3cret", "the key travels in MESH_KEY")
        self.assertNotIn("s3cret", " ".join(rec["argv"]))
        self.assertEqual([r["name"] for r in ex.stats()], ["session"])
        # A later pool of the process finds the same session.
        with mesh.Executor(home=self.home) as ex2:
            self.assertEqual(ex2.submit(tasks.add, 2, 2).result(30), 4)
        self.assertIs(_client.connect(self.home), node)
        session.stop(wait=10)
        self.assertEqual(session.proc.returncode, 0)
        self.assertFalse(os.path.exists(session.home), "--remove-home")
        self.assertFalse(os.path.exists(session.log), "the log of a clean session goes")

    def test_local_starts_a_session_even_when_a_node_runs(self):
        node = FakeNode(self.home)
        self.addCleanup(node.stop)
        with mesh.Executor(home=self.home, local=True) as ex:
            self.assertEqual(ex.submit(tasks.add, 1, 2).result(30), 3)
        self.assertIn("--local", self.recorded()["argv"])
        self.assertEqual(node.jobs, [], "the job went to the session, not the node under the home")
        with mesh.Executor(home=self.home) as ex:
            self.assertEqual(ex.submit(tasks.add, 1, 2).result(30), 3)
        self.assertEqual(len(node.jobs), 1, "without local=True the running node is used")

    def test_a_session_that_fails_to_start_says_why(self):
        with mock.patch.dict(os.environ, {"MESH_BIN": support.fake_mesh_binary(os.path.dirname(self.record), "fail")}):
            with self.assertRaises(mesh.NodeError) as caught:
                mesh.Executor(home=self.home).submit(tasks.add, 1, 1)
        text = str(caught.exception)
        self.assertIn("exited with status 2 before it served its control socket", text)
        self.assertIn("the fake mesh was told to fail", text)

    def test_when_the_session_node_dies_its_calls_fail_with_NodeError_and_its_workers_end(self):
        ex = mesh.Executor(home=self.home, max_workers=2)
        self.addCleanup(ex.shutdown)
        self.assertEqual(ex.submit(tasks.add, 1, 1).result(30), 2)
        slow = ex.submit(tasks.sleepy, 60)
        session = _client.connect(self.home).session
        workers = []
        deadline = time.monotonic() + 20
        while len(workers) < 2 and time.monotonic() < deadline:  # the busy one starts too
            workers = _children(session.proc.pid)
            time.sleep(0.05)
        self.assertEqual(len(workers), 2, "the session's two workers")
        for p in workers:  # their directories outlive them: nobody is left to remove them
            self.addCleanup(shutil.rmtree, os.readlink("/proc/%d/cwd" % p), True)
        time.sleep(0.3)
        session.proc.kill()
        session.proc.wait()
        with self.assertRaises(mesh.NodeError) as caught:
            slow.result(30)
        self.assertIn("closed the connection before the job finished", str(caught.exception))
        self.assertIn("the session node ended", str(caught.exception))
        deadline = time.monotonic() + 10
        while any(support.pid_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual([p for p in workers if support.pid_alive(p)], [], "workers outlived their node")

    def test_the_session_ends_when_its_python_process_exits_however_it_exits(self):
        script = textwrap.dedent("""
            import os, sys
            sys.path.insert(0, %r)
            import mesh, tasks
            ex = mesh.Executor(home=%r)
            print(ex.submit(tasks.add, 2, 3).result(30), flush=True)
            os._exit(0)  # no atexit, no shutdown: only the closed pipe tells the session
        """ % (support.HERE, self.home))
        env = dict(os.environ, PYTHONPATH=support.PYTHON_DIR)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual((done.returncode, done.stdout), (0, "5\n"), done.stderr)
        pid = self.recorded()["pid"]
        deadline = time.monotonic() + 15
        while support.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(support.pid_alive(pid), "the session node outlived its Python process")
        # --remove-home: its home went; its log stays (no atexit ran to remove it).
        self.assertEqual([n for n in os.listdir(os.path.join(self.home, "sessions")) if not n.endswith(".log")], [])


def _children(pid):
    """Pids of the processes whose parent is ``pid`` (Linux)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(name))
    return out


class RequirementTest(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(parse_requirement("label=gpu"), {"Label": "gpu"})
        self.assertEqual(parse_requirement("arch=aarch64"), {"Arch": "aarch64"})
        self.assertEqual(parse_requirement("os=linux"), {"Os": "linux"})
        self.assertEqual(parse_requirement("mem>=2048"), {"MemAtLeast": 2048})
        self.assertEqual(parse_requirement("cores >= 4"), {"CoresAtLeast": 4})
        self.assertEqual(parse_requirement("python>=3.10"), {"PythonAtLeast": {"major": 3, "minor": 10}})
        for bad in ("gpu", "label=", "label=a b", "mem>=lots", "python>=three", "colour=blue", "cores>4"):
            with self.assertRaises(ValueError, msg=bad):
                parse_requirement(bad)


class ScriptTest(FakeHome, unittest.TestCase):
    """Functions and classes of a user's main script travel the way spawn sends them."""

    def run_script(self, source, *args):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "user_script.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        env = dict(os.environ, PYTHONPATH=support.PYTHON_DIR)
        return subprocess.run([sys.executable, path] + list(args), capture_output=True, text=True,
                              env=env, timeout=60)

    def test_main_script_functions_and_classes_travel(self):
        done = self.run_script("""
            import mesh
            import mesh.pp as pp
            from mesh import Executor, TaskFailed

            class Box:
                def __init__(self, v):
                    self.v = v

            def grow(box, by):
                return Box(box.v + by)

            def cube(x):
                return x ** 3

            print("body ran as", __name__)

            if __name__ == "__main__":
                with Executor() as ex:
                    print(list(ex.map(cube, range(5))))
                    b = ex.submit(grow, Box(1), 41).result()
                    print(type(b).__name__, b.v, type(b) is Box)
        """)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "body ran as __main__\n[0, 1, 8, 27, 64]\nBox 42 True\n")

    def test_a_function_under_the_main_guard_fails_with_advice(self):
        done = self.run_script("""
            import mesh
            if __name__ == "__main__":
                def hidden():
                    return 1
                with mesh.Executor(retries=0) as ex:
                    try:
                        ex.submit(hidden).result()
                    except mesh.TaskFailed as e:
                        print("FAILED", e)
        """)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("FAILED on this node's Python", done.stdout)
        self.assertIn("'hidden' is not defined at the top level of the main script", done.stdout)

    def test_an_executor_at_the_top_level_of_a_script_is_refused_on_the_workers(self):
        done = self.run_script("""
            import mesh

            def cube(x):
                return x ** 3

            with mesh.Executor(retries=0) as ex:  # no main guard: the workers load this too
                try:
                    print("RESULT", ex.submit(cube, 2).result())
                except mesh.TaskFailed as e:
                    print("FAILED", e)
        """)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("FAILED", done.stdout)
        self.assertIn("mesh.Executor() ran on a mesh worker", done.stdout)
        self.assertIn("if __name__ == '__main__':", done.stdout)

    def test_an_interactive_function_without_cloudpickle_is_refused_clearly(self):
        code = textwrap.dedent("""
            import sys
            sys.modules['cloudpickle'] = None  # as if it were not installed
            import mesh
            def f():
                return 1
            try:
                mesh.Executor().submit(f)
            except mesh.MeshError as e:
                print("REFUSED", e)
        """)
        env = dict(os.environ, PYTHONPATH=support.PYTHON_DIR)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("REFUSED the function f is defined in __main__, which has no file here", done.stdout)


if __name__ == "__main__":
    unittest.main()
