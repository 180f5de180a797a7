"""mesh: the computers of a LAN as one Python pool.

* ``mesh.Executor``: a ``concurrent.futures.Executor`` whose calls run on the mesh.
* ``mesh.pp``: Parallel Python's API; ``import mesh.pp as pp`` and a pp script runs
  unchanged.

Both talk to the ``mesh`` node under ``MESH_HOME`` (default ``~/.mesh``), or start a
session node for this process (the ``mesh`` binary on ``PATH``, or ``MESH_BIN``). Python
tasks run only on nodes started with ``mesh join --allow-run`` and on your own node:
whoever holds the mesh key may run code there. See ``python/README.md``.
"""

from ._errors import MeshError, NodeError, RemoteError, RemoteTraceback, TaskFailed
from .executor import Executor

__all__ = ["Executor", "MeshError", "NodeError", "RemoteError", "RemoteTraceback", "TaskFailed"]
__version__ = "0.1.0"
