"""Renders docs/scaling.png from the scaling data in benches/data/.

  benches/compare/.venv/bin/python benches/plot.py

Inputs (each written by a benchmark, see docs/benchmarks.md):
  benches/data/sim_scale.csv  cargo bench --features sim --bench sim_scale -- --csv
  benches/data/lan_scale.csv  cargo bench --bench lan -- jobs --csv
"""

import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def rows(name):
    with open(os.path.join(root, "benches", "data", name)) as f:
        return list(csv.DictReader(f))


sim = rows("sim_scale.csv")
lan = rows("lan_scale.csv")
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))

# One line per work-sharing policy (older CSVs have no policy column: stealing alone).
labels = {
    "before": "before issue 16: gossip only",
    "steal": "seeking work (default)",
    "unbudgeted": "seeking work, no gossip budget",
    "push": "seeking work + push to idle",
}
for policy, style in [("before", "s:"), ("steal", "o-"), ("unbudgeted", "v--"), ("push", "^-")]:
    rs = [r for r in sim if r.get("policy", "steal") == policy]
    if not rs:
        continue
    n = [int(r["nodes"]) for r in rs]
    a.plot(n, [100 * float(r["efficiency"]) for r in rs], style, label=labels[policy])
    if policy == "steal":
        for x, r in zip(n, rs):
            a.annotate(f"spread {float(r['spread_s']):.2f} s", (x, 100 * float(r["efficiency"])),
                       textcoords="offset points", xytext=(0, -16), ha="center", fontsize=8)
for policy, marker, label in [("2lan-random", "x", "2 LANs, 20 ms link: random stealing"),
                              ("2lan-aware", "D", "2 LANs, 20 ms link: cluster-aware")]:
    for r in (r for r in sim if r.get("policy") == policy):
        a.plot([int(r["nodes"])], [100 * float(r["efficiency"])], marker, color="gray", label=label)
a.set_xscale("log")
a.set_xlabel("nodes (simulated, mixed speeds)")
a.set_ylabel("efficiency, % of ideal")
a.set_ylim(50, 101)
a.axhline(95, color="gray", ls=":", lw=1)
a.axhline(93, color="gray", ls=":", lw=0.6)
a.set_title("Simulator: 200 tasks per node, 2 s jobs")
a.legend(loc="lower left", fontsize=8)

h = [int(r["hosts"]) for r in lan]
base = float(lan[0]["elapsed_s"])
b.plot(h, [base / float(r["elapsed_s"]) for r in lan], "o-", label="measured speedup")
b.plot(h, h, ":", color="gray", label="ideal (one core per host)")
b.axhline(2, color="tab:orange", ls="--", lw=1, label="this machine's 2 cores")
b.set_xticks(h)
b.set_xlabel("hosts (network namespaces, 1 worker each)")
b.set_ylabel("speedup over 1 host")
b.set_title("Namespace LAN: the demo job, 1000 tasks")
b.legend(loc="upper left", fontsize=8)

fig.tight_layout()
out = os.path.join(root, "docs", "scaling.png")
fig.savefig(out, dpi=110)
print(f"wrote {out}")
