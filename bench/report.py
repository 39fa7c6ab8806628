"""Turn a results JSON into docs/benchmarks.md tables and docs/img plots.

Usage: python -m bench.report [RESULTS_JSON] [--doc PATH] [--img-dir DIR]

The generated part of the page sits between the two marker comments below.
Text outside them, such as the analysis, is kept when the page is written
again.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .run import DEFAULT_OUT, ROOT

BEGIN = "<!-- bench:generated:begin -->"
END = "<!-- bench:generated:end -->"
DEFAULT_DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_IMG = ROOT / "docs" / "img"
LATENCY_PLOT = "bench-latency.png"
THROUGHPUT_PLOT = "bench-throughput.png"

GROUP_TITLES = {
    "call_latency": "Sequential call latency on the broker",
    "call_throughput": "Call throughput on the broker, by callers in flight",
    "cast": "Casts delivered end to end, by senders in flight",
    "fanout": "Fanout casts to 3 servers",
    "stream": "Streamed replies (leveret only)",
    "notify": "Notifications delivered to one listener",
    "memory_latency": "In-process call latency, and the thread-hop floors",
    "memory_throughput": "In-process call throughput, 100 in flight",
}


CPU_HEADING = (
    "CPU time per call in µs, client and server processes together (the "
    "broker's own CPU not included). A busy machine stretches wall-clock "
    "latency but hardly this:"
)


TARGETS_NOTE = (
    "Ratios are of medians measured in this run. The CPU-time view makes the "
    "same comparison from the CPU that the client and server processes used "
    "per operation, which other load on this shared machine hardly changes. "
    "It estimates the wall-clock figure on an idle machine and is not a "
    "measurement of it."
)
CPU_OP_HEADING = (
    "CPU time per operation in µs, client and server processes together, "
    "warm-up included (lower is better; the broker's CPU not included):"
)


def _format(value: float, metric: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if metric == "latency":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return f"{value:,.0f}"


def _cell(summary: dict[str, Any], key: str, metric: str) -> str:
    if summary["status"] not in ("ok", "errors"):
        return "not available" if summary["status"] == "unavailable" else "failed"
    values = summary[key]
    text = (
        f"{_format(values['median'], metric)} "
        f"({_format(values['min'], metric)}–{_format(values['max'], metric)})"
    )
    return text + (" †" if summary["status"] == "errors" else "")


def _median(run: dict[str, Any], key: str) -> float:
    summary = run["summary"]
    if summary["status"] not in ("ok", "errors"):
        return math.nan
    value: float = summary[key]["median"]
    return value


def _param_label(case: dict[str, Any]) -> str:
    params = case["params"]
    group = case["group"]
    if group == "call_latency":
        size = params["payload"]
        return {100: "100 B", 10_000: "10 KB", 1_000_000: "1 MB"}.get(size, f"{size} B")
    if group in ("call_throughput", "cast"):
        return str(params["workers"])
    return case["unit"]


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _labels(cases: list[dict[str, Any]]) -> list[str]:
    labels: list[str] = []
    for case in cases:
        for run in case["runs"]:
            if run["label"] not in labels:
                labels.append(run["label"])
    return labels


def _find(case: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((run for run in case["runs"] if run["label"] == label), None)


def _group_tables(
    cases: list[dict[str, Any]], key: str, with_ratios: bool = True
) -> list[str]:
    """Return a table of values (a row per system, a column per parameter)
    and, unless *with_ratios* is false, a table of leveret's ratios."""
    metric = cases[0]["metric"]
    if key.startswith("cpu"):
        metric = "latency"  # formatted as microseconds
    labels = _labels(cases)
    columns = [_param_label(case) for case in cases]
    if len(cases) == 1:
        # One case: its column is the value itself, so name the unit.
        columns = ["µs" if metric == "latency" else cases[0]["unit"]]
    rows = []
    for label in labels:
        row = [label]
        for case in cases:
            run = _find(case, label)
            row.append("" if run is None else _cell(run["summary"], key, metric))
        rows.append(row)
    lines = _table(["system", *columns], rows)
    if not with_ratios:
        return lines
    leveret = [label for label in labels if label.startswith("leveret")]
    peers = [label for label in labels if not label.startswith("leveret")]
    ratio_rows = []
    for mine in leveret:
        for peer in peers:
            row = [f"{mine} ÷ {peer}"]
            for case in cases:
                own, other = _find(case, mine), _find(case, peer)
                if own is None or other is None:
                    row.append("")
                    continue
                ratio = _ratio(_median(own, key), _median(other, key))
                row.append(_format_ratio(ratio))
            if any(cell not in ("", "–") for cell in row[1:]):
                ratio_rows.append(row)
    if ratio_rows:
        better = "lower" if metric == "latency" or key.startswith("cpu") else "higher"
        lines += [
            "",
            f"Ratios of medians ({better} is better for leveret):",
            "",
            *_table(["ratio", *columns], ratio_rows),
        ]
    return lines


