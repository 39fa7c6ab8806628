"""The in-process transport: a small broker inside the Python process.

``get_transport("memory://")`` and ``get_transport("memory://NAME")`` return
transports on the in-process broker of that name; transports of one name reach
each other, also across threads and event loops. Use it to embed services in
one process and as the test double for your own code: it runs the same
envelope, dispatch and reply code as the RabbitMQ transport.

It mirrors the broker's topology with these differences, by design:

- A request queue exists only while a server consumes it, so a call or cast
  to a topic without a server raises :class:`~leveret.NoServerError` at once.
  Notification queues keep messages until a listener takes them, as on the
  broker.
- Nothing survives the process, and messages are never lost or duplicated,
  so there is no acknowledgement timeout and no expiration.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import logging
import threading
import weakref
from collections.abc import Sequence

from .._envelope import new_id
from .._errors import NoServerError
from .base import (
    Address,
    IncomingMessage,
    Listener,
    MessageHandler,
    NotificationAddress,
    Transport,
)

__all__ = ["MemoryBroker", "MemoryTransport"]

logger = logging.getLogger("leveret.transport.memory")


class _Consumer:
    __slots__ = ("context", "handler", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: MessageHandler):
        self.loop = loop
        self.handler = handler
        # Deliveries run in an empty context of their own, so that no context
        # variable of the sender leaks into the receiver, as with a real
        # broker. Reusing one is safe: the loop runs one callback at a time,
        # and the handler's tasks copy it.
        self.context = contextvars.Context()

    def deliver(self, message: _Message) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.loop.call_soon(self.handler, message, context=self.context)
        else:
            self.loop.call_soon_threadsafe(self.handler, message, context=self.context)


class _Message:
    """A delivered message; ``reject(requeue=True)`` puts it back in its queue."""

    __slots__ = ("body", "delivery_count", "queue")

    def __init__(self, body: bytes, queue: _Queue, delivery_count: int = 0) -> None:
        self.body = body
        self.queue = queue
        self.delivery_count = delivery_count

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 0

    @property
    def settleable(self) -> bool:
        return True  # no connection to lose

    async def ack(self) -> None:
        return None

    async def reject(self, requeue: bool) -> None:
        if requeue:
            self.queue.put(_Message(self.body, self.queue, self.delivery_count + 1))


class _Queue:
    """A named queue; keeps messages without consumers only if ``durable``."""

    def __init__(self, broker: MemoryBroker, name: str, durable: bool) -> None:
        self.broker = broker
        self.name = name
        self.durable = durable
        self.consumers: list[_Consumer] = []
        self.pending: collections.deque[_Message] = collections.deque()
        self._turn = itertools.count()

    def put(self, message: _Message) -> None:
        with self.broker.lock:
            if not self.consumers:
                self.pending.append(message)
                return
            consumer = self.consumers[next(self._turn) % len(self.consumers)]
        consumer.deliver(message)

    def add_consumer(self, consumer: _Consumer) -> None:
        with self.broker.lock:
            self.consumers.append(consumer)
            backlog = list(self.pending)
            self.pending.clear()
        for message in backlog:
            self.put(message)


class MemoryBroker:
    """Exchanges, bindings and queues of one in-process broker."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.lock = threading.RLock()
        self._queues: dict[str, _Queue] = {}
        # exchange name -> routing key -> names of bound queues. A fanout
        # exchange uses the routing key "" for every binding.
        self._bindings: dict[str, dict[str, set[str]]] = {}

    def declare(self, queue: str, durable: bool = False) -> _Queue:
        with self.lock:
            found = self._queues.get(queue)
            if found is None:
                found = self._queues[queue] = _Queue(self, queue, durable)
            return found

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        with self.lock:
            keys = self._bindings.setdefault(exchange, {})
            keys.setdefault(routing_key, set()).add(queue)

    def publish(self, exchange: str, routing_key: str, body: bytes) -> int:
        """Put *body* in every queue bound to the key; return how many."""
        with self.lock:
            names = self._bindings.get(exchange, {}).get(routing_key, ())
            queues = [self._queues[name] for name in names if name in self._queues]
        for queue in queues:
            queue.put(_Message(body, queue))
        return len(queues)

    def put(self, queue_name: str, body: bytes) -> bool:
        """Put *body* in the named queue directly; False if there is none."""
        with self.lock:
            queue = self._queues.get(queue_name)
        if queue is None:
            return False
        queue.put(_Message(body, queue))
        return True

    def cancel(self, queue: _Queue, consumer: _Consumer) -> None:
        """Remove a consumer; a non-durable queue goes with its last consumer."""
        with self.lock:
            if consumer in queue.consumers:
                queue.consumers.remove(consumer)
            if queue.durable or queue.consumers:
                return
            self._queues.pop(queue.name, None)
            for keys in self._bindings.values():
                for names in keys.values():
                    names.discard(queue.name)


