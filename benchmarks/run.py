"""Run the engine benchmarks, print them and update docs/benchmarks.md.

    python benchmarks/run.py            # quality + speed + memory (about 10 min on 2 cores)
    python benchmarks/run.py --quick    # quality only, fewer scenes settings

The engine section of docs/benchmarks.md (between the ``engine`` markers) is
rewritten; other sections (batch, widget, GPU) belong to their own scripts.
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine  # noqa: E402
from quality import format_quality, quality_table  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def replace_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace the text between ``<!-- name -->`` and ``<!-- /name -->`` (appending it if absent)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="quality only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    out = [
        f"Machine: {machine()}. Date: {datetime.date.today()}. "
        "Produced by `python benchmarks/run.py`.",
        "",
        "### Quality on synthetic stacks (default settings: pyramid, radius 8, smoothing 4, scale_factor 1)",
        "",
        "8 frames of 384 x 512 RGB per scene, JPEG q95, median over seeds 0-2. Oracle = true transforms + true depth "
        "index, warped with the same bilinear warp (the practical ceiling). Gap = oracle - ours "
        "(negative: better than the oracle).",
        "",
        format_quality(quality_table(seeds=(0, 1, 2))),
    ]
    print("\n".join(out))
    sweeps = [("scale_factor 2", dict(scale_factor=2)), ("depthmap method", dict(method="depthmap"))]
    for title, kw in sweeps:
        rows = quality_table(seeds=(0, 1, 2), **kw)
        block = f"### Quality with {title}\n\n{format_quality(rows)}"
        print(block)
        out += [block]
    if not a.quick:
        from speed import memory_scaling, pcb_case, synthetic_case

        lines = ["### Speed and memory, whole process (median of %d runs)" % a.repeats, "",
                 "| case | wall s | peak MiB |", "|---|---|---|"]
        pcb = pcb_case(a.repeats)
        if pcb:
            lines.append(f"| shared/data/focus-stack-pcb, 7 x 3.1 MP JPEG | {pcb['wall_s']:.2f} | {pcb['peak_mib']:.0f} |")
        big = synthetic_case((3000, 4000), 10, a.repeats)
        lines.append(f"| synthetic 10 x 12 MP JPEG | {big['wall_s']:.2f} | {big['peak_mib']:.0f} |")
        m = memory_scaling(repeats=1)
        lines.append(f"| synthetic 5 x 1.9 MP | {m['five']['wall_s']:.2f} | {m['five']['peak_mib']:.0f} |")
        lines.append(f"| synthetic 30 x 1.9 MP | {m['thirty']['wall_s']:.2f} | {m['thirty']['peak_mib']:.0f} |")
        lines.append("")
        lines.append(f"Peak memory 30 frames / 5 frames: {m['ratio']:.2f}x.")
        block = "\n".join(lines)
        print(block)
        out += ["", block]
    if not a.no_write:
        replace_section("engine", "\n".join(out))
        print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
