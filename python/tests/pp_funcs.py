"""Functions ``test_pp`` submits with ``mesh.pp``. They travel as source, as pp sends
them: the workers of ``test_pp``'s fake node cannot import this module, so a function
works there only with what pp sends (``depfuncs``, ``modules``, ``globals``)."""

import collections as coll
import math
import time
from math import sqrt as square_root

SCALE = 10  # pp does not send module constants: functions must not need them


def isprime(n):
    """True if n is prime (Parallel Python's sum_primes example)."""
    if n < 2:
        return False
    if n == 2:
        return True
    top = int(math.ceil(math.sqrt(n)))
    i = 2
    while i <= top:
        if n % i == 0:
            return False
        i += 1
    return True


def sum_primes(n):
    return sum([x for x in range(2, n) if isprime(x)])


def pp_square(x):
    return x * x


def slow(x, seconds):
    time.sleep(seconds)
    return x


def hyp(a, b):
    return square_root(a * a + b * b)


def most_common(xs):
    return coll.Counter(xs).most_common(1)[0]


def helper(x):
    return 2 * x


def uses_helper(x):
    return helper(x) + 1


def uses_constant(x):
    return x * SCALE


def boom_pp(x):
    raise ValueError("pp boom %s" % x)


def chatty_pp(x):
    print("pp says", x)
    return x


def crash_pp():
    import os

    os._exit(3)


class Vec(object):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x * self.x + self.y * self.y

    def __eq__(self, other):
        return isinstance(other, Vec) and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return "Vec(%r, %r)" % (self.x, self.y)


def vec_sum(vs):
    return Vec(sum(v.x for v in vs), sum(v.y for v in vs))
