"""Runs the seed workloads on mesh, Parallel Python (pp) and Dask distributed, and the
Python kernels through mesh's Python package (`mesh.pp`, `mesh.Executor`).

Workloads (all exact; every result is checked):
  demo   the Parallel Python demo: for n in 100000..101000, the sum of the primes below n
         by trial division, one task per n (1001 tasks);
  tiny   10,000 tiny tasks: for n in 0..9999, is n prime (trial division), summed (the
         Python systems: best of 3 runs);
  cold   cold start to the first result: a fresh system (cluster start included) runs one
         tiny task.

Each system runs its own kernel: mesh its native Rust one; pp, Dask, mesh.pp and
mesh.Executor the Python one (the last two on a session node with --local). So
the fair figures are the efficiency of each against a serial run of its own kernel on
this machine (heavy tasks: how much of the ideal the system keeps), and tasks per second
(tiny tasks: how much a task costs the system itself).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time


def isprime(n):
    """The demo's isprime: trial division by 2..=sqrt(n)."""
    if n < 2:
        return False
    if n == 2:
        return True
    for i in range(2, int(math.sqrt(n)) + 2):
        if i * i > n:
            break
        if n % i == 0:
            return False
    return True


def sum_primes(n):
    return sum(x for x in range(2, n) if isprime(x))


def prime_or_zero(n):
    return n if isprime(n) else 0


# Expected results, from mesh's exact sieve (checked against OEIS A046731 in its tests).
DEMO_FIRST = 100000
TINY_N = 10000
TINY_SUM = 5736396  # the sum of the primes below 10000


# Seconds between two systems' runs.
SETTLE = 5


def demo_range(quick):
    last = DEMO_FIRST + (100 if quick else 1000)
    return list(range(DEMO_FIRST, last + 1))


# ---- mesh ----

