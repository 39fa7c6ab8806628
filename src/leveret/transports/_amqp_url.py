"""Parsing of ``amqp://`` and ``amqps://`` transport URLs.

Forms accepted::

    amqp://user:password@host:5672/vhost
    amqp://u:p@host1:5672,u:p@host2:5672/vhost      several brokers (failover)
    ["amqp://u:p@host1/", "amqp://u:p@host2/"]       the same, as a list

Query options (the one place they are documented; see docs/rabbitmq.md):

=====================  ========  =============================================
option                 default   meaning
=====================  ========  =============================================
heartbeat              60        seconds between heartbeats; 0 turns them off
connection_timeout     10        seconds to open one connection
prefetch               64        unacknowledged messages per consumer
exchange               openstack the control exchange
quorum_queues          false     declare topic queues as quorum queues
durable_exchange       false     declare the control exchange durable; match
                                 oslo.messaging's amqp_durable_queues
ssl_ca_file            (system)  CA bundle for amqps
ssl_cert_file          none      client certificate for amqps
ssl_key_file           none      client key for amqps
ssl_verify_hostname    true      check the broker's name against its certificate
own_loop               true      run the connection on an event loop thread of
                                 its own; false binds it to the asyncio loop
                                 that first uses the transport
=====================  ========  =============================================
"""

from __future__ import annotations

import dataclasses
import math
import ssl
from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .._checks import MAX_PREFETCH
from .._errors import ConfigurationError

DEFAULT_HEARTBEAT = 60  # seconds
DEFAULT_CONNECTION_TIMEOUT = 10.0  # seconds
DEFAULT_PREFETCH = 64  # messages
_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerAddress:
    """One broker of a transport URL. ``repr`` masks the password."""

    scheme: str
    host: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    virtual_host: str

    def masked(self) -> str:
        """Return the URL of this broker with the password replaced by ``***``.

        The virtual host follows the last slash, percent-encoded; the
        default one, ``/``, leaves the path empty.
        """
        vhost = "" if self.virtual_host == "/" else quote(self.virtual_host, safe="")
        return f"{self.scheme}://{self.username}:***@{self.host}:{self.port}/{vhost}"


@dataclasses.dataclass(frozen=True, slots=True)
class RabbitMQOptions:
    """Everything a RabbitMQ transport URL configures."""

    brokers: tuple[BrokerAddress, ...]
    heartbeat: int = DEFAULT_HEARTBEAT
    connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT
    prefetch: int = DEFAULT_PREFETCH
    exchange: str = "openstack"
    quorum_queues: bool = False
    durable_exchange: bool = False
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_verify_hostname: bool = True
    own_loop: bool = True

    def masked_url(self) -> str:
        return ",".join(broker.masked() for broker in self.brokers)

    def ssl_context(self) -> ssl.SSLContext | None:
        """Build the TLS context for ``amqps`` brokers, or None for ``amqp``."""
        if all(broker.scheme == "amqp" for broker in self.brokers):
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_file)
        if self.ssl_cert_file:
            context.load_cert_chain(self.ssl_cert_file, self.ssl_key_file)
        context.check_hostname = self.ssl_verify_hostname
        return context


def _split_brokers(url: str) -> tuple[str, list[str], str, str]:
    """Split ``scheme://a,b,c/vhost?query`` into its parts."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ConfigurationError(f"invalid RabbitMQ URL {_mask(url)}: no scheme")
    rest, _, query = rest.partition("?")
    # A "/" inside a password or virtual host must be percent-encoded, so the
    # last "/" separates the broker list from the virtual host.
    netlocs, slash, vhost = rest.rpartition("/")
    if not slash:
        netlocs, vhost = rest, ""
    return scheme.lower(), netlocs.split(","), vhost, query


def _mask(url: str) -> str:
    """Return *url* with passwords replaced, for error messages."""
    masked = []
    for part in url.split(","):
        head, at, tail = part.rpartition("@")
        if at and ":" in head:
            # The user name ends at the first ":" after the scheme; the
            # password may hold more of them.
            prefix, scheme_end, credentials = head.rpartition("://")
            user = credentials.split(":", 1)[0]
            masked.append(f"{prefix}{scheme_end}{user}:***@{tail}")
        else:
            masked.append(part)
    return ",".join(masked)


def _parse_broker(scheme: str, netloc: str, vhost: str) -> BrokerAddress:
    if scheme not in _DEFAULT_PORTS:
        raise ConfigurationError(
            f"unsupported scheme {scheme!r} for RabbitMQ: use amqp or amqps"
        )
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigurationError(
            f"invalid host or port in broker address {_mask(netloc)}"
        ) from None
    if not parts.hostname:
        raise ConfigurationError(f"missing host in broker address {_mask(netloc)}")
    return BrokerAddress(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=unquote(vhost) or "/",
    )


def _bool(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigurationError(f"invalid {name} {text!r}: use true or false")


def _number(name: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        whole = " whole" if kind is int else ""
        raise ConfigurationError(
            f"invalid {name} {text!r}: expected a{whole} number"
        ) from None
    if value < 0:
        raise ConfigurationError(f"invalid {name} {text!r}: must not be negative")
    return value


_NUMBER_OPTIONS = ("heartbeat", "prefetch", "connection_timeout")
_BOOLEAN_OPTIONS = (
    "quorum_queues",
    "durable_exchange",
    "ssl_verify_hostname",
    "own_loop",
)
_TEXT_OPTIONS = ("exchange", "ssl_ca_file", "ssl_cert_file", "ssl_key_file")


def _options(query: str) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for name, text in parse_qsl(query, keep_blank_values=True):
        if name == "heartbeat":
            parsed[name] = int(_number(name, text, int))
        elif name == "prefetch":
            prefetch = int(_number(name, text, int))
            if not 1 <= prefetch <= MAX_PREFETCH:
                raise ConfigurationError(
                    f"invalid prefetch {text!r}: must be 1 to {MAX_PREFETCH}"
                )
            parsed[name] = prefetch
        elif name == "connection_timeout":
            seconds = _number(name, text, float)
            if not 0 < seconds < math.inf:
                raise ConfigurationError(
                    f"invalid connection_timeout {text!r}: must be above 0 s"
                )
            parsed[name] = seconds
        elif name in _BOOLEAN_OPTIONS:
            parsed[name] = _bool(name, text)
        elif name in _TEXT_OPTIONS:
            if not text:
                raise ConfigurationError(f"invalid {name} '': expected non-empty text")
            parsed[name] = text
        else:
            known = ", ".join(
                sorted(_NUMBER_OPTIONS + _BOOLEAN_OPTIONS + _TEXT_OPTIONS)
            )
            raise ConfigurationError(
                f"unknown RabbitMQ URL option {name!r}; the options are: {known}"
            )
    return parsed


def parse_rabbitmq_url(url: str | Sequence[str]) -> RabbitMQOptions:
    """Parse one URL (possibly naming several brokers) or a list of URLs.

    Options come from the query of the first URL that has one.
    """
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ConfigurationError("no RabbitMQ URL given")
    brokers: list[BrokerAddress] = []
    options: dict[str, object] = {}
    for one in urls:
        scheme, netlocs, vhost, query = _split_brokers(one)
        brokers.extend(_parse_broker(scheme, netloc, vhost) for netloc in netlocs)
        if query and not options:
            options = _options(query)

    return RabbitMQOptions(brokers=tuple(brokers), **options)  # type: ignore[arg-type]
