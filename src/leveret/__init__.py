"""leveret: RPC and notifications between Python services over RabbitMQ.

Wire-compatible with oslo.messaging's rabbit driver; see the README for a tour.
"""

from ._client import AsyncRPCClient, RPCClient
from ._context import ContextLogFilter, RequestContext, bind_context, get_context
from ._dispatcher import expose
from ._errors import (
    AccessRefused,
    ConfigurationError,
    ConnectionLost,
    InvalidTarget,
    LeveretError,
    MessageTooLarge,
    MessagingTimeout,
    NoServerError,
    NoSuchMethod,
    RemoteError,
    SerializationError,
    TransportClosed,
    TransportError,
    UnsupportedVersion,
)
from ._notification_batch import (
    AsyncBatchNotificationListener,
    BatchNotificationListener,
)
from ._notification_dispatch import NotificationResult
from ._notification_filter import NotificationFilter
from ._notification_listener import AsyncNotificationListener, NotificationListener
from ._notifier import AsyncNotifier, Notifier
from ._server import AsyncRPCServer, RPCServer
from ._stream import AsyncReplyStream, ReplyStream
from ._target import Target
from ._transport_url import get_transport
from .transports.base import Transport

__all__ = [
    "AccessRefused",
    "AsyncBatchNotificationListener",
    "AsyncNotificationListener",
    "AsyncNotifier",
    "AsyncRPCClient",
    "AsyncRPCServer",
    "AsyncReplyStream",
    "BatchNotificationListener",
    "ConfigurationError",
    "ConnectionLost",
    "ContextLogFilter",
    "InvalidTarget",
    "LeveretError",
    "MessageTooLarge",
    "MessagingTimeout",
    "NoServerError",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationListener",
    "NotificationResult",
    "Notifier",
    "RPCClient",
    "RPCServer",
    "RemoteError",
    "ReplyStream",
    "RequestContext",
    "SerializationError",
    "Target",
    "Transport",
    "TransportClosed",
    "TransportError",
    "UnsupportedVersion",
    "bind_context",
    "expose",
    "get_context",
    "get_transport",
]
