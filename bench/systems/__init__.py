"""One module per benchmarked system, each with a ``Client`` and a ``Server``.

A ``Client(url)`` has ``run(shape, params) -> dict`` and ``close()``. A
``Server(url, arrivals)`` has ``start()``, ``stop()`` and ``unavailable``
(shape name -> reason, for shapes it cannot serve), and records each cast,
fanout cast and notification it receives in *arrivals*. In-process systems
(leveret's memory transport, oslo.messaging's fake driver and the thread-hop
floors) have a client only.
"""

# System name -> module under bench.systems.
MODULES = {
    "leveret": "leveret_amqp",
    "oslo": "oslo",
    "aiopika": "aiopika",
    "nameko": "nameko_rpc",
    "pika": "pika_raw",
    "leveret-memory": "leveret_memory",
    "oslo-fake": "oslo_fake",
    "floor": "floor",
}

# Systems that run in one process, without a server process or a broker.
IN_PROCESS = frozenset({"leveret-memory", "oslo-fake", "floor"})
