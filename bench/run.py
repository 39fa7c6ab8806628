"""Run the benchmark cases and write the results JSON.

Usage: python -m bench.run --url AMQP_URL [--scale S] [--reps N] [--quick]
       [--only SYSTEM,...] [--out PATH] [--log-dir DIR]

Each system gets a client process and, on the broker, a server process
(bench.worker). They start on first use and stay up until the end, idle
while other systems run. For every case the systems take turns: repetition
1 runs each system once, repetition 2 again in a rotated order, and so on,
so that a noisy period on this shared machine hits every system alike.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from . import machine, stats
from .cases import Case, Run, build_cases
from .systems import IN_PROCESS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"
DEFAULT_REPS = 5
QUICK_SCALE = 0.2
QUICK_REPS = 2
START_SECONDS = 120.0  # a worker's import and connection set-up
STOP_SECONDS = 60.0  # oslo.messaging's cleanup alone takes several seconds
RUN_SLACK_SECONDS = 120.0  # added to a run's own duration before giving up
COLLECT_SECONDS = 60.0  # how long a server may take to drain a cast backlog
SAMPLES_KEPT = 3000  # latency samples kept per system for the plot


class WorkerError(Exception):
    """A worker process failed, timed out or returned an error."""


class Worker:
    """A bench.worker process and its JSON-lines channel."""

    def __init__(self, system: str, role: str, url: str, log_dir: Path) -> None:
        self.name = f"{system}-{role}"
        self._log = open(log_dir / f"{self.name}.log", "a")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", system, role, url],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._responses: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self._receive(START_SECONDS)

    def _read(self) -> None:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self._responses.put(line)
        self._responses.put("")

    def _receive(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._responses.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(
                f"{self.name} did not respond within {timeout:g} s"
            ) from None
        if not line:
            code = self.process.wait()
            raise WorkerError(f"{self.name} exited with status {code}; see its log")
        response: dict[str, Any] = json.loads(line)
        if not response.get("ok") and not response.get("unsupported"):
            raise WorkerError(f"{self.name}: {response.get('error')}")
        return response

    def request(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"{self.name} is gone: {exc}") from exc
        return self._receive(timeout)

    def stop(self) -> None:
        """Ask the worker to stop; kill it if it does not within STOP_SECONDS."""
        if self.process.poll() is None:
            try:
                self.request({"op": "stop"}, STOP_SECONDS)
                self.process.wait(STOP_SECONDS)
            except (WorkerError, subprocess.TimeoutExpired):
                self.kill()
        self._close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._close()

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                # Closing a pipe to a dead worker can raise a broken pipe.
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()


class Systems:
    """The worker processes of each system, started on first use."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self._url = url
        self._log_dir = log_dir
        self._clients: dict[str, Worker] = {}
        self._servers: dict[str, Worker] = {}
        self.unavailable: dict[str, dict[str, str]] = {}
        self.broken: dict[str, str] = {}

    def get(self, system: str) -> tuple[Worker, Worker | None]:
        if system in self.broken:
            raise WorkerError(f"{system} failed earlier: {self.broken[system]}")
        try:
            if system not in IN_PROCESS and system not in self._servers:
                server = Worker(system, "server", self._url, self._log_dir)
                self._servers[system] = server
                self.unavailable[system] = server.ready.get("unavailable", {})
            if system not in self._clients:
                self._clients[system] = Worker(
                    system, "client", self._url, self._log_dir
                )
        except WorkerError as exc:
            self.fail(system, str(exc))
            raise
        return self._clients[system], self._servers.get(system)

    def fail(self, system: str, reason: str) -> None:
        """Stop a system's processes after a failure; later runs are skipped."""
        self.broken[system] = reason
        for workers in (self._clients, self._servers):
            worker = workers.pop(system, None)
            if worker is not None:
                worker.kill()

    def stop_all(self) -> None:
        for workers in (self._clients, self._servers):
            for worker in workers.values():
                worker.stop()
            workers.clear()


def _cpu_seconds(server: Worker | None) -> float:
    if server is None:
        return 0.0
    seconds: float = server.request({"op": "cpu"}, STOP_SECONDS)["result"][
        "cpu_seconds"
    ]
    return seconds


