"""``get_transport``: build a transport from a URL."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._errors import ConfigurationError
from .transports.base import Transport
from .transports.memory import MemoryTransport, broker_named

__all__ = ["SUPPORTED_SCHEMES", "get_transport"]

SUPPORTED_SCHEMES = ("memory", "amqp", "amqps")


def _masked(url: object) -> str:
    """Return *url* fit for an error message: any password replaced."""
    return re.sub(r"([^:/@,\s]*):[^@/,\s]*@", r"\1:***@", str(url))


def get_transport(url: str | Sequence[str]) -> Transport:
    """Return a transport for *url*.

    - ``memory://`` or ``memory://NAME``: the in-process broker of that name.
    - ``amqp://user:password@host:port/vhost`` and ``amqps://...``: RabbitMQ;
      several brokers for failover as ``amqp://u:p@h1:5672,u:p@h2:5672/`` or as
      a list of URLs.
    """
    if not isinstance(url, str):
        urls = list(url)
        if urls and all(
            isinstance(one, str) and one.lower().startswith(("amqp://", "amqps://"))
            for one in urls
        ):
            from .transports.rabbitmq import RabbitMQTransport

            return RabbitMQTransport.from_url(urls)
        raise ConfigurationError(
            f"invalid transport URL list {_masked(urls)}: a list must name "
            "amqp:// or amqps:// brokers only"
        )
    if "://" not in url:
        raise ConfigurationError(
            f"invalid transport URL {_masked(url)!r}: expected SCHEME://..., "
            f"with SCHEME one of {', '.join(SUPPORTED_SCHEMES)}"
        )
    scheme = url.split("://", 1)[0].lower()
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
