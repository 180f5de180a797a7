"""A stand-in for the ``mesh`` binary, for tests of the session node (``MESH_BIN``).

Understands only what the package runs: ``mesh session --home H [--remove-home] [--local]
[--workers N]``. It serves a ``FakeNode`` at ``H`` with ``N`` worker slots (2 by default)
named ``session``, and ends when its stdin closes, as ``mesh session`` does.

``FAKE_MESH_RECORD`` names a file where it writes, as JSON, its arguments, the
``MESH_KEY`` it was given and its pid. ``FAKE_MESH_MODE=fail`` makes it exit with status 2
at once, after a line on stderr.
"""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import support  # noqa: E402


def main(argv):
    record = os.environ.get("FAKE_MESH_RECORD")
    if record:
        with open(record, "w") as f:
            json.dump({"argv": argv, "key": os.environ.get("MESH_KEY"), "pid": os.getpid()}, f)
    if os.environ.get("FAKE_MESH_MODE") == "fail":
        sys.stderr.write("error: the fake mesh was told to fail\n")
        return 2
    if not argv or argv[0] != "session":
        sys.stderr.write("fake mesh: only `session` is understood, not %r\n" % (argv,))
        return 2
    home, workers, remove_home = None, 2, False
    args = iter(argv[1:])
    for a in args:
        if a == "--home":
            home = next(args)
        elif a == "--workers":
            workers = int(next(args))
        elif a == "--remove-home":
            remove_home = True
        elif a == "--local":
            pass
        else:
            sys.stderr.write("fake mesh: unknown argument %r\n" % a)
            return 2
    if home is None:
        sys.stderr.write("fake mesh: no --home\n")
        return 2
    node = support.FakeNode(home, nodes=(("session", workers),))
    try:
        while os.read(0, 256):  # until stdin closes: the Python process ended or stopped us
            pass
    finally:
        node.stop()
    if remove_home:
        shutil.rmtree(home, ignore_errors=True)
    if node.errors:
        sys.stderr.write("fake mesh: the fake node broke:\n%s\n" % "\n".join(node.errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