def _latency_metrics(samples: list[float]) -> dict[str, float]:
    micros = [sample * 1e6 for sample in samples]
    return {
        "p50": stats.percentile(micros, 0.50),
        "p99": stats.percentile(micros, 0.99),
        "count": len(micros),
    }


def execute(
    systems: Systems, case: Case, run: Run, samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Run one repetition of *case* by *run*; return its metrics or a status."""
    try:
        client, server = systems.get(run.system)
    except WorkerError as exc:
        return {"status": "error", "error": str(exc)}
    reason = systems.unavailable.get(run.system, {}).get(case.shape)
    if reason is not None:
        return {"status": "unavailable", "error": reason}
    params = {**case.params, **run.params}
    timeout = params.get("warmup", 0) + params["duration"] + RUN_SLACK_SECONDS
    try:
        if case.arrivals and server is not None:
            server.request({"op": "reset"}, STOP_SECONDS)
        server_cpu = _cpu_seconds(server)
        response = client.request(
            {"op": "run", "shape": case.shape, "params": params}, timeout
        )
        if response.get("unsupported"):
            return {"status": "unavailable", "error": response["error"]}
        result = response["result"]
        if case.metric == "latency":
            samples.setdefault(run.label, []).extend(result["samples"])
            # Sequential calls: the CPU both processes used, per call.
            calls = len(result["samples"]) + params.get("warmup_calls", 0)
            cpu = result["cpu_seconds"] + _cpu_seconds(server) - server_cpu
            return {
                "status": "ok",
                **_latency_metrics(result["samples"]),
                "cpu_per_call": cpu / calls * 1e6,
            }
        cpu = result["cpu_seconds"] + _cpu_seconds(server) - server_cpu
        if case.shape == "stream":
            return {
                "status": "ok",
                "rate": result["items"] / result["elapsed"],
                "cpu_per_op": cpu / result["items"] * 1e6,
            }
        # Every operation of the run, warm-up and ramp included, shares the CPU.
        operations = max(1, result["total"] + result["warmed"])
        if case.arrivals:
            assert server is not None
            delivered = _delivered(server, case, result)
            delivered["cpu_per_op"] = cpu / operations * 1e6
            return delivered
        return {
            "status": "ok" if result["errors"] == 0 else "errors",
            "rate": result["rate"],
            "cpu_per_op": cpu / operations * 1e6,
            "errors": result["errors"],
            "first_error": result["first_error"],
        }
    except WorkerError as exc:
        systems.fail(run.system, str(exc))
        return {"status": "error", "error": str(exc)}


def _delivered(server: Worker, case: Case, sent: dict[str, Any]) -> dict[str, Any]:
    """Count the casts or notifications that arrived during the window."""
    start, end = sent["window"]
    expected = sent["total"] + sent["warmed"]
    collected = server.request(
        {
            "op": "collect",
            "args": {
                "names": list(case.arrivals),
                "expected": expected,
                "start": start,
                "end": end,
                "timeout": COLLECT_SECONDS,
            },
        },
        COLLECT_SECONDS + STOP_SECONDS,
    )["result"]
    counted = [collected[name]["counted"] for name in case.arrivals]
    missing = sum(max(0, expected - collected[name]["arrived"]) for name in collected)
    return {
        "status": "ok" if missing == 0 and sent["errors"] == 0 else "errors",
        "rate": sum(counted) / len(counted) / (end - start),
        "sent_rate": sent["rate"],
        "missing": missing,
        "errors": sent["errors"],
        "first_error": sent["first_error"],
    }


def summarize_run(repetitions: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    keys = (
        ("p50", "p99", "cpu_per_call")
        if metric == "latency"
        else ("rate", "cpu_per_op")
    )
    good = [rep for rep in repetitions if rep["status"] in ("ok", "errors")]
    summary: dict[str, Any] = {
        key: stats.summarize([rep[key] for rep in good]) for key in keys
    }
    statuses = {rep["status"] for rep in repetitions}
    if good:
        summary["status"] = "errors" if "errors" in statuses else "ok"
    else:
        summary["status"] = repetitions[0]["status"] if repetitions else "error"
    problems = [rep.get("error") or rep.get("first_error") for rep in repetitions]
    summary["note"] = next((problem for problem in problems if problem), None)
    return summary


class _NoProgress:
    """Stands in for rich's Progress where rich is not installed (unit tests)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def add_task(self, description: str, total: int) -> int:
        return 0

    def update(self, task: int, description: str) -> None:
        return None

    def advance(self, task: int) -> None:
        return None


def _progress_bar() -> Any:
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        return _NoProgress()
    return Progress(
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    cases = build_cases(args.scale)
    if args.only:
        selected = set(args.only.split(","))
        cases = [
            dataclasses.replace(
                case, runs=tuple(r for r in case.runs if r.system in selected)
            )
            for case in cases
        ]
        cases = [case for case in cases if case.runs]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    systems = Systems(args.url, args.log_dir)
    latency_samples: dict[str, list[float]] = {}
    results: list[dict[str, Any]] = []
    load_at_start = machine.load_average()
    began = time.monotonic()
    total = sum(len(case.runs) for case in cases) * args.reps
    progress = _progress_bar()
    try:
        with progress:
            task = progress.add_task("starting", total=total)
            for case in cases:
                repetitions: dict[str, list[dict[str, Any]]] = {
                    run.label: [] for run in case.runs
                }
                samples: dict[str, list[float]] = {}
                for rep in range(args.reps):
                    shift = rep % len(case.runs)
                    for run in case.runs[shift:] + case.runs[:shift]:
                        progress.update(task, description=f"{case.id} {run.label}")
                        repetitions[run.label].append(
                            execute(systems, case, run, samples)
                        )
                        progress.advance(task)
                if case.id == "call_latency/100":
                    for label, values in samples.items():
                        step = max(1, len(values) // SAMPLES_KEPT)
                        latency_samples[label] = [
                            round(value * 1e6, 1) for value in values[::step]
                        ]
                results.append(_case_result(case, repetitions))
    finally:
        systems.stop_all()
    description = machine.describe(args.url, ROOT)
    description["load_average_at_start"] = load_at_start
    return {
        "machine": description,
        "settings": {
            "scale": args.scale,
            "reps": args.reps,
            "duration_seconds": cases[0].params["duration"] if cases else None,
            "command": args.command,
        },
        "elapsed_seconds": round(time.monotonic() - began, 1),
        "cases": results,
        "latency_samples_us": latency_samples,
        "broken_systems": systems.broken,
    }


def _case_result(
    case: Case, repetitions: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    return {
        "id": case.id,
        "group": case.group,
        "shape": case.shape,
        "params": case.params,
        "metric": case.metric,
        "unit": case.unit,
        "runs": [
            {
                "label": run.label,
                "system": run.system,
                "leveret": run.is_leveret,
                "summary": summarize_run(repetitions[run.label], case.metric),
                "repetitions": repetitions[run.label],
            }
            for run in case.runs
        ],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--url", required=True, help="AMQP URL of the broker")
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("LEVERET_BENCH_SCALE", "1")),
        help="multiply every duration by this (default: LEVERET_BENCH_SCALE or 1)",
    )
    parser.add_argument(
        "--reps", type=int, default=None, help=f"repetitions (default {DEFAULT_REPS})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"scale {QUICK_SCALE} and {QUICK_REPS} repetitions: a check, not figures",
    )
    parser.add_argument(
        "--only", help="comma-separated systems to run, e.g. leveret,pika"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="where the worker processes' stderr goes (default: a new /tmp folder)",
    )
    parser.add_argument(
        "--command", default="python -m bench.run", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.scale = min(args.scale, QUICK_SCALE)
        args.reps = args.reps or QUICK_REPS
    args.reps = args.reps or DEFAULT_REPS
    if args.log_dir is None:
        args.log_dir = Path(tempfile.mkdtemp(prefix="leveret-bench-logs."))
    if args.scale <= 0 or args.reps < 1:
        parser.error("--scale must be above 0 and --reps at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    document = run_all(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    partial.replace(args.out)
    print(f"results: {args.out} ({document['elapsed_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