def mesh_run(mesh, home, args):
    t = time.perf_counter()
    out = subprocess.run([mesh, "--home", home, "submit", *args, "--local", "--json"],
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    return json.loads(out.stdout), wall


def mesh_demo(mesh, home, ns, workers):
    doc, _ = mesh_run(mesh, home, ["primes", f"{ns[0]}..{ns[-1]}", "--algo", "trial", "-w", str(workers)])
    return doc["elapsed_s"], {r["n"]: r["sum"] for r in doc["results"]}


def mesh_tiny(mesh, home, workers):
    doc, _ = mesh_run(mesh, home, ["primes", str(TINY_N), "--tasks", str(TINY_N), "-w", str(workers)])
    assert doc["tasks"] == TINY_N
    return doc["elapsed_s"], doc["results"][0]["sum"]


def mesh_cold(mesh, home):
    _, wall = mesh_run(mesh, home, ["primes", "100", "-w", "1"])
    return wall


# ---- Parallel Python ----

def pp_run(workers, fn, args_list):
    import pp
    return pp_style(pp.Server(ncpus=workers, secret="mesh-bench"), fn, args_list)


def pp_style(server, fn, args_list):
    """Runs fn over args_list through a pp-style job server, then destroys it."""
    try:
        t = time.perf_counter()
        deps = (isprime,) if fn is not isprime else ()
        jobs = [server.submit(fn, (a,), deps, ("math",)) for a in args_list]
        results = [j() for j in jobs]
        return time.perf_counter() - t, results
    finally:
        server.destroy()


# ---- mesh's Python package ----

def meshpp_run(workers, fn, args_list):
    import mesh.pp as pp
    server = pp.Server(ncpus=workers, local=True)
    assert server.submit(isprime, (97,), (), ("math",))() is True  # the session node up
    return pp_style(server, fn, args_list)


def meshex_run(workers, fn, args_list):
    import mesh
    with mesh.Executor(max_workers=workers, local=True) as ex:
        assert ex.submit(isprime, 97).result() is True  # the session node up
        t = time.perf_counter()
        results = list(ex.map(fn, args_list))
        return time.perf_counter() - t, results


# ---- Dask ----

def dask_run(workers, fn, args_list):
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(isprime, 2).result()  # workers up before the clock starts
        t = time.perf_counter()
        results = client.gather(client.map(fn, args_list, pure=False))
        return time.perf_counter() - t, results


def serial(fn, args_list):
    t = time.perf_counter()
    results = [fn(a) for a in args_list]
    return time.perf_counter() - t, results


def cold(code):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t


PP_COLD = """
import sys; sys.path.insert(0, {here!r})
import pp, compare
s = pp.Server(ncpus={w}, secret="mesh-bench")
assert s.submit(compare.isprime, (97,), (), ("math",))() is True
s.destroy()
"""

DASK_COLD = """
import sys; sys.path.insert(0, {here!r})
import compare
from dask.distributed import Client, LocalCluster
if __name__ == "__main__":
    with LocalCluster(n_workers={w}, threads_per_worker=1, processes=True, dashboard_address=None) as c, Client(c) as cl:
        assert cl.submit(compare.isprime, 97).result() is True
"""


MESHPP_COLD = """
import sys; sys.path.insert(0, {here!r})
import compare
import mesh.pp as pp
s = pp.Server(ncpus={w}, local=True)
assert s.submit(compare.isprime, (97,), (), ("math",))() is True
s.destroy()
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mesh", required=True)
    ap.add_argument("--python-package", help="the directory of mesh's Python package")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--systems", default="pp,mesh.pp,mesh.Executor,dask",
                    help="the Python systems to run, comma-separated (mesh itself always runs); "
                         "mesh.pp,mesh.Executor needs neither pp nor Dask installed")
    a = ap.parse_args()
    w = a.workers
    # mesh's Python package, its session nodes started with this mesh binary.
    os.environ["MESH_BIN"] = os.path.abspath(a.mesh)
    package = os.path.abspath(a.python_package or os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    sys.path.insert(0, package)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
    here = os.path.dirname(os.path.abspath(__file__))
    home = tempfile.mkdtemp(prefix="mesh-compare-")
    ns = demo_range(a.quick)
    tiny = list(range(TINY_N))
    rows = []

    def row(system, workload, elapsed, tasks, serial_s=None):
        eff = serial_s / (w * elapsed) if serial_s else None
        rows.append({"system": system, "workload": workload, "elapsed_s": elapsed, "tasks": tasks,
                     "tasks_per_s": tasks / elapsed if tasks else None, "efficiency": eff})
        print(f"  {system:<13} {workload:<6} {elapsed:9.3f} s", file=sys.stderr, flush=True)

    print(f"workers: {w}, demo tasks: {len(ns)}", file=sys.stderr)
    # mesh: its own serial run is the same job on one worker.
    m1, sums = mesh_demo(a.mesh, home, ns, 1)
    mw, sums_w = mesh_demo(a.mesh, home, ns, w)
    assert sums == sums_w
    row("mesh", "demo", mw, len(ns), m1)
    mt, total = mesh_tiny(a.mesh, home, w)
    assert total == TINY_SUM, total
    mt1, _ = mesh_tiny(a.mesh, home, 1)
    row("mesh", "tiny", mt, TINY_N, None)
    row("mesh", "cold", min(mesh_cold(a.mesh, home) for _ in range(3)), 1)

    # The Python kernel, serially, is the baseline of both Python systems.
    s_demo, py_sums = serial(sum_primes, ns)
    assert {n: s for n, s in zip(ns, py_sums)} == {int(k): v for k, v in sums.items()}
    s_tiny, vals = serial(prime_or_zero, tiny)
    assert sum(vals) == TINY_SUM
    row("python", "demo", s_demo, len(ns))
    row("python", "tiny", s_tiny, TINY_N)

    # Dask last: its clusters leave processes winding down for a while after they close.
    systems = [("pp", pp_run, PP_COLD), ("mesh.pp", meshpp_run, MESHPP_COLD), ("mesh.Executor", meshex_run, None),
               ("dask", dask_run, DASK_COLD)]
    wanted = a.systems.split(",")
    unknown = set(wanted) - {name for name, _, _ in systems}
    if unknown:
        sys.exit("unknown systems: %s" % ", ".join(sorted(unknown)))
    for name, run, cold_code in [s for s in systems if s[0] in wanted]:
        time.sleep(SETTLE)  # what the previous system started has ended before the clock starts
        t, res = run(w, sum_primes, ns)
        assert res == py_sums, f"{name} demo results differ"
        row(name, "demo", t, len(ns), s_demo)
        # Tiny runs are short, so noise weighs: the best of 3, as for cold starts.
        best = None
        for _ in range(3):
            t, res = run(w, prime_or_zero, tiny)
            assert sum(res) == TINY_SUM, f"{name} tiny results differ"
            best = t if best is None else min(best, t)
        row(name, "tiny", best, TINY_N)
        if cold_code:
            row(name, "cold", min(cold(cold_code.format(here=here, w=w)) for _ in range(3)), 1)

    mesh_of = {r["workload"]: r["elapsed_s"] for r in rows if r["system"] == "mesh"}
    print(f"\n| system | workload | elapsed | tasks/s | efficiency vs its own serial kernel | time / mesh's |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        eff = f"{100 * r['efficiency']:.1f} %" if r["efficiency"] else "-"
        tps = f"{r['tasks_per_s']:,.0f}" if r["tasks_per_s"] else "-"
        ratio = r["elapsed_s"] / mesh_of[r["workload"]]
        print(f"| {r['system']} | {r['workload']} | {r['elapsed_s']:.3f} s | {tps} | {eff} | {ratio:.1f}x |")
    print(f"\nmesh tiny tasks on 1 worker: {mt1:.3f} s ({TINY_N / mt1:,.0f} tasks/s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
