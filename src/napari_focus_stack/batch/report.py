"""Batch reports: ``batch-report.json`` (everything) and ``batch-report.csv`` (one row per stack)."""
from __future__ import annotations

import csv
import io as _stdio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..grouping import Plan
from ..io import remove_stale_temps, write_text
from .markers import json_safe
from .options import BatchOptions

__all__ = ["REPORT_NAME", "BatchResult", "write_reports"]

#: Batch reports are ``<REPORT_NAME>.json`` and ``<REPORT_NAME>.csv`` in the output folder.
REPORT_NAME = "batch-report"

_CSV_COLUMNS = (
    "stack",
    "status",
    "n_frames",
    "n_excluded",
    "excluded",
    "reference",
    "quality_min",
    "quality_mean",
    "alignment_from",
    "reuse_check",
    "align_s",
    "fuse_s",
    "write_s",
    "total_s",
    "output",
    "warnings",
    "error",
)


def _csv_row(e: dict) -> dict:
    t = e.get("timings") or {}
    a = e.get("alignment") or {}

    def num(x):
        return "" if x is None else f"{x:.4g}"

    return {
        "stack": e["stack"],
        "status": e["status"],
        "n_frames": e.get("n_frames", ""),
        "n_excluded": len(e.get("excluded") or []),
        "excluded": "; ".join(f"{x['name']}: {x['reason']}" for x in e.get("excluded") or []),
        "reference": e.get("reference") or "",
        "quality_min": num(a.get("quality_min")),
        "quality_mean": num(a.get("quality_mean")),
        "alignment_from": a.get("reused_from") or "",
        "reuse_check": _reuse_check_text(a.get("reuse_check")),
        "align_s": num(t.get("align_s")),
        "fuse_s": num(t.get("fuse_s")),
        "write_s": num(t.get("write_s")),
        "total_s": num(t.get("wall_s", t.get("total_s"))),
        "output": (e.get("outputs") or {}).get("image", ""),
        "warnings": " | ".join(e.get("warnings") or []),
        "error": e.get("error") or "",
    }


def _reuse_check_text(check: dict | None) -> str:
    if not check:
        return ""
    verdict = "fits" if check.get("fits") else "did not fit, aligned on its own"
    return f"{verdict} ({check.get('error_px', 0.0):.2f} px, tolerance {check.get('tolerance_px', 0.0):g} px)"


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    plan : Plan
    stacks : list of dict
        One report entry per stack, in plan order.
    report_json, report_csv : Path or None
        The written reports.
    elapsed_s : float
        Wall time of the whole batch.
    startup_s : float
        Of which starting (or connecting to) the Dask cluster.
    calibration : list of dict
        With a reused alignment, per group of stacks sharing one focus
        sequence (an OpenScan3 scan): the stacks it was estimated on, those
        that failed, and how far each one's transforms lie from the
        combined ones (``deviation_px``).
    """

    plan: Plan
    stacks: list[dict]
    report_json: Path | None
    report_csv: Path | None
    elapsed_s: float
    startup_s: float = 0.0
    calibration: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Stacks per status: done, skipped, failed, cancelled."""
        out = {"done": 0, "skipped": 0, "failed": 0, "cancelled": 0}
        for e in self.stacks:
            out[e["status"]] = out.get(e["status"], 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """True when no stack failed or was cancelled."""
        c = self.counts
        return c["failed"] == 0 and c["cancelled"] == 0

    @property
    def stacks_per_minute(self) -> float:
        """Throughput of the stacks done in this run."""
        done = self.counts["done"]
        return 60.0 * done / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def write_reports(
    out: Path, plan: Plan, options: BatchOptions, result: BatchResult, started: str
) -> tuple[Path, Path]:
    """Write the JSON and CSV reports of a batch into `out` (atomically); return their paths."""
    report = {
        "tool": f"napari-focus-stack {__version__}",
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": result.elapsed_s,
        "input": str(plan.root) if plan.root is not None else None,
        "output": str(out),
        "grouping": {
            "mode": plan.mode,
            "reason": plan.reason,
            "problems": [
                {"kind": p.kind, "stack": p.stack, "message": p.message, "files": [f.name for f in p.files]}
                for p in plan.problems
            ],
        },
        "options": options.as_dict(),
        "summary": {
            **result.counts,
            "stacks": len(result.stacks),
            "stacks_per_minute": result.stacks_per_minute,
            "cluster_start_s": result.startup_s,
        },
        "calibration": getattr(result, "calibration", []),
        "stacks": result.stacks,
    }
    json_path = out / f"{REPORT_NAME}.json"
    csv_path = out / f"{REPORT_NAME}.csv"
    for path in (json_path, csv_path):
        remove_stale_temps(path)
    write_text(json_path, json.dumps(json_safe(report), indent=2, ensure_ascii=False))
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS)
    writer.writeheader()
    for e in result.stacks:
        writer.writerow(_csv_row(e))
    write_text(csv_path, buf.getvalue())
    return json_path, csv_path
