"""``mesh.pp``, Parallel Python's API, end to end against the fake node.

The fake node's workers here cannot import the test modules (their PYTHONPATH is
empty), as the nodes of a mesh do not have a user's modules: whatever a job needs must
travel the way pp sends it.
"""

import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout

import pp_funcs
import support
from pp_funcs import Vec
from support import FakeHome

import mesh.pp as pp

NOT_RUNNERS = (
    # name, workers, state, allow_run, has Python
    ("gamma", 4, "member", False, True),  # does not run others' programs
    ("delta", 8, "member", True, False),  # no Python
    ("eps", 2, "different-key", True, True),  # not in this mesh
)


class PPCase(FakeHome, unittest.TestCase):
    others = NOT_RUNNERS
    worker_pythonpath = []

    def setUp(self):
        super().setUp()
        self.server = pp.Server()
        self.addCleanup(self.server.destroy)

    def quiet(self):
        """Captures stdout and stderr (pp prints failures there)."""
        out, err = io.StringIO(), io.StringIO()
        self.enterContext_(redirect_stdout(out))
        self.enterContext_(redirect_stderr(err))
        return out, err

    def enterContext_(self, cm):
        cm.__enter__()
        self.addCleanup(cm.__exit__, None, None, None)


class SubmitTest(PPCase):
    def test_the_sum_primes_example_with_depfuncs_and_modules(self):
        job = self.server.submit(pp_funcs.sum_primes, (100,), (pp_funcs.isprime,), ("math",))
        self.assertEqual(job(), 1060)
        self.assertTrue(job.finished)
        jobs = [(n, self.server.submit(pp_funcs.sum_primes, (n,), (pp_funcs.isprime,), ("math",)))
                for n in range(100, 110)]
        self.assertEqual([j() for _, j in jobs], [pp_funcs.sum_primes(n) for n, _ in jobs])

    def test_without_its_depfuncs_the_job_raises_a_NameError_and_returns_None(self):
        _, err = self.quiet()
        job = self.server.submit(pp_funcs.sum_primes, (100,), (), ("math",))
        self.assertIsNone(job())
        self.assertIn("NameError: name 'isprime' is not defined", err.getvalue())

    def test_args_may_be_a_list_and_must_be_a_sequence(self):
        self.assertEqual(self.server.submit(pp_funcs.pp_square, [7])(), 49)
        with self.assertRaises(TypeError):
            self.server.submit(pp_funcs.pp_square, 7)
        with self.assertRaises(TypeError):
            self.server.submit(pp_funcs.pp_square, (1,), depfuncs=pp_funcs.isprime)
        with self.assertRaises(TypeError):
            self.server.submit(pp_funcs.pp_square, (1,), globals=[])
        with self.assertRaises(ValueError):
            self.server.submit(pp_funcs.pp_square, (1,), modules=("not a module",))
        with self.assertRaises(ValueError):
            self.server.submit(lambda x: x, (1,))

    def test_raw_result_is_the_pickled_value(self):
        job = self.server.submit(pp_funcs.pp_square, (12,))
        self.assertEqual(pickle.loads(job(raw_result=True)), 144)
        self.assertEqual(job(), 144)

    def test_builtins_travel_by_reference(self):
        import math

        self.assertEqual(self.server.submit(abs, (-3,))(), 3)
        self.assertEqual(self.server.submit(math.sqrt, (16,))(), 4.0)

    def test_a_class_in_depfuncs_travels_as_source_both_ways(self):
        job = self.server.submit(pp_funcs.vec_sum, ([Vec(1, 2), Vec(3, 4)],), (Vec,))
        self.assertEqual(job(), Vec(4, 6))
        self.assertIs(type(job()), Vec)

    def test_a_bound_method_travels_with_its_instance(self):
        v = Vec(3, 4)
        self.assertEqual(self.server.submit(v.norm2, (), (Vec,))(), 25)

    def test_an_argument_of_a_class_the_nodes_lack_fails_naming_its_module(self):
        _, err = self.quiet()
        self.assertIsNone(self.server.submit(pp_funcs.pp_square, (Vec(1, 1),))())
        self.assertIn("module 'pp_funcs' is not installed on this node", err.getvalue())

    def test_globals_sends_the_namespaces_modules_functions_and_imported_names(self):
        ns = vars(pp_funcs)
        self.assertEqual(self.server.submit(pp_funcs.uses_helper, (20,), globals=ns)(), 41)
        self.assertEqual(self.server.submit(pp_funcs.hyp, (3, 4), globals=ns)(), 5.0)
        self.assertEqual(self.server.submit(pp_funcs.most_common, ("abracadabra",), globals=ns)(), ("a", 5))
        self.assertEqual(self.server.submit(pp_funcs.vec_sum, ([Vec(1, 1)] * 3,), globals=ns)(), Vec(3, 3))

    def test_module_constants_do_not_travel_as_with_pp(self):
        _, err = self.quiet()
        self.assertIsNone(self.server.submit(pp_funcs.uses_constant, (2,), globals=vars(pp_funcs))())
        self.assertIn("NameError: name 'SCALE' is not defined", err.getvalue())

    def test_a_raised_exception_prints_its_remote_traceback_and_gives_None(self):
        _, err = self.quiet()
        job = self.server.submit(pp_funcs.boom_pp, (5,))
        self.assertIsNone(job())
        text = err.getvalue()
        self.assertRegex(text, r"mesh\.pp: job \d+ raised on (alpha|beta):")
        self.assertIn('raise ValueError("pp boom %s" % x)', text)
        self.assertIn("pp_funcs.py", text)
        self.assertIn("ValueError: pp boom 5", text)

    def test_what_a_job_printed_is_printed_when_its_result_is_taken(self):
        out, _ = self.quiet()
        job = self.server.submit(pp_funcs.chatty_pp, (8,))
        job.wait()
        self.assertEqual(out.getvalue(), "")
        self.assertEqual(job(), 8)
        self.assertEqual(out.getvalue(), "pp says 8\n")
        job()
        self.assertEqual(out.getvalue(), "pp says 8\n", "printed once")

    def test_a_job_whose_worker_crashes_is_retried_then_gives_None(self):
        _, err = self.quiet()
        before = len(self.node.jobs)
        self.assertIsNone(self.server.submit(pp_funcs.crash_pp)())
        self.assertIn("died", err.getvalue())
        self.assertEqual(self.node.jobs[before]["retries"], pp.RETRIES)
        self.assertIn("after %d runs" % (pp.RETRIES + 1), err.getvalue())

    def test_a_module_missing_on_the_nodes_fails_the_job_naming_it(self):
        _, err = self.quiet()
        self.assertIsNone(self.server.submit(pp_funcs.pp_square, (2,), modules=("mesh_no_such_mod",))())
        self.assertIn("module 'mesh_no_such_mod' is not installed on this node", err.getvalue())

    def test_calls_of_one_function_go_as_one_mesh_job(self):
        before = len(self.node.jobs)
        jobs = [self.server.submit(pp_funcs.pp_square, (i,)) for i in range(50)]
        self.assertEqual([j() for j in jobs], [i * i for i in range(50)])
        self.assertLessEqual(len(self.node.jobs) - before, 3)


