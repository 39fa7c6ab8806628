"""Thread hand-over cost with a process's threads on one CPU or spread out.

Usage: python -m bench.placement [--duration S] [--reps N] [--cpu C]

Each sample runs in a fresh process. "any CPU" leaves placement to the
kernel. "one CPU" pins the process, and so every thread it starts, to CPU C
with ``os.sched_setaffinity`` (by default the first CPU it may use).
The operations are the in-process floors and leveret's in-process calls
from ``make bench``. A hand-over between threads on different CPUs wakes an
idle CPU, which costs far more on some virtual machines than a switch
between threads of one CPU. The table shows the p50 of each operation, the
median over the repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .systems import floor, leveret_memory

ROOT = Path(__file__).resolve().parent.parent

# Operation name: (system module, parameters of its call_latency shape).
OPERATIONS: dict[str, tuple[Any, dict[str, Any]]] = {
    "floor: SimpleQueue ping-pong": (floor, {"hop": "queue_pingpong"}),
    "floor: thread -> loop -> thread": (floor, {"hop": "loop_roundtrip"}),
    "floor: thread -> loop -> pool -> loop -> thread": (
        floor,
        {"hop": "loop_pool_roundtrip"},
    ),
    "leveret sync, memory://": (leveret_memory, {"api": "sync", "payload": 100}),
    "leveret async, memory://": (leveret_memory, {"api": "async", "payload": 100}),
}


def measure_one(name: str, duration: float) -> float:
    """Return the p50 in µs of operation *name*, measured in this process."""
    module, params = OPERATIONS[name]
    client = module.Client("memory://")
    try:
        result = client.run(
            "call_latency", {**params, "duration": duration, "warmup_calls": 200}
        )
    finally:
        client.close()
    return statistics.median(result["samples"]) * 1e6


def _in_child(name: str, duration: float, cpu: int | None) -> float:
    command = [sys.executable, "-m", "bench.placement", "--child", name]
    command += ["--duration", str(duration)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(json.loads(output.stdout)["p50"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        print(json.dumps({"p50": measure_one(args.child, args.duration)}))
        return 0
    pinned = min(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    print(f"p50 in µs, median of {args.reps}; {os.cpu_count()} CPUs")
    print(f"| operation | any CPU | one CPU (CPU {pinned}) |")
    print("| --- | --- | --- |")
    for name in OPERATIONS:
        spread: list[float] = []
        pinned_p50: list[float] = []
        # Alternated, so that drift on a shared machine hits both placements.
        for _ in range(args.reps):
            spread.append(_in_child(name, args.duration, None))
            pinned_p50.append(_in_child(name, args.duration, pinned))
        print(
            f"| {name} | {statistics.median(spread):,.1f} "
            f"| {statistics.median(pinned_p50):,.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
