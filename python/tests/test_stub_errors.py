"""The worker's stand-in for ``mesh._errors`` (``_worker.STUB_MODULES``), which tasks load
on nodes without the mesh package, must agree with the real module: the same exceptions,
with the same bases and constructors, pickling to the same arguments. Otherwise an
exception a task raises there would come back as something else here."""

import inspect
import unittest

import support  # noqa: F401  (puts the package on sys.path)
from mesh import _errors, _worker


def exceptions(namespace):
    return {n: c for n, c in namespace.items() if isinstance(c, type) and issubclass(c, BaseException)}


def stub_namespace():
    ns = {"__name__": "mesh._errors"}
    exec(compile(_worker.STUB_MODULES["mesh._errors"], "<mesh stub mesh._errors>", "exec"), ns)
    return ns


SAMPLES = {
    "MeshError": ("no node",),
    "NodeError": ("the node went away",),
    "TaskFailed": ("timed out", "pi2", 3),
    "RemoteTraceback": ("Traceback (most recent call last): ...",),
    "RemoteError": ("ValueError", "bad input", "Traceback (most recent call last): ...", "pi3"),
}


class StubErrorsAgree(unittest.TestCase):
    def test_the_same_exceptions_with_the_same_bases_and_constructors(self):
        real, stub = exceptions(vars(_errors)), exceptions(stub_namespace())
        self.assertEqual(sorted(real), sorted(stub))
        self.assertEqual(sorted(real), sorted(SAMPLES), "a new exception needs a sample here")
        for name in real:
            self.assertEqual([b.__name__ for b in real[name].__mro__], [b.__name__ for b in stub[name].__mro__], name)
            self.assertEqual(inspect.signature(real[name].__init__), inspect.signature(stub[name].__init__), name)

    def test_each_pickles_to_the_same_arguments(self):
        stub = stub_namespace()
        for name, args in SAMPLES.items():
            real_exc, stub_exc = getattr(_errors, name)(*args), stub[name](*args)
            self.assertEqual(real_exc.args, stub_exc.args, name)
            self.assertEqual(real_exc.__reduce__()[1], stub_exc.__reduce__()[1], name)
            for attr in ("reason", "node", "attempts", "type_name", "message", "traceback", "tb"):
                self.assertEqual(getattr(real_exc, attr, None), getattr(stub_exc, attr, None), (name, attr))


if __name__ == "__main__":
    unittest.main()