class CallbackTest(PPCase):
    def test_callbacks_get_their_callbackargs_and_the_result_before_wait_returns(self):
        got, threads = [], set()
        lock = threading.Lock()

        def callback(tag, scale, value):
            with lock:
                got.append((tag, value * scale))
                threads.add(threading.current_thread().name)

        for i in range(10):
            self.server.submit(pp_funcs.pp_square, (i,), callback=callback, callbackargs=("t%d" % i, 10))
        self.server.wait()
        self.assertEqual(sorted(got), sorted(("t%d" % i, 10 * i * i) for i in range(10)))
        self.assertEqual(threads, {"mesh-delivery"})

    def test_a_callback_of_a_failed_job_gets_None(self):
        self.quiet()
        got = []
        self.server.submit(pp_funcs.boom_pp, (1,), callback=got.append)
        self.server.wait()
        self.assertEqual(got, [None])

    def test_a_callback_may_submit_more_jobs(self):
        follow = []

        def callback(value):
            follow.append(self.server.submit(pp_funcs.pp_square, (value,)))

        self.server.submit(pp_funcs.pp_square, (3,), callback=callback)
        self.server.wait()
        self.assertEqual(len(follow), 1)
        self.assertEqual(follow[0](), 81)

    def test_a_callback_that_waits_for_another_job_fails_instead_of_hanging(self):
        _, err = self.quiet()
        seen = []
        slow = self.server.submit(pp_funcs.slow, (1, 0.5), modules=("time",))

        def callback(value):
            seen.append(value)
            seen.append(slow())

        self.server.submit(pp_funcs.pp_square, (2,), callback=callback)
        self.server.wait()
        self.assertEqual(seen, [4])
        self.assertIn("the callback of job", err.getvalue())
        self.assertIn("would wait forever", err.getvalue())
        self.assertEqual(slow(), 1)

    def test_a_raising_callback_is_reported_and_the_server_goes_on(self):
        _, err = self.quiet()

        def callback(value):
            raise KeyError("in the callback")

        job = self.server.submit(pp_funcs.pp_square, (2,), callback=callback)
        self.server.wait()
        self.assertEqual(job(), 4)
        self.assertIn("KeyError: 'in the callback'", err.getvalue())
        self.assertEqual(self.server.submit(pp_funcs.pp_square, (3,))(), 9)

    def test_wait_for_a_group_waits_for_that_group_only(self):
        slow = self.server.submit(pp_funcs.slow, (1, 1.5), modules=("time",), group="slow")
        fast = [self.server.submit(pp_funcs.pp_square, (i,), group="fast") for i in range(5)]
        self.server.wait("fast")
        self.assertTrue(all(j.finished for j in fast))
        self.assertFalse(slow.finished)
        self.server.wait()
        self.assertTrue(slow.finished)
        self.assertEqual(slow(), 1)

    def test_template_fixes_the_function_and_its_options(self):
        got = []
        t = pp.Template(self.server, pp_funcs.sum_primes, (pp_funcs.isprime,), ("math",),
                        callback=lambda tag, v: got.append((tag, v)), callbackargs=("tpl",))
        jobs = [t.submit(n) for n in (10, 100)]
        self.assertEqual([j() for j in jobs], [17, 1060])
        self.server.wait()
        self.assertEqual(sorted(got), [("tpl", 17), ("tpl", 1060)])


