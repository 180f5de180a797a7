"""A parameter sweep for `mesh run`: estimates pi by Monte Carlo from one seed.

    mesh run --send examples/run/sweep.py -- python3 examples/run/sweep.py --seed {} ::: $(seq 100)

Each task prints one line, `seed estimate`; mesh prints them in input order, and the
average of the estimates is a better pi. The result depends only on the seed, so a task
that runs twice (a retry, a node that died) gives the same line.
"""
import argparse
import random

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--samples", type=int, default=200_000)
args = parser.parse_args()

rng = random.Random(args.seed)
inside = sum(1 for _ in range(args.samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
print(args.seed, 4.0 * inside / args.samples)
