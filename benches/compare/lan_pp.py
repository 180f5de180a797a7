"""One system's run of the Parallel Python demo, for `cargo bench --bench lan -- python`.

    python lan_pp.py serial|mesh.pp|pp FIRST LAST [PPSERVER]

Runs sum_primes(n) for n in FIRST..=LAST (compare.py's trial-division kernel, one task per
n) on the named system and prints one JSON line: {"system", "elapsed_s", "tasks",
"checksum", "nodes"}. The harness runs it inside a namespace host:

* serial: this process alone (the baseline of both systems);
* mesh.pp: `import mesh.pp as pp` against the mesh node of this host (MESH_HOME);
* pp: Parallel Python with one local worker and the ppserver at PPSERVER (host:port),
  secret "mesh-bench", as a pp cluster is set up by hand.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def main():
    system, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ns = list(range(first, last + 1))
    nodes = None
    if system == "serial":
        t = time.perf_counter()
        sums = [compare.sum_primes(n) for n in ns]
        elapsed = time.perf_counter() - t
    else:
        if system == "mesh.pp":
            import mesh.pp as pp

            server = pp.Server()
        else:
            import pp

            server = pp.Server(ncpus=1, ppservers=(sys.argv[4],), secret="mesh-bench")
        # Both systems up (the remote worker connected) before the clock starts.
        deadline = time.time() + 60
        while len(server.get_active_nodes()) < 2:
            if time.time() > deadline:
                sys.exit("%s: the remote node never came up: %r" % (system, server.get_active_nodes()))
            time.sleep(0.2)
        assert server.submit(compare.isprime, (97,), (), ("math",))() is True
        t = time.perf_counter()
        jobs = [server.submit(compare.sum_primes, (n,), (compare.isprime,), ("math",)) for n in ns]
        sums = [j() for j in jobs]
        elapsed = time.perf_counter() - t
        nodes = {name: s.njobs for name, s in server.get_stats().items()}
        server.destroy()
    print(json.dumps({"system": system, "elapsed_s": elapsed, "tasks": len(ns),
                      "checksum": sum(sums), "nodes": nodes}))


if __name__ == "__main__":
    main()
