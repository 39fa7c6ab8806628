"""Exceptions raised by leveret.

Every exception leveret raises derives from :class:`LeveretError`::

    LeveretError
    ├── ConfigurationError          bad URL, target or option, raised before any I/O
    │   └── InvalidTarget           a target that cannot be used for this operation
    ├── SerializationError          a value that cannot be encoded as JSON
    ├── MessageTooLarge             an encoded message over the size limit
    ├── MessagingTimeout            (also TimeoutError) no reply before the deadline
    ├── TransportError              the transport failed
    │   ├── AccessRefused           (also PermissionError) login or permission refused
    │   ├── ConnectionLost          (also ConnectionError) the broker connection dropped
    │   ├── TransportClosed         the transport was closed by its owner
    │   └── NoServerError           no server consumes the target's address
    ├── NoSuchMethod                the server has no such method (raised remotely)
    ├── UnsupportedVersion          no endpoint serves the requested version (remotely)
    └── RemoteError                 a remote exception that is not re-raised as itself

Errors raised by a server's endpoint travel to the caller and are re-raised
there as the same type when the type is a built-in, one of leveret's, or from a
module the client allows; any other type arrives as :class:`RemoteError`.
"""

from __future__ import annotations

__all__ = [
    "AccessRefused",
    "ConfigurationError",
    "ConnectionLost",
    "InvalidTarget",
    "LeveretError",
    "MessageTooLarge",
    "MessagingTimeout",
    "NoServerError",
    "NoSuchMethod",
    "RemoteError",
    "SerializationError",
    "TransportClosed",
    "TransportError",
    "UnsupportedVersion",
]


class LeveretError(Exception):
    """Base class of every exception leveret raises."""


class ConfigurationError(LeveretError, ValueError):
    """Raised for an invalid URL, target or option, before any I/O happens."""


class InvalidTarget(ConfigurationError):
    """Raised when a target cannot be used for the requested operation.

    For example ``call`` on a fanout target, or a client target without a topic.
    """


class SerializationError(LeveretError, TypeError):
    """Raised when a value cannot be encoded as JSON; nothing was sent."""


class MessageTooLarge(LeveretError):
    """Raised on the sender when an encoded message exceeds the size limit."""

    def __init__(self, size: int, limit: int) -> None:
        # args are the constructor's arguments, so a caller can rebuild it.
        super().__init__(size, limit)
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return (
            f"encoded message is {self.size} bytes, over the limit of "
            f"{self.limit} bytes"
        )


class MessagingTimeout(LeveretError, TimeoutError):
    """Raised when no reply (or no next stream item) arrives before the deadline."""


class TransportError(LeveretError):
    """Raised when the transport cannot carry a message."""


class AccessRefused(TransportError, PermissionError):
    """Raised when the broker rejects the login or an operation of its user.

    A rejected user, password or virtual host raises it at once while the
    transport has not connected yet. A transport that has connected before
    treats a later rejection as a lost connection and keeps retrying, so
    that a broker restart does not fail it for good. An operation the user
    has no permission for (declaring, publishing, consuming) raises it
    whenever it happens.
    """


class ConnectionLost(TransportError, ConnectionError):
    """Raised when the broker connection drops and the operation cannot finish."""


class TransportClosed(TransportError):
    """Raised by operations on a transport, client or server that was closed."""


class NoServerError(TransportError):
    """Raised at once when no server consumes the address a request was sent to."""


class NoSuchMethod(LeveretError, AttributeError):
    """Raised (on the caller) when no endpoint of the server has the method."""

    def __init__(self, method: str) -> None:
        super().__init__(method)
        self.method = method

    def __str__(self) -> str:
        return f"endpoint does not support RPC method {self.method}"


class UnsupportedVersion(LeveretError):
    """Raised (on the caller) when no endpoint serves the requested version."""

    def __init__(self, version: str, method: str | None = None) -> None:
        super().__init__(version, method)
        self.version = version
        self.method = method

    def __str__(self) -> str:
        return f"endpoint does not support RPC version {self.version}"


class RemoteError(LeveretError):
    """A remote exception whose type is not re-raised on the caller as itself.

    ``exc_type`` is the remote class name, ``value`` its message and
    ``traceback`` the remote traceback text.
    """

    def __init__(
        self,
        exc_type: str | None = None,
        value: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(exc_type, value, traceback)
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback

    def __str__(self) -> str:
        return f"remote error: {self.exc_type}: {self.value}"
