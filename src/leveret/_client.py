"""RPC clients: :class:`AsyncRPCClient` and its blocking twin :class:`RPCClient`.

The asyncio client is the implementation. The blocking client prepares the
request in the caller's thread (so the caller's bound context and
serialization errors stay there) and runs the asyncio code on the transport's
event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Self

from . import _envelope
from ._checks import check_message_bytes, check_seconds
from ._context import RequestContext, as_context, get_context
from ._errors import ConfigurationError, InvalidTarget, MessagingTimeout
from ._remote_errors import deserialize_failure
from ._stream import AsyncReplyStream, ReplyStream, StreamRequest
from ._target import Target
from .transports.base import Address, Transport

__all__ = ["AsyncRPCClient", "RPCClient"]

logger = logging.getLogger("leveret.client")

DEFAULT_TIMEOUT = 60.0  # seconds a call waits for its reply

_UNSET: Any = object()


def _module_names(value: object) -> tuple[str, ...]:
    """Return *value*, module names, as a tuple; raise unless a list of text."""
    if not isinstance(value, str | bytes) and isinstance(value, Iterable):
        names = tuple(value)
        if all(isinstance(name, str) for name in names):
            return names
    raise ConfigurationError(
        f"invalid allowed_remote_exmods {value!r}: expected a list of module names"
    )


class _ClientConfig:
    """Settings shared by a client and its ``prepare`` copies; builds requests."""

    def __init__(
        self,
        transport: Transport,
        target: Target,
        timeout: float,
        allowed_remote_exmods: Collection[str],
        context: RequestContext | Mapping[str, Any] | None,
        max_message_bytes: int,
    ) -> None:
        if not isinstance(target, Target):
            raise InvalidTarget(f"target must be a leveret.Target, not {target!r}")
        if target.topic is None:
            raise InvalidTarget("a client's target needs a topic")
        self.timeout = check_seconds("timeout", timeout)
        self.allowed_remote_exmods = _module_names(allowed_remote_exmods)
        self.transport = transport
        self.target = target
        self.context = as_context(context)
        self.max_message_bytes = check_message_bytes(max_message_bytes)
        self.address = Address(
            exchange=target.exchange or transport.default_exchange,
            topic=target.topic,
            server=target.server,
            fanout=target.fanout,
        )

    def prepared(self, changes: dict[str, Any]) -> _ClientConfig:
        target_changes = {
            key: changes[key]
            for key in ("server", "fanout", "version", "namespace")
            if changes[key] is not _UNSET
        }
        timeout = changes["timeout"]
        context = changes["context"]
        return _ClientConfig(
            self.transport,
            self.target.replace(**target_changes),
            self.timeout if timeout is _UNSET else timeout,
            self.allowed_remote_exmods,
            self.context if context is _UNSET else context,
            self.max_message_bytes,
        )

    def context_dict(self) -> dict[str, Any]:
        context = self.context if self.context is not None else get_context()
        return {} if context is None else context.to_dict()

    def encode(
        self,
        method: str,
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any],
        *,
        msg_id: str | None = None,
        reply_q: str | None = None,
        stream: bool = False,
    ) -> bytes:
        return _envelope.encode_request(
            method,
            kwargs,
            context,
            namespace=self.target.namespace,
            version=self.target.version,
            msg_id=msg_id,
            reply_q=reply_q,
            stream=stream,
            max_bytes=self.max_message_bytes,
        )

    def check_call(self, operation: str, method: str) -> None:
        """Reject an invalid request before anything is sent."""
        if not isinstance(method, str) or not method:
            raise InvalidTarget(f"invalid method name {method!r}")
        if operation != "cast" and self.target.fanout:
            raise InvalidTarget(
                f"{operation} needs a reply but the target of topic "
                f"{self.target.topic!r} is fanout; use cast, or prepare(fanout=False)"
            )

    def stream_request(self, method: str, kwargs: dict[str, Any]) -> StreamRequest:
        self.check_call("stream", method)
        context = self.context_dict()
        # Encoding once here raises SerializationError before the stream starts.
        self.encode(method, kwargs, context)

        def encode(msg_id: str, reply_q: str) -> bytes:
            return self.encode(
                method, kwargs, context, msg_id=msg_id, reply_q=reply_q, stream=True
            )

        return StreamRequest(
            transport=self.transport,
            address=self.address,
            method=method,
            timeout=self.timeout,
            allowed_remote_exmods=self.allowed_remote_exmods,
            encode=encode,
        )


class _CallWaiter:
    """Collect the replies of one call until the one marked ``ending``.

    Older oslo.messaging servers send the result and the ending marker as two
    replies, so a non-null result seen before the ending one is kept.
    """

    __slots__ = ("_allowed", "_future", "_result")

    def __init__(self, future: asyncio.Future[Any], allowed: Collection[str]) -> None:
        self._future = future
        self._allowed = allowed
        self._result: Any = None

    def __call__(self, reply: _envelope.Reply | BaseException) -> None:
        if self._future.done():
            return
        if isinstance(reply, BaseException):
            self._future.set_exception(reply)
        elif reply.failure is not None:
            self._future.set_exception(
                deserialize_failure(reply.failure, self._allowed)
            )
        elif reply.ending:
            result = reply.result if reply.result is not None else self._result
            self._future.set_result(result)
        elif reply.result is not None:
            self._result = reply.result


async def _call(
    config: _ClientConfig,
    method: str,
    kwargs: dict[str, Any],
    context: dict[str, Any],
) -> Any:
    """Send one call and wait for its result; runs on the transport's loop."""
    transport = config.transport
    msg_id = _envelope.new_id()
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    waiter = _CallWaiter(future, config.allowed_remote_exmods)
    try:
        async with asyncio.timeout(config.timeout):
            reply_q = await transport.reply_queue()
            body = config.encode(
                method, kwargs, context, msg_id=msg_id, reply_q=reply_q
            )
            transport.replies.register(msg_id, waiter)
            await transport.send(config.address, body, expiration=config.timeout)
            return await future
    except TimeoutError:
        if future.done() and not future.cancelled():
            # The reply came before the deadline, and the broker's confirm
            # of the request did not: the reply wins. A remote TimeoutError
            # is re-raised here as the remote method's error.
            return future.result()
        raise MessagingTimeout(
            f"call of {method} to {config.address} timed out after "
            f"{config.timeout:g} s (msg_id {msg_id})"
            f"{config.transport.connection_note()}"
        ) from None
    finally:
        transport.replies.unregister(msg_id)
        if future.done() and not future.cancelled():
            # Seen, so that asyncio does not log it: the call may have failed
            # at its send while the transport's close failed this future too.
            future.exception()


