"""Two builds of mesh side by side, for a change that must not move the figures: the local
tiny-task rate, `mesh run`'s overhead, and the Python package's tiny-task rate.

    python3 benches/compare/side_by_side.py --a OLD/target/release/mesh --a-python OLD/python \
        --b target/release/mesh --b-python python [--rounds 5]

Each round runs A then B (then B then A the next round, so drift hits both alike), on
this machine only, 2 workers:
  tiny     mesh submit primes 10000 --tasks 10000 -w 2 --local: the job's own elapsed
           time from its report (10,000 tasks of nothing);
  run      mesh run --local -w 2 -- true ::: 1..2000: the whole command's wall time;
  mesh.pp, mesh.Executor
           10,000 tiny Python calls (benches/compare/compare.py's), on a session node,
           timed from the first submit to the last result, best of 3, in a fresh Python
           process per round with that side's package and binary.
Prints the median of each figure per side, in tasks per second, and B/A.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N_TINY = 10000
N_RUN = 2000

PYTHON_SIDE = r"""
import json, os, sys
sys.path.insert(0, os.environ["COMPARE_DIR"])
import compare
w = 2
tiny = list(range(compare.TINY_N))
out = {}
for name, run in [("mesh.pp", compare.meshpp_run), ("mesh.Executor", compare.meshex_run)]:
    best = None
    for _ in range(3):
        t, res = run(w, compare.prime_or_zero, tiny)
        assert sum(res) == compare.TINY_SUM
        best = t if best is None else min(best, t)
    out[name] = best
print(json.dumps(out))
"""


def tiny(mesh, home):
    out = subprocess.run([mesh, "--home", home, "submit", "primes", str(N_TINY), "--tasks", str(N_TINY),
                          "-w", "2", "--local", "--json"], check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout)
    assert doc["tasks"] == N_TINY and doc["results"][0]["sum"] == 5736396
    return doc["elapsed_s"]


def run(mesh, home):
    t = time.perf_counter()
    subprocess.run([mesh, "--home", home, "run", "--local", "-w", "2", "--", "true", ":::",
                    *map(str, range(1, N_RUN + 1))], check=True, capture_output=True)
    return time.perf_counter() - t


def python(mesh, package, home):
    env = dict(os.environ, MESH_BIN=os.path.abspath(mesh), MESH_HOME=home, COMPARE_DIR=HERE,
               PYTHONPATH=os.pathsep.join([os.path.abspath(package), HERE]))
    out = subprocess.run([sys.executable, "-c", PYTHON_SIDE], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit("the Python side failed (%s, %s):\n%s" % (mesh, package, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--a-python", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--b-python", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sides = {"A": (a.a, a.a_python), "B": (a.b, a.b_python)}
    times = {s: {"tiny": [], "run": [], "mesh.pp": [], "mesh.Executor": []} for s in sides}
    for r in range(a.rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        for s in order:
            mesh, package = sides[s]
            home = tempfile.mkdtemp(prefix="mesh-sbs-")
            times[s]["tiny"].append(tiny(mesh, home))
            times[s]["run"].append(run(mesh, home))
            for name, t in python(mesh, package, home).items():
                times[s][name].append(t)
            print(f"round {r + 1} {s}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times[s].items()),
                  file=sys.stderr, flush=True)
    tasks = {"tiny": N_TINY, "run": N_RUN, "mesh.pp": N_TINY, "mesh.Executor": N_TINY}
    print("| figure | A tasks/s | B tasks/s | B/A |")
    print("|---|---|---|---|")
    for k, n in tasks.items():
        ra, rb = n / statistics.median(times["A"][k]), n / statistics.median(times["B"][k])
        print(f"| {k} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f} |")


if __name__ == "__main__":
    main()
