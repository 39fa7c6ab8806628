"""Workloads to profile leveret with, and a summary of py-spy's output.

Record (py-spy is in bench/requirements.txt; --subprocesses also samples the
server process that broker workloads start)::

    .venv-bench/bin/py-spy record --subprocesses -r 1000 -f raw -o stacks.txt \\
        -- .venv-bench/bin/python -m bench.profile run WORKLOAD [--url URL]

Summarize, per process, the functions under src/leveret with the most
samples, inclusive (the function or anything it calls) and self::

    .venv-bench/bin/python -m bench.profile summarize stacks.txt

WORKLOAD is one of: memory-sync (sequential RPCClient calls on memory://),
memory-async (100 AsyncRPCClient calls in flight on memory://), broker-sync
(sequential RPCClient calls), broker-shared (sequential AsyncRPCClient calls
with the transport on the client's event loop), broker-threads (64 threads
of RPCClient calls), broker-cast (RPCClient casts from one thread),
broker-notify (Notifier.info from one thread). Broker workloads start a server process
(bench.worker leveret server).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
from pathlib import Path

from .systems import leveret_amqp, leveret_memory

ROOT = Path(__file__).resolve().parent.parent
# A frame in py-spy's raw output: "function (path/to/file.py:line)", where the
# path is relative to the sys.path entry it was found under.
FRAME = re.compile(r"^(?P<function>.+) \((?P<path>[^()]+?):\d+\)$")


def _memory(api: str, duration: float) -> None:
    client = leveret_memory.Client("memory://")
    try:
        if api == "sync":
            client.run(
                "call_latency",
                {
                    "api": "sync",
                    "payload": 100,
                    "duration": duration,
                    "warmup_calls": 100,
                },
            )
        else:
            client.run(
                "call_throughput",
                {
                    "api": "async",
                    "payload": 100,
                    "workers": 100,
                    "warmup": 0.2,
                    "duration": duration,
                },
            )
    finally:
        client.close()


def _broker(workload: str, url: str, duration: float) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", "leveret", "server", url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        ready = json.loads(server.stdout.readline())
        if not ready.get("ok"):
            raise SystemExit(f"server failed to start: {ready}")
        client = leveret_amqp.Client(url)
        timed = {"api": "sync", "warmup": 0.2, "duration": duration}
        if workload == "broker-sync":
            params = {**timed, "payload": 100, "warmup_calls": 20}
            client.run("call_latency", params)
        elif workload == "broker-shared":
            params = {**timed, "payload": 100, "warmup_calls": 20}
            client.run("call_latency", {**params, "api": "async", "own_loop": False})
        elif workload == "broker-threads":
            client.run("call_throughput", {**timed, "payload": 100, "workers": 64})
        elif workload == "broker-cast":
            client.run("cast", {**timed, "workers": 1})
        elif workload == "broker-notify":
            client.run("notify", {**timed, "workers": 1})
        client.close()
    finally:
        server.stdin.write(json.dumps({"op": "stop"}) + "\n")
        server.stdin.flush()
        server.wait(60)


def _frame_name(frame: str) -> tuple[str, bool] | None:
    """Return "function (path)" and whether the frame is leveret's own code."""
    match = FRAME.match(frame.strip())
    if match is None:
        return None
    path = match["path"]
    is_leveret = "leveret/" in path and "site-packages" not in path
    if is_leveret:
        path = "leveret/" + path.rsplit("leveret/", 1)[1]
    return f"{match['function']} ({path})", is_leveret


def _package(frame: str) -> str:
    """Return the top-level package of a frame's file, e.g. aiormq or asyncio."""
    match = FRAME.match(frame.strip())
    if match is None:
        return "other"
    path = match["path"]
    if path.startswith("<frozen"):
        return "import machinery"
    return path.split("/", 1)[0].removesuffix(".py")


def summarize(path: Path, top: int) -> None:
    """Print, per process, where samples land.

    Inclusive counts are for leveret functions (the function or anything it
    calls); self counts are for any function on top of the stack.
    """
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    own: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    packages: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    totals: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # With --subprocesses each stack starts with "process PID:..." frames,
        # the parent's first; the last one names the sampled process.
        process = "main"
        while frames and frames[0].startswith("process "):
            process = frames.pop(0)
        totals[process] += count
        if not frames:
            continue
        seen: set[str] = set()
        for frame in frames:
            named = _frame_name(frame)
            if named is not None and named[1] and named[0] not in seen:
                inclusive[process][named[0]] += count
                seen.add(named[0])
        named = _frame_name(frames[-1])
        if named is not None:
            own[process][named[0]] += count
        packages[process][_package(frames[-1])] += count
    for process, total in totals.most_common():
        print(f"\n{process[:100]}: {total} samples")
        print("  leveret functions, inclusive (the function and its callees):")
        for name, count in inclusive[process].most_common(top):
            print(f"    {100 * count / total:5.1f}%  {name}")
        print("  any function, self (on top of the stack):")
        for name, count in own[process].most_common(top):
            print(f"    {100 * count / total:5.1f}%  {name}")
        print("  self, by package or standard-library module:")
        for name, count in packages[process].most_common(top):
            print(f"    {100 * count / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one workload")
    run.add_argument(
        "workload",
        choices=[
            "memory-sync",
            "memory-async",
            "broker-sync",
            "broker-shared",
            "broker-threads",
            "broker-cast",
            "broker-notify",
        ],
    )
    run.add_argument("--url", help="AMQP URL, for the broker workloads")
    run.add_argument("--duration", type=float, default=10.0, help="seconds")
    report = commands.add_parser("summarize", help="summarize py-spy raw output")
    report.add_argument("stacks", type=Path)
    report.add_argument("--top", type=int, default=15)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "summarize":
        summarize(args.stacks, args.top)
    elif args.workload.startswith("memory-"):
        _memory(args.workload.removeprefix("memory-"), args.duration)
    elif not args.url:
        parser.error(f"{args.workload} needs --url")
    else:
        _broker(args.workload, args.url, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