async def _cast(config: _ClientConfig, method: str, body: bytes) -> None:
    """Publish a cast; the client's timeout bounds the wait for the broker."""
    try:
        async with asyncio.timeout(config.timeout):
            await config.transport.send(config.address, body)
    except TimeoutError:
        raise MessagingTimeout(
            f"cast of {method} to {config.address} was not accepted by the "
            f"broker within {config.timeout:g} s{config.transport.connection_note()}"
        ) from None


class _ClientBase:
    """Constructor and ``prepare`` shared by the asyncio and blocking clients.

    :param transport: from :func:`leveret.get_transport`.
    :param target: the topic to talk to, and optionally a server, fanout,
        exchange, namespace and version.
    :param timeout: seconds ``call`` waits for its reply, and ``stream`` for
        each item, before raising :class:`~leveret.MessagingTimeout`.
    :param allowed_remote_exmods: modules whose exceptions are re-raised as
        themselves; others arrive as :class:`~leveret.RemoteError`.
    :param context: sent with every request instead of the bound context; a
        dict is read as an oslo.context dict (RequestContext.from_dict).
    :param max_message_bytes: larger requests raise
        :class:`~leveret.MessageTooLarge` before anything is sent.
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        allowed_remote_exmods: Collection[str] = (),
        context: RequestContext | Mapping[str, Any] | None = None,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._config = _ClientConfig(
            transport,
            target,
            timeout,
            allowed_remote_exmods,
            context,
            max_message_bytes,
        )

    @classmethod
    def _from_config(cls, config: _ClientConfig) -> Self:
        client = cls.__new__(cls)
        client._config = config
        return client

    @property
    def target(self) -> Target:
        return self._config.target

    @property
    def timeout(self) -> float:
        return self._config.timeout

    def prepare(
        self,
        *,
        server: str | None = _UNSET,
        fanout: bool = _UNSET,
        timeout: float = _UNSET,
        version: str | None = _UNSET,
        namespace: str | None = _UNSET,
        context: RequestContext | Mapping[str, Any] | None = _UNSET,
    ) -> Self:
        """Return a client with the given fields overridden."""
        changes = {
            "server": server,
            "fanout": fanout,
            "timeout": timeout,
            "version": version,
            "namespace": namespace,
            "context": context,
        }
        return self._from_config(self._config.prepared(changes))


class AsyncRPCClient(_ClientBase):
    """Send requests to the servers of a target, from asyncio code.

    See :class:`_ClientBase` for the constructor's arguments.
    """

    async def call(self, method: str, /, **kwargs: Any) -> Any:
        """Invoke *method* on one server and return its result, or raise its error."""
        config = self._config
        config.check_call("call", method)
        coro = _call(config, method, kwargs, config.context_dict())
        return await config.transport.binding.run_async(coro)

    async def cast(self, method: str, /, **kwargs: Any) -> None:
        """Send *method* without waiting for a result; fanout targets reach all."""
        config = self._config
        config.check_call("cast", method)
        body = config.encode(method, kwargs, config.context_dict())
        await config.transport.binding.run_async(_cast(config, method, body))

    def stream(self, method: str, /, **kwargs: Any) -> AsyncReplyStream:
        """Iterate the items a generator method yields, as they arrive."""
        return AsyncReplyStream(self._config.stream_request(method, kwargs))


class RPCClient(_ClientBase):
    """The blocking client: the same methods as :class:`AsyncRPCClient`.

    Safe to share between threads. Do not use it on the transport's own event
    loop, where blocking would deadlock; use :class:`AsyncRPCClient` there.
    """

    def call(self, method: str, /, **kwargs: Any) -> Any:
        """Invoke *method* on one server and return its result, or raise its error."""
        config = self._config
        config.check_call("call", method)
        coro = _call(config, method, kwargs, config.context_dict())
        return config.transport.binding.run_blocking(coro)

    def cast(self, method: str, /, **kwargs: Any) -> None:
        """Send *method* without waiting for a result; fanout targets reach all."""
        config = self._config
        config.check_call("cast", method)
        body = config.encode(method, kwargs, config.context_dict())
        config.transport.binding.run_blocking(_cast(config, method, body))

    def stream(self, method: str, /, **kwargs: Any) -> ReplyStream:
        """Iterate the items a generator method yields, as they arrive."""
        return ReplyStream(self._config.stream_request(method, kwargs))
