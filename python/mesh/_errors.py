"""The exceptions the mesh package raises, so callers can tell the causes apart.

* ``MeshError``: anything about the mesh itself (no node, a node that refused a job).
* ``NodeError``: no node could be reached or started, or the node went away (its control
  connection dropped) or broke the protocol while a job ran; the message says what to do
  and, for a session node that ended, what it logged.
* ``TaskFailed``: a task gave no result: its worker crashed, it timed out, or no node could
  set it up (a module missing there). Retried up to ``retries`` times before this.
* ``RemoteError``: the user's function raised, and its exception could not be rebuilt here
  (it did not unpickle); carries the remote type name, message and traceback text.
* ``RemoteTraceback``: attached as ``__cause__`` of an exception that did come back, so
  the remote traceback shows under the local one (as ``concurrent.futures.process`` does).
"""


class MeshError(Exception):
    """A problem with the mesh rather than with the user's function."""


class NodeError(MeshError):
    """No mesh node could be reached or started under the home, or the node went away
    (or broke the protocol) while it ran a job."""


class TaskFailed(MeshError):
    """A task gave no result: its worker died, it timed out, or it could not be set up.

    ``reason`` is the node's text, ``node`` the node that reported it (if known) and
    ``attempts`` the runs it took.
    """

    def __init__(self, reason, node=None, attempts=None):
        MeshError.__init__(self, reason)
        self.reason = reason
        self.node = node
        self.attempts = attempts

    def __str__(self):
        where = []
        if self.node:
            where.append("on %s" % self.node)
        if self.attempts:
            where.append("after %d run%s" % (self.attempts, "" if self.attempts == 1 else "s"))
        return "%s%s" % (self.reason, " (%s)" % ", ".join(where) if where else "")

    def __reduce__(self):
        return (type(self), (self.reason, self.node, self.attempts))


class RemoteTraceback(Exception):
    """The traceback text of an exception raised on a node."""

    def __init__(self, tb):
        Exception.__init__(self, tb)
        self.tb = tb

    def __str__(self):
        return '\n"""\n%s"""' % self.tb


class RemoteError(MeshError):
    """The user's function raised on a node, and its exception did not unpickle here.

    ``type_name`` is the remote exception's qualified type name, ``message`` its text and
    ``traceback`` the remote traceback.
    """

    def __init__(self, type_name, message, traceback, node=None):
        MeshError.__init__(self, "%s: %s" % (type_name, message))
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.node = node

    def __str__(self):
        where = " on %s" % self.node if self.node else ""
        return "%s: %s (raised%s)\n%s" % (self.type_name, self.message, where, self.traceback.rstrip())

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.traceback, self.node))
