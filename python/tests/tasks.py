"""Functions the tests run on workers. Workers import this module by name (the fake node
puts this directory on their PYTHONPATH, as a node with the user's package installed)."""

import os
import sys
import time

STATE = {"init": 0, "tag": None}
BY_TAG = {}


def add(a, b):
    return a + b


def square(x):
    return x * x


def boom(x):
    raise ValueError("boom %s" % x)


def chatty(n):
    print("hello", n)
    print("to stderr", n, file=sys.stderr)
    return n


def raw_write(n):
    os.write(1, b"RAW BYTES ON FD 1\n")
    os.write(2, b"RAW BYTES ON FD 2\n")
    return n * 2


def huge_output(n):
    sys.stdout.write("x" * n)
    return "done"


def init(tag):
    STATE["init"] += 1
    STATE["tag"] = tag
    BY_TAG[tag] = BY_TAG.get(tag, 0) + 1


def init_count(tag):
    """How often this process ran the initializer for ``tag``, and its pid."""
    return BY_TAG.get(tag, 0), os.getpid()


def init_fails(tag):
    raise RuntimeError("initializer refuses %s" % tag)


def init_state():
    return dict(STATE)


def pid():
    return os.getpid()


def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def crash():
    os._exit(7)


def big(n):
    return b"y" * n


def unpicklable():
    return lambda: 1


class Stubborn(Exception):
    """An exception that pickles but does not unpickle (its __init__ needs two args)."""

    def __init__(self, a, b):
        Exception.__init__(self, "stubborn %s" % a)
        self.b = b


def raise_stubborn():
    raise Stubborn(1, 2)


def import_missing():
    import mesh_test_module_that_is_not_here  # noqa: F401


class Point(object):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm1(self):
        return abs(self.x) + abs(self.y)

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def c_printf(n):
    """Writes to fd 1 from C (printf), as a library would, and from a child process."""
    import ctypes
    import subprocess

    libc = ctypes.CDLL(None)
    libc.printf(b"C PRINTF %d\n", ctypes.c_int(n))
    libc.fflush(None)
    subprocess.call(["echo", "CHILD ECHO"])
    sys.stdout.write("captured %d\n" % n)
    return n + 1


def read_stdin():
    """What a task finds on its stdin (not the node's frames)."""
    return sys.stdin.read(), os.read(0, 16)


def main_name():
    return sys.modules["__main__"].__name__


def raise_task_failed():
    """Raises an exception class of the mesh package, as a task that uses mesh might."""
    import mesh

    raise mesh.TaskFailed("inner", "somewhere", 3)


def fail_on(x, bad):
    if x == bad:
        raise ValueError("bad item %s" % x)
    return x