class _MemoryListener:
    def __init__(
        self, broker: MemoryBroker, consumers: list[tuple[_Queue, _Consumer]]
    ) -> None:
        self._broker = broker
        self._consumers = consumers

    async def stop(self) -> None:
        for queue, consumer in self._consumers:
            self._broker.cancel(queue, consumer)
        self._consumers = []

    async def close(self) -> None:
        await self.stop()


def _fanout_exchange(address: Address) -> str:
    return f"{address.topic}_fanout"


class MemoryTransport(Transport):
    """A transport on an in-process :class:`MemoryBroker`."""

    def __init__(
        self, broker: MemoryBroker | None = None, *, default_exchange: str = "openstack"
    ) -> None:
        super().__init__(default_exchange)
        self.broker = broker if broker is not None else MemoryBroker()
        self._reply_queue: str | None = None
        self._listeners: list[_MemoryListener] = []

    def __repr__(self) -> str:
        return f"MemoryTransport(url='memory://{self.broker.name}')"

    async def send(
        self, address: Address, body: bytes, *, expiration: float | None = None
    ) -> None:
        self.check_open()
        if address.fanout:
            delivered = self.broker.publish(_fanout_exchange(address), "", body)
        elif address.server is not None:
            key = f"{address.topic}.{address.server}"
            delivered = self.broker.publish(address.exchange, key, body)
        else:
            delivered = self.broker.publish(address.exchange, address.topic, body)
        if not delivered:
            raise NoServerError(f"no server listens on {address}")

    async def send_reply(self, reply_queue: str, body: bytes) -> None:
        self.check_open()
        if not self.broker.put(reply_queue, body):
            logger.info("reply.dropped reply_q=%s reason=queue gone", reply_queue)

    async def reply_queue(self) -> str:
        self.check_open()
        if self._reply_queue is None:
            name = f"reply_{new_id()}"
            queue = self.broker.declare(name)
            consumer = _Consumer(self.binding.bind_running(), self._on_reply)
            queue.add_consumer(consumer)
            self._listeners.append(_MemoryListener(self.broker, [(queue, consumer)]))
            self._reply_queue = name
        return self._reply_queue

    def _on_reply(self, message: IncomingMessage) -> None:
        self.replies.deliver(message.body)

    async def listen(
        self,
        addresses: Sequence[Address],
        handler: MessageHandler,
        *,
        prefetch: int,
    ) -> Listener:
        self.check_open()
        consumer = _Consumer(self.binding.bind_running(), handler)
        consumed: list[tuple[_Queue, _Consumer]] = []
        for address in addresses:
            if address.fanout:
                name = f"{_fanout_exchange(address)}_{new_id()}"
                queue = self.broker.declare(name)
                self.broker.bind(name, _fanout_exchange(address), "")
            else:
                name = address.topic
                if address.server is not None:
                    name = f"{address.topic}.{address.server}"
                queue = self.broker.declare(name)
                self.broker.bind(name, address.exchange, name)
            queue.add_consumer(consumer)
            consumed.append((queue, consumer))
        return self._track(_MemoryListener(self.broker, consumed))

    async def send_notification(
        self, address: NotificationAddress, body: bytes, *, retry: int | None
    ) -> None:
        self.check_open()
        key = address.routing_key
        self.broker.declare(key, durable=True)
        self.broker.bind(key, address.exchange, key)
        self.broker.publish(address.exchange, key, body)

    async def listen_notifications(
        self,
        addresses: Sequence[NotificationAddress],
        handler: MessageHandler,
        *,
        pool: str | None,
        prefetch: int,
    ) -> Listener:
        self.check_open()
        consumer = _Consumer(self.binding.bind_running(), handler)
        consumed: list[tuple[_Queue, _Consumer]] = []
        for address in addresses:
            key = address.routing_key
            name = key if pool is None else pool
            queue = self.broker.declare(name, durable=True)
            self.broker.bind(name, address.exchange, key)
            queue.add_consumer(consumer)
            consumed.append((queue, consumer))
        return self._track(_MemoryListener(self.broker, consumed))

    def _track(self, listener: _MemoryListener) -> _MemoryListener:
        self._listeners.append(listener)
        return listener

    async def close_on_loop(self) -> None:
        if self.closed:
            return
        self.closed = True
        for listener in self._listeners:
            await listener.stop()
        self._listeners.clear()
        from .._errors import TransportClosed

        self.replies.fail_all(TransportClosed(f"{self!r} was closed"))


_brokers: weakref.WeakValueDictionary[str, MemoryBroker] = weakref.WeakValueDictionary()
_brokers_lock = threading.Lock()


def broker_named(name: str) -> MemoryBroker:
    """Return the process's in-process broker called *name*, creating it once.

    The registry keeps brokers by weak reference, so a broker lives as long as
    a transport uses it.
    """
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = MemoryBroker(name)
        return broker
