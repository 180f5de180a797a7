"""What the owner's job journal costs a `mesh join` node (issue 26), on this machine only.

    python3 benches/journal.py [--bin target/debug/mesh] [--rounds 5] [--jobs 5] [--idle 60]

Each node listens on loopback with mDNS off, has 2 workers, logs only warnings (to
/dev/null), and keeps its home on disk under /var/tmp (it must not be tmpfs: the bytes
are the kernel's count of what the process sent toward the disk, /proc/PID/io
write_bytes, counted when pages are dirtied).

  rate     jobs of 10,000 tiny tasks (mesh submit primes 10000 --tasks 10000) on a node
           with its journal and on one with --no-journal, a fresh node per side and round,
           alternating which goes first; each node runs one job to warm up, then --jobs
           more, each timed by its own report. Median per side, tasks a second, and B/A.
  bytes    the journalled node's write_bytes over each of its timed jobs: bytes per
           10,000 tasks (each job a new file: its entry, its results, its end).
  idle     write_bytes of an idle journalled node (a finished job kept) over --idle
           seconds, scaled to an hour.
  restart  a journalled node killed with SIGKILL mid-job (1,000 done and a commit), started
           again: seconds from the new process's start to its first task done after the
           restart (`mesh jobs` polled every 20 ms, so within about 30 ms). Median.

Takes about 3 minutes with the defaults. Prints one table, ready for docs/benchmarks.md.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = 10000


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes")


class Node:
    def __init__(self, binary, home, journal):
        self.binary, self.home = binary, home
        os.makedirs(home, exist_ok=True)
        args = [binary, "--home", home, "join", "--no-mdns", "--listen", "127.0.0.1:0", "-w", "2"]
        if not journal:
            args.append("--no-journal")
        sock = os.path.join(home, "control.sock")
        if os.path.exists(sock):
            os.remove(sock)  # a killed node's: the new one binds its own
        env = dict(os.environ, MESH_LOG="warn")
        env.pop("MESH_KEY", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if os.path.exists(sock):
                return
            time.sleep(0.01)
        raise RuntimeError(f"node at {home} did not start")

    def mesh(self, *args):
        out = subprocess.run([self.binary, "--home", self.home, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"mesh {' '.join(args)}: {out.stderr}")
        return json.loads(out.stdout)

    def job_done(self, job):
        for j in self.mesh("jobs", "--json"):
            if j["job"] == job:
                return j["done"]
        return None

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait()


def tiny(node):
    """One job of 10,000 tiny tasks: (tasks a second, bytes written during it)."""
    before = write_bytes(node.proc.pid)
    report = node.mesh("submit", "primes", str(TASKS), "--tasks", str(TASKS), "--json")
    # The end's record is committed at once, off the loop: let it land before counting.
    time.sleep(0.5)
    return TASKS / report["elapsed_s"], write_bytes(node.proc.pid) - before


def restart(binary, home):
    nodes = []
    try:
        return restart_once(binary, home, nodes)
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.stop(signal.SIGKILL)


def restart_once(binary, home, nodes):
    node = Node(binary, home, True)
    nodes.append(node)
    job = node.mesh("submit", "primes", "100000..160000", "--algo", "trial", "--detach", "--json")["job"]
    while (node.job_done(job) or 0) < 1000:
        time.sleep(0.05)
    time.sleep(1.5)  # a commit a second: the results so far are on disk
    node.stop(signal.SIGKILL)
    node = Node(binary, home, True)
    nodes.append(node)
    kept = None
    while True:
        done = node.job_done(job)
        if done is not None and kept is None:
            kept = done
        elif done is not None and done > kept:
            took = time.monotonic() - node.started
            break
        time.sleep(0.02)
    subprocess.run([binary, "--home", home, "cancel", job], capture_output=True)
    node.stop()
    return took, kept


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/mesh"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--jobs", type=int, default=5)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="mesh-journal-bench-", dir="/var/tmp")
    rates = {"journal": [], "no-journal": []}
    written = []
    for r in range(args.rounds):
        order = ["journal", "no-journal"] if r % 2 == 0 else ["no-journal", "journal"]
        for side in order:
            node = Node(args.bin, os.path.join(base, f"{side}{r}"), side == "journal")
            try:
                tiny(node)
                for _ in range(args.jobs):
                    rate, wrote = tiny(node)
                    rates[side].append(rate)
                    if side == "journal":
                        written.append(wrote)
            finally:
                node.stop()
    node = Node(args.bin, os.path.join(base, "idle"), True)
    try:
        tiny(node)
        time.sleep(2)
        before = write_bytes(node.proc.pid)
        time.sleep(args.idle)
        idle = (write_bytes(node.proc.pid) - before) * 3600 / args.idle
    finally:
        node.stop()
    restarts = [restart(args.bin, os.path.join(base, f"restart{r}")) for r in range(args.rounds)]
    shutil.rmtree(base, ignore_errors=True)

    a, b = statistics.median(rates["no-journal"]), statistics.median(rates["journal"])
    print(f"| figure | value | rounds |")
    print(f"|---|---|---|")
    print(f"| tiny tasks a second, --no-journal (A) | {a:,.0f} | {len(rates['no-journal'])} jobs |")
    print(f"| tiny tasks a second, journal (B) | {b:,.0f} | {len(rates['journal'])} jobs |")
    print(f"| B/A | {b / a:.2f} | |")
    print(f"| bytes written per 10,000 tasks (median; min-max) | {statistics.median(written):,.0f} ({min(written):,}-{max(written):,}) | {len(written)} jobs |")
    print(f"| bytes written by an idle node, per hour (over {args.idle:.0f} s) | {idle:,.0f} | 1 |")
    took = [t for t, _ in restarts]
    kept = [k for _, k in restarts]
    print(f"| restart to running again (median; min-max) | {statistics.median(took):.2f} s ({min(took):.2f}-{max(took):.2f}) | {args.rounds} |")
    print(f"| tasks kept by the journal at the kill (median) | {statistics.median(kept):,.0f} | {args.rounds} |")


if __name__ == "__main__":
    main()
