"""Smoke test of the benchmark harness on the broker: leveret and raw pika.

Runs every broker shape for a fraction of a second through the harness's
worker processes and checks the structure of the results, not the figures.
The peers that need .venv-bench (aio-pika, nameko) are left out here.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


def test_harness_broker_results(
    amqp_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.run

    args = argparse.Namespace(
        url=amqp_url,
        scale=0.05,
        reps=1,
        only="leveret,pika",
        log_dir=tmp_path / "logs",
        command="pytest",
    )
    document = bench.run.run_all(args)
    assert document["broken_systems"] == {}
    assert document["machine"]["broker"].startswith("RabbitMQ")
    cases: dict[str, Any] = {case["id"]: case for case in document["cases"]}
    expected_ok = {
        "call_latency/100": {
            "leveret sync",
            "leveret async",
            "leveret async, shared loop",
            "pika (floor)",
        },
        "call_throughput/64": {
            "leveret sync",
            "leveret async",
            "leveret async, shared loop",
        },
        "cast/1": {"leveret sync", "leveret async", "pika (floor)"},
        "fanout/3": {"leveret sync", "pika (floor)"},
        "stream/500": {"leveret sync", "leveret async"},
    }
    for case_id, labels in expected_ok.items():
        runs = {run["label"]: run for run in cases[case_id]["runs"]}
        for label in labels:
            summary = runs[label]["summary"]
            assert summary["status"] == "ok", (case_id, label, summary)
    for case_id in ("cast/1", "fanout/3"):
        for run in cases[case_id]["runs"]:
            repetition = run["repetitions"][0]
            assert repetition["missing"] == 0, (case_id, run["label"], repetition)
            assert repetition["rate"] > 0
    assert document["latency_samples_us"]["pika (floor)"]