class ServerTest(PPCase):
    def test_get_active_nodes_lists_the_nodes_that_may_run_jobs(self):
        self.assertEqual(self.server.get_active_nodes(), {"alpha": 2, "beta": 1})

    def test_ncpus_is_the_meshs_unless_set(self):
        self.assertEqual(self.server.get_ncpus(), 3)
        self.server.set_ncpus(5)
        self.assertEqual(self.server.get_ncpus(), 5)
        self.server.set_ncpus()
        self.assertEqual(self.server.get_ncpus(), 3)
        self.assertEqual(pp.Server(ncpus=2, ppservers=("*",)).get_ncpus(), 2)
        for bad in (-1, "two", 1.5):
            with self.assertRaises(ValueError):
                self.server.set_ncpus(bad)

    def test_get_stats_has_a_row_per_node_that_ran_jobs(self):
        jobs = [self.server.submit(pp_funcs.pp_square, (i,)) for i in range(30)]
        self.assertEqual(len([j() for j in jobs]), 30)
        self.server.wait()
        stats = self.server.get_stats()
        self.assertTrue(set(stats) <= {"alpha", "beta"} and stats, stats)
        self.assertEqual(sum(s.njobs for s in stats.values()), 30)
        for name, s in stats.items():
            self.assertIsInstance(s, pp.Statistics)
            self.assertEqual(s.ncpus, {"alpha": 2, "beta": 1}[name])
            self.assertGreater(s.time, 0.0)

    def test_print_stats_prints_pps_table(self):
        jobs = [self.server.submit(pp_funcs.pp_square, (i,)) for i in range(20)]
        [j() for j in jobs]
        self.server.wait()
        out = io.StringIO()
        with redirect_stdout(out):
            self.server.print_stats()
        lines = out.getvalue().split("\n")
        self.assertEqual(lines[0], "Job execution statistics:")
        self.assertEqual(lines[1], " job count | % of all jobs | job time sum | time per job | job server")
        rows = []
        for line in lines[2:]:
            m = re.match(r"^    ([ \d]{6}) \|        ([ \d]{3}\.\d\d) \|     ([ \d]{3,}\.\d{4}) \|  "
                         r"([ \d]{4,}\.\d{6}) \| (\w+)$", line)
            if not m:
                break
            rows.append((int(m.group(1)), float(m.group(2)), m.group(5)))
        self.assertTrue(rows, out.getvalue())
        self.assertEqual(sum(r[0] for r in rows), 20)
        self.assertAlmostEqual(sum(r[1] for r in rows), 100.0, delta=0.05)
        rest = lines[2 + len(rows):]
        self.assertRegex(rest[0], r"^Time elapsed since server creation \d+\.\d+$")
        self.assertEqual(rest[1], "0 active tasks, 3 cores")
        self.assertEqual(rest[2:], ["", ""])

    def test_destroy_cancels_what_has_not_finished_and_refuses_new_jobs(self):
        self.quiet()
        server = pp.Server()
        jobs = [server.submit(pp_funcs.slow, (i, 20), modules=("time",)) for i in range(4)]
        time.sleep(0.5)  # started on the nodes (3 of them) or waiting there
        t0 = time.monotonic()
        server.destroy()
        self.assertEqual([j() for j in jobs], [None] * 4)
        self.assertLess(time.monotonic() - t0, 10)
        with self.assertRaises(RuntimeError):
            server.submit(pp_funcs.pp_square, (1,))

    def test_the_context_manager_waits_then_destroys(self):
        with pp.Server() as server:
            jobs = [server.submit(pp_funcs.slow, (i, 0.1), modules=("time",)) for i in range(3)]
        self.assertTrue(all(j.finished for j in jobs))
        self.assertEqual([j() for j in jobs], [0, 1, 2])
        with self.assertRaises(RuntimeError):
            server.submit(pp_funcs.pp_square, (1,))


