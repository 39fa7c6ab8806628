"""Notification messages in oslo.messaging's wire form (``messagingv2``).

A notification is a JSON object in the 2.0 envelope (see ``_envelope``)::

    {"message_id": "8fa9d377-619e-4a60-9e5b-957f49dc2b2e",
     "publisher_id": "compute.host1", "event_type": "instance.create.end",
     "priority": "INFO", "payload": {...},
     "timestamp": "2026-12-04 15:25:31.502854",
     "_unique_id": "2475cc96e262406ba765dee20770e1bc",
     "_context_user_id": "u1", "_context_request_id": "req-...", ...}

``message_id`` is a UUID with dashes, ``priority`` is upper case and
``timestamp`` is ``str()`` of a naive UTC datetime, whose fraction is left out
when the microseconds are 0. These forms are what oslo.messaging 18.3 sends.
It is published to the control exchange with routing key ``TOPIC.PRIORITY``,
with the priority in lower case.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from ._context import pack_context, unpack_context
from ._envelope import new_id, unwrap, wrap

__all__ = [
    "PRIORITIES",
    "Notification",
    "decode_notification",
    "encode_notification",
    "notification_fields",
    "utc_timestamp",
]

# The priorities oslo.messaging defines, in lower case. Endpoint methods are
# named after them, and ``warn`` is the method for the WARN priority.
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """A received notification. Fields missing from the message are None.

    ``priority`` is the message's priority in lower case, or ``""`` when the
    message has none. Listeners dispatch on it, not on the routing key. The
    other fields are passed on as they arrived, normally as text: like
    oslo.messaging, leveret does not reject a message for their types.
    """

    message_id: Any
    publisher_id: Any
    event_type: Any
    priority: str
    payload: Any
    timestamp: Any
    context: dict[str, Any]
    unique_id: Any

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``metadata`` argument of endpoint methods."""
        return {"message_id": self.message_id, "timestamp": self.timestamp}


def utc_timestamp(now: datetime.datetime | None = None) -> str:
    """Return the current UTC time in the text form oslo.messaging sends."""
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    naive = now.astimezone(datetime.UTC).replace(tzinfo=None)
    return str(naive)


def new_message_id() -> str:
    return str(uuid.uuid4())


def encode_notification(
    message: Mapping[str, Any], context: Mapping[str, Any], max_bytes: int
) -> bytes:
    """Encode *message* (fields of :func:`notification_fields`) for one topic.

    Each topic's copy gets its own ``_unique_id``, as oslo.messaging sends them.
    """
    fields = dict(message)
    fields["_unique_id"] = new_id()
    pack_context(context, fields)
    return wrap(fields, max_bytes)


def notification_fields(
    publisher_id: str | None, event_type: str, priority: str, payload: Any
) -> dict[str, Any]:
    """Build the fields of a new notification, in the order oslo sends them."""
    return {
        "message_id": new_message_id(),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload,
        "timestamp": utc_timestamp(),
    }


def decode_notification(body: bytes | str) -> Notification:
    """Decode a body, raising :class:`MalformedMessage` if it is not a JSON
    object (in the 2.0 envelope or bare)."""
    message = unwrap(body)
    priority = message.get("priority")
    return Notification(
        message_id=message.get("message_id"),
        publisher_id=message.get("publisher_id"),
        event_type=message.get("event_type"),
        priority=priority.lower() if isinstance(priority, str) else "",
        payload=message.get("payload"),
        timestamp=message.get("timestamp"),
        context=unpack_context(message),
        unique_id=message.get("_unique_id"),
    )