def _ratio(mine: float, peer: float) -> float:
    if not (math.isfinite(mine) and math.isfinite(peer)) or peer == 0:
        return math.nan
    return mine / peer


def _case(document: dict[str, Any], case_id: str) -> dict[str, Any] | None:
    return next((c for c in document["cases"] if c["id"] == case_id), None)


def _value(document: dict[str, Any], case_id: str, label: str, key: str) -> float:
    case = _case(document, case_id)
    run = None if case is None else _find(case, label)
    return math.nan if run is None else _median(run, key)


# name, case, leveret row, peer row (None: an absolute goal), metric key,
# comparison and goal. A ratio is leveret's median over the peer's.
TARGETS: list[tuple[str, str, str, str | None, str, str, float]] = [
    ("memory://, sync call p50 < 50 µs", "memory_latency", "leveret sync", None,
     "p50", "<", 50.0),
    ("memory://, asyncio call p50 < 50 µs", "memory_latency", "leveret async", None,
     "p50", "<", 50.0),
    ("memory://, asyncio 100 in flight > 20,000 calls/s", "memory_throughput/100",
     "leveret async", None, "rate", ">", 20_000.0),
    ("broker, leveret sync call p50 ≤ 1.3× pika round trip", "call_latency/100",
     "leveret sync", "pika (floor)", "p50", "<=", 1.3),
    ("broker, leveret async call p50 ≤ 1.3× pika round trip", "call_latency/100",
     "leveret async", "pika (floor)", "p50", "<=", 1.3),
    ("broker, leveret async (shared loop) call p50 ≤ 1.3× pika round trip",
     "call_latency/100", "leveret async, shared loop", "pika (floor)", "p50", "<=",
     1.3),
    ("64 callers: leveret sync ≥ 8× oslo.messaging", "call_throughput/64",
     "leveret sync", "oslo.messaging", "rate", ">=", 8.0),
    ("64 callers: leveret async ≥ 3× aio-pika", "call_throughput/64",
     "leveret async", "aio-pika", "rate", ">=", 3.0),
    ("64 callers: leveret async (shared loop) ≥ 3× aio-pika", "call_throughput/64",
     "leveret async, shared loop", "aio-pika", "rate", ">=", 3.0),
    ("casts, 1 sender: leveret sync ≥ 10× oslo.messaging", "cast/1",
     "leveret sync", "oslo.messaging", "rate", ">=", 10.0),
    ("casts, 64 senders: leveret sync ≥ 10× oslo.messaging", "cast/64",
     "leveret sync", "oslo.messaging", "rate", ">=", 10.0),
    ("casts, 64 senders: leveret async ≥ 10× oslo.messaging", "cast/64",
     "leveret async", "oslo.messaging", "rate", ">=", 10.0),
    ("casts, 64 senders: leveret async (shared loop) ≥ 10× oslo.messaging",
     "cast/64", "leveret async, shared loop", "oslo.messaging", "rate", ">=", 10.0),
    ("casts, 1 sender: leveret sync ≥ 0.6× pika with confirms", "cast/1",
     "leveret sync", "pika (floor)", "rate", ">=", 0.6),
    ("notifications: leveret ≥ 5× oslo.messaging", "notify/1", "leveret",
     "oslo.messaging", "rate", ">=", 5.0),
]  # fmt: skip


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate the performance targets; ratios come from one run's medians.

    Each target also gets a CPU-time view, which other load on the machine
    hardly changes: for an absolute latency goal the CPU per call, for an
    absolute rate goal one core divided by the CPU per call, and for a ratio
    the same ratio computed from CPU per operation.
    """
    evaluated = []
    for name, case_id, mine, peer, key, operator, goal in TARGETS:
        cpu_key = "cpu_per_call" if key == "p50" else "cpu_per_op"
        own = _value(document, case_id, mine, key)
        own_cpu = _value(document, case_id, mine, cpu_key)
        if peer is None:
            value, unit = own, ("µs" if key == "p50" else "calls/s")
            if key == "p50":
                cpu_view = f"{_format_target(own_cpu, 'µs')} CPU per call"
            else:
                per_core = _ratio(1e6, own_cpu)
                cpu_view = f"{_format_target(per_core, 'calls/s')} per core"
        else:
            value, unit = _ratio(own, _value(document, case_id, peer, key)), "×"
            peer_cpu = _value(document, case_id, peer, cpu_key)
            # CPU per operation: lower is better, so a rate ratio inverts it.
            cpu_ratio = (
                _ratio(own_cpu, peer_cpu) if key == "p50" else _ratio(peer_cpu, own_cpu)
            )
            cpu_view = _format_ratio(cpu_ratio)
        if not math.isfinite(value):
            verdict = "not measured"
        else:
            met = {
                "<": value < goal,
                "<=": value <= goal,
                ">": value > goal,
                ">=": value >= goal,
            }[operator]
            verdict = "met" if met else "missed"
        evaluated.append(
            {
                "target": name,
                "value": value,
                "unit": unit,
                "verdict": verdict,
                "cpu_view": cpu_view,
            }
        )
    return evaluated


def _machine_lines(document: dict[str, Any]) -> list[str]:
    machine = document["machine"]
    settings = document["settings"]
    packages = ", ".join(
        f"{name} {version}"
        for name, version in machine["packages"].items()
        if version is not None
    )
    missing = [name for name, version in machine["packages"].items() if version is None]
    lines = [
        f"- Date: {machine['date']}; leveret revision {machine['leveret_revision']}",
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; Linux {machine['kernel']}",
        f"- Python {machine['python']}; broker: {machine['broker']} on 127.0.0.1",
        "- Load average (1, 5, 15 min) at the start and end of the run: "
        f"{_loads(machine.get('load_average_at_start'))} and "
        f"{_loads(machine.get('load_average'))}; other sessions share this "
        "machine, and any load above 0 takes CPU from the measured processes",
        f"- Packages: {packages}",
        f"- Command: `{settings['command']}`; {settings['reps']} repetitions, "
        f"{settings['duration_seconds']:g} s per measurement (scale "
        f"{settings['scale']:g}); the whole run took "
        f"{document['elapsed_seconds'] / 60:.1f} min",
    ]
    if missing:
        lines.append(f"- Not installed, so not measured: {', '.join(missing)}")
    for system, reason in document.get("broken_systems", {}).items():
        lines.append(f"- {system} failed during the run: {reason}")
    return lines


def _loads(values: list[float] | None) -> str:
    return "unknown" if not values else ", ".join(f"{value:.1f}" for value in values)


def _notes(cases: list[dict[str, Any]]) -> list[str]:
    notes = []
    for case in cases:
        for run in case["runs"]:
            summary = run["summary"]
            if summary.get("note"):
                notes.append(f"- {case['id']}, {run['label']}: {summary['note']}")
    return notes


def render(document: dict[str, Any], img_prefix: str = "img/") -> str:
    """Return the generated Markdown for *document*."""
    lines = ["## Run", "", *_machine_lines(document), ""]
    lines += ["## Targets", "", TARGETS_NOTE]
    lines += [""]
    lines += _table(
        ["target", "measured", "verdict", "CPU-time view (estimate)"],
        (
            [
                t["target"],
                _format_target(t["value"], t["unit"]),
                t["verdict"],
                t["cpu_view"],
            ]
            for t in targets(document)
        ),
    )
    lines += [
        "",
        "Cells show the median of the repetitions and, in brackets, the lowest "
        "and highest repetition. † marks runs where some operations failed or "
        "some casts did not arrive (see the notes at the end).",
        "",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for case in document["cases"]:
        groups.setdefault(case["group"], []).append(case)
    for group, cases in groups.items():
        lines += [f"## {GROUP_TITLES.get(group, group)}", ""]
        if cases[0]["metric"] == "latency":
            lines += [f"p50 in {cases[0]['unit']}:", ""]
            lines += _group_tables(cases, "p50")
            lines += ["", f"p99 in {cases[0]['unit']}:", ""]
            lines += _group_tables(cases, "p99", with_ratios=False)
            lines += ["", CPU_HEADING, ""]
            lines += _group_tables(cases, "cpu_per_call")
        else:
            lines += [f"{cases[0]['unit']}:", ""]
            lines += _group_tables(cases, "rate")
            lines += ["", CPU_OP_HEADING, ""]
            lines += _group_tables(cases, "cpu_per_op")
        if group == "call_latency":
            lines += ["", f"![Call latency distribution]({img_prefix}{LATENCY_PLOT})"]
        if group == "call_throughput":
            lines += ["", f"![Throughput by callers]({img_prefix}{THROUGHPUT_PLOT})"]
        lines.append("")
    notes = _notes(document["cases"])
    if notes:
        lines += ["## Notes from the run", "", *notes, ""]
    return "\n".join(lines)


def _format_ratio(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "–"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def _format_target(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "–"
    if unit == "×":
        return _format_ratio(value)
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def write_doc(document: dict[str, Any], doc_path: Path) -> None:
    """Replace the generated part of *doc_path*, keeping the rest."""
    generated = f"{BEGIN}\n{render(document)}\n{END}"
    if doc_path.exists():
        text = doc_path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            doc_path.write_text(head + generated + tail)
            return
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(f"# Benchmarks\n\n{generated}\n")


def plot(document: dict[str, Any], img_dir: Path) -> list[Path]:
    """Write the latency distribution and throughput plots; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []

    samples = document.get("latency_samples_us", {})
    if samples:
        figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
        for label, values in samples.items():
            ordered = sorted(values)
            if not ordered:
                continue
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            axes.plot(ordered, fractions, label=label, linewidth=1.6)
        axes.set_xscale("log")
        axes.set_xlabel("call latency, µs (log scale)")
        axes.set_ylabel("fraction of calls at or below")
        axes.set_title("Sequential call, 100 B payload, on RabbitMQ (all repetitions)")
        axes.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
        axes.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
        figure.tight_layout()
        path = img_dir / LATENCY_PLOT
        figure.savefig(path)
        plt.close(figure)
        written.append(path)

    cases = [c for c in document["cases"] if c["group"] == "call_throughput"]
    if cases:
        figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
        for label in _labels(cases):
            xs, medians, lows, highs = [], [], [], []
            for case in cases:
                run = _find(case, label)
                if run is None or run["summary"]["status"] not in ("ok", "errors"):
                    continue
                rate = run["summary"]["rate"]
                xs.append(case["params"]["workers"])
                medians.append(rate["median"])
                lows.append(rate["median"] - rate["min"])
                highs.append(rate["max"] - rate["median"])
            if xs:
                axes.errorbar(
                    xs, medians, yerr=[lows, highs], label=label, marker="o", capsize=3
                )
        axes.set_xscale("log", base=2)
        axes.set_xticks([c["params"]["workers"] for c in cases])
        axes.set_xticklabels([str(c["params"]["workers"]) for c in cases])
        axes.set_xlabel("callers in flight (threads, or tasks for asyncio clients)")
        axes.set_ylabel("calls/s (median; bars: lowest to highest)")
        axes.set_title("Call throughput on RabbitMQ, 100 B payload")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = img_dir / THROUGHPUT_PLOT
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--img-dir", type=Path, default=DEFAULT_IMG)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    document = json.loads(args.results.read_text())
    write_doc(document, args.doc)
    for path in plot(document, args.img_dir):
        print(f"plot: {path}")
    print(f"report: {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
