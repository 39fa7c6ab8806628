"""Split the CPU of a call between the broker, the server and the client.

Usage::

    .venv-bench/bin/python -m bench.cpu_split --url URL --broker-pid PID \\
        [--callers 64] [--seconds 6]

It starts a leveret server process with a plain ``echo`` method. Then it
keeps ``--callers`` blocking calls of 100 B in flight from threads of this
process for ``--seconds``. Around the run it reads the CPU time of the
broker, the server and this process. The broker's comes from
``/proc/PID/stat``; ``scripts/rabbitmq-start`` writes that pid to the
``pid`` file of its state folder. The split shows how much of the machine
a call costs outside leveret, which bounds the calls per second two shared
cores can make.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import leveret

TOPIC = "bench_cpu_split"
PAYLOAD = "x" * 100

_SERVER = """
import sys, time
import leveret

class Echo:
    def echo(self, payload):
        return payload

transport = leveret.get_transport(sys.argv[1])
target = leveret.Target(sys.argv[2], server="s1")
with leveret.RPCServer(transport, target, [Echo()]):
    print("ready", flush=True)
    sys.stdin.read()
transport.close()
"""


def process_cpu(pid: int) -> float:
    """Return the user and system CPU seconds of process *pid* so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, broker_pid: int, callers: int, seconds: float) -> str:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, url, TOPIC],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    transport = leveret.get_transport(url)
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        client = leveret.RPCClient(transport, leveret.Target(TOPIC), timeout=30)
        client.call("echo", payload=PAYLOAD)
        counts: list[int] = []
        deadline = time.monotonic() + seconds

        def call_until_deadline() -> None:
            count = 0
            while time.monotonic() < deadline:
                client.call("echo", payload=PAYLOAD)
                count += 1
            counts.append(count)

        threads = [threading.Thread(target=call_until_deadline) for _ in range(callers)]
        before = (process_cpu(broker_pid), process_cpu(server.pid), time.process_time())
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        after = (process_cpu(broker_pid), process_cpu(server.pid), time.process_time())
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
        transport.close()
    calls = sum(counts)
    broker, served, client_cpu = (
        1e6 * (end - start) / calls for start, end in zip(before, after, strict=True)
    )
    return (
        f"{calls} calls in {elapsed:.1f} s = {calls / elapsed:,.0f} calls/s with "
        f"{callers} callers; CPU per call: broker {broker:.0f} µs, server "
        f"{served:.0f} µs, client {client_cpu:.0f} µs, "
        f"total {broker + served + client_cpu:.0f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="AMQP URL of the broker")
    parser.add_argument("--broker-pid", type=int, required=True)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    print(run(args.url, args.broker_pid, args.callers, args.seconds))


if __name__ == "__main__":
    main()
