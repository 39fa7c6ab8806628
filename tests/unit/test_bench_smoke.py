"""Smoke tests of the benchmark harness (bench/) and ``leveret bench``.

They run every in-process measurement for a fraction of a second and check
the structure of what comes out, so the harness cannot rot unnoticed. No
figure is checked: timings on a shared machine would make that flaky. The
broker half is in tests/integration/test_bench_smoke.py.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import socket
from typing import Any

import pytest
from click.testing import CliRunner

from leveret.cli import cli
from leveret.cli.bench import bench as bench_command

ROOT = pathlib.Path(__file__).resolve().parents[2]
IN_PROCESS_SYSTEMS = "leveret-memory,oslo-fake,floor"


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The bench package, imported from the checkout (it is not installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.placement
    import bench.report
    import bench.run

    return bench


def run_harness(harness: Any, tmp_path: pathlib.Path, url: str, only: str) -> Any:
    args = argparse.Namespace(
        url=url,
        scale=0.05,
        reps=1,
        only=only,
        log_dir=tmp_path / "logs",
        command="pytest",
    )
    return harness.run.run_all(args)


def test_cli_bench_prints_table() -> None:
    result = CliRunner().invoke(bench_command, ["--quick", "--duration", "0.05"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("leveret bench on memory://")
    assert lines[1].split() == ["measurement", "value", "unit"]
    names = [line.rsplit(None, 2)[0] for line in lines[2:]]
    assert "sync call p50" in names
    assert "async calls, 100 tasks" in names
    assert "async casts delivered, 1 sender" in names
    for line in lines[2:]:
        value = float(line.rsplit(None, 2)[1].replace(",", ""))
        assert value > 0, line


def test_cli_bench_unreachable_broker_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module, which the command of the same name hides in leveret.cli.
    bench_module = importlib.import_module("leveret.cli.bench")
    monkeypatch.setattr(bench_module, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as probe:  # a port that refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"amqp://guest:guest@127.0.0.1:{port}/"

    result = CliRunner().invoke(cli, ["bench", "--url", url, "--quick"])

    assert result.exit_code == 1
    assert "could not connect within 0.5 s" in result.output


def test_harness_in_process_results(harness: Any, tmp_path: pathlib.Path) -> None:
    document = run_harness(harness, tmp_path, "memory://", IN_PROCESS_SYSTEMS)
    assert document["broken_systems"] == {}
    cases = {case["id"]: case for case in document["cases"]}
    assert set(cases) == {"memory_latency", "memory_throughput/100"}
    for run in cases["memory_latency"]["runs"]:
        summary = run["summary"]
        assert summary["status"] == "ok", (run["label"], summary)
        assert summary["p50"]["median"] > 0
        assert summary["p99"]["median"] >= summary["p50"]["median"]
    for run in cases["memory_throughput/100"]["runs"]:
        summary = run["summary"]
        assert summary["status"] == "ok", (run["label"], summary)
        assert summary["rate"]["median"] > 0
    machine = document["machine"]
    assert machine["cores"] >= 1
    assert machine["packages"]["leveret"] is not None


def test_report_renders_and_keeps_text(harness: Any, tmp_path: pathlib.Path) -> None:
    document = run_harness(harness, tmp_path, "memory://", "leveret-memory,floor")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nIntro kept.\n\n"
        f"{harness.report.BEGIN}\nold\n{harness.report.END}\n\nAnalysis kept.\n"
    )
    harness.report.write_doc(document, doc)
    text = doc.read_text()
    assert "Intro kept." in text
    assert "Analysis kept." in text
    assert "\nold\n" not in text
    assert "## Targets" in text
    assert "| memory://, sync call p50 < 50 µs |" in text
    assert "## In-process call latency, and the thread-hop floors" in text
    verdicts = {t["verdict"] for t in harness.report.targets(document)}
    # The broker targets have no figures in an in-process run.
    assert "not measured" in verdicts
    assert verdicts <= {"met", "missed", "not measured"}
    memory_p50 = harness.report.targets(document)[0]["value"]
    assert math.isfinite(memory_p50)


def test_placement_prints_every_operation(
    harness: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.placement.main(["--duration", "0.05", "--reps", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[3:]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == list(
        harness.placement.OPERATIONS
    )
    for row in rows:
        cells = row.strip("| ").replace(",", "").split(" | ")[1:]
        any_cpu, one_cpu = (float(cell) for cell in cells)
        assert any_cpu > 0
        assert one_cpu > 0
