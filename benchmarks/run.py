"""Run the engine benchmarks, print them and update docs/benchmarks.md.

    python benchmarks/run.py            # quality + speed + memory (about 10 min on 2 cores)
    python benchmarks/run.py --quick    # quality only, fewer scenes settings

The engine section of docs/benchmarks.md (between the ``engine`` markers) is
rewritten; other sections (batch, widget, GPU) belong to their own scripts.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DOC, machine, replace_section  # noqa: E402, F401  (replace_section: tests use run.replace_section)
from quality import quality_section, quality_table, quality_tables  # noqa: E402


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
        "The default settings' quality, side by side with focusweave, is in the quality section below "
        "(`python benchmarks/quality.py --write`). Other settings, same cases (no peers):",
        "",
    ]
    quality = quality_section(quality_table(seeds=(0, 1)))
    print(quality)
    sweeps = [("scale_factor 2", {"scale_factor": 2}), ("depthmap method", {"method": "depthmap"})]
    for title, kw in sweeps:
        rows = quality_table(seeds=(0, 1), peers=False, **kw)
        block = f"### Quality with {title}, end to end\n\n{quality_tables(rows)[0]}"
        print(block)
        out += [block]
    if not a.quick:
        from speed import memory_scaling, pcb_case, synthetic_case

        lines = [f"### Speed and memory, whole process (median of {a.repeats} runs)", "",
                 "| case | wall s | peak MiB |", "|---|---|---|"]
        pcb = pcb_case(a.repeats)
        if pcb:
            lines.append(
                f"| shared/data/focus-stack-pcb, 7 x 3.1 MP JPEG | {pcb['wall_s']:.2f} | {pcb['peak_mib']:.0f} |"
            )
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
        replace_section("quality", quality)
        replace_section("engine", "\n".join(out))
        print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