class ScriptTest(PPCase):
    """A pp script, as pp's examples are written, runs with ``import mesh.pp as pp``."""

    def test_a_pp_example_script_runs_unchanged(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "pp_script.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent('''
                import math, sys
                import mesh.pp as pp
                from math import sqrt

                class Acc:
                    def __init__(self, n):
                        self.n = n

                    def total(self):
                        return self.n * 2

                def part(a):
                    return sqrt(a.total() * 8)

                def grow(a):
                    return Acc(a.n + 1)

                # pp's examples make the server at the top level, with no main guard.
                ppservers = ("*",)
                job_server = pp.Server(ppservers=ppservers, secret="ignored here")
                print("Starting pp with", job_server.get_ncpus(), "workers")
                jobs = [(i, job_server.submit(part, (Acc(i),), globals=globals())) for i in (1, 2)]
                for i, job in jobs:
                    print(i, job())
                m = Acc(21)
                print(job_server.submit(m.total)())
                g = job_server.submit(grow, (Acc(1),))()
                print(type(g).__name__, g.n, type(g) is Acc)
                job_server.print_stats()
            '''))
        env = dict(os.environ, PYTHONPATH=support.PYTHON_DIR)
        done = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.split("\n")
        self.assertEqual(lines[:5], ["Starting pp with 3 workers", "1 4.0", "2 %r" % (32 ** 0.5), "42", "Acc 2 True"])
        self.assertEqual(lines[5], "Job execution statistics:")
        self.assertIn("0 active tasks, 3 cores", done.stdout)
        self.assertEqual(done.stderr, "")


if __name__ == "__main__":
    unittest.main()
