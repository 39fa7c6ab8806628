"""``get_transport``: build a transport from a URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from ._errors import ConfigurationError
from .transports.base import Transport
from .transports.memory import MemoryTransport, broker_named

__all__ = ["SUPPORTED_SCHEMES", "get_transport"]

SUPPORTED_SCHEMES = ("memory", "amqp", "amqps")


def get_transport(url: str) -> Transport:
    """Return a transport for *url*.

    - ``memory://`` or ``memory://NAME``: the in-process broker of that name.
    - ``amqp://user:password@host:port/vhost`` and ``amqps://...``: RabbitMQ.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"invalid transport URL {url!r}: expected SCHEME://..., "
            f"with SCHEME one of {', '.join(SUPPORTED_SCHEMES)}"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        name = url.split("://", 1)[1].strip("/")
        return MemoryTransport(broker_named(name))
    if scheme in ("amqp", "amqps"):
        from .transports.rabbitmq import RabbitMQTransport

        transport: Transport = RabbitMQTransport.from_url(url)
        return transport
    raise ConfigurationError(
        f"unsupported transport URL scheme {scheme!r}: "
        f"supported schemes are {', '.join(SUPPORTED_SCHEMES)}"
    )
