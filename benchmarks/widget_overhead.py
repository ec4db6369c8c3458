"""Widget overhead: the engine alone vs the napari dock widget on the PCB stack.

Everything runs in one process, on one (virtual) display, with the same
settings for the engine and the widget: the widget's defaults, which are the
engine's, except ``--scale-factor`` when given. Three runs are interleaved per
round, ``--repeats`` rounds, median reported:

* ``engine, files``: ``FocusStacker().stack(paths)``, decoding the JPEGs
  (what the command line does), and the regularised depth map (computed on
  first use: the widget shows it, the command line with ``--depth-map``);
* ``engine, array``: ``FocusStacker().stack(stack)`` on the very array the
  napari layer holds: the fair baseline for the widget, which reads the same
  in-memory frames;
* ``widget``: the Run button of the docked widget, from the click until the
  fused, depth and confidence layers are all in the viewer (worker thread,
  progress signals, layer creation and drawing included).

The overhead is ``widget / engine, array - 1`` (target: at most 10 %).
``--warmup`` untimed rounds come first (default 1): they import and compile
what the first call of anything does (decoders, thread pools, shaders) and
let the widget create its result layers, which later runs refill in place;
``--warmup 0`` counts that one-time cost (about 0.2 s here) in round 1.

    python benchmarks/widget_overhead.py [--frames ../shared/data/focus-stack-pcb] [--repeats 3]

Without a display (headless Linux) the script reruns itself on a virtual X
display (PyVirtualDisplay, from the ``testing`` extra). Prints a markdown
table last.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PCB, machine, rerun_with_virtual_display  # noqa: E402


def measure(
    paths: list[Path], repeats: int, scale_factor: int | None = None, warmup: int = 1
) -> tuple[dict[str, list[float]], dict]:
    """Interleaved wall times (s) of the three configurations."""
    import napari
    import numpy as np
    from qtpy.QtCore import QEventLoop
    from qtpy.QtTest import QTest

    from napari_focus_stack import FocusStacker

    viewer = napari.Viewer(title="widget overhead", show=True)
    try:
        (layer,) = viewer.open([str(p) for p in paths], stack=True, plugin="napari-focus-stack")
        _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
        widget.set_input(layer.name)
        if scale_factor is not None:
            widget.engine.scale_factor.value = scale_factor
        stack = np.asarray(layer.data)
        # napari 0.9 under Xvfb leaves a notification timer spinning at 0 ms (a busy
        # main thread); the widget defuses it on Run. Do it now, so that the engine-only
        # runs are not slowed by it either.
        from napari_focus_stack._napari._notify import defuse_notification_timers

        defuse_notification_timers()
        # the engine runs with exactly the settings the widget passes
        params = widget._make_options().kwargs()
        QTest.qWait(500)

        def engine(inputs) -> float:
            t0 = time.perf_counter()
            FocusStacker(**params).stack(inputs, depth=True)  # the regularised depth map too: the widget shows it
            return time.perf_counter() - t0

        def widget_run() -> float:
            loop = QEventLoop()
            status: list[str] = []

            def done(s: str) -> None:
                status.append(s)
                loop.quit()

            widget.run_finished.connect(done)
            t0 = time.perf_counter()
            widget.run_button.click()
            loop.exec_()
            elapsed = time.perf_counter() - t0
            widget.run_finished.disconnect(done)
            if status != ["done"]:
                raise RuntimeError(f"widget run ended with {status}: {widget.status_label.text()}")
            return elapsed

        for _ in range(warmup):
            engine(paths), engine(stack), widget_run()
            QTest.qWait(200)
        times: dict[str, list[float]] = {"engine, files": [], "engine, array": [], "widget": []}
        for k in range(repeats):
            times["engine, files"].append(engine(paths))
            times["engine, array"].append(engine(stack))
            times["widget"].append(widget_run())
            QTest.qWait(200)
            print(f"round {k + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()), flush=True)
    finally:
        viewer.close()
    return times, params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=PCB, help="folder holding pcb_0*.jpg")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale-factor", type=int, default=None, help="default: the widget's (the engine's)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return rerun_with_virtual_display(__file__, sys.argv[1:] if argv is None else argv)
    paths = sorted(args.frames.glob("pcb_0*.jpg"))
    if len(paths) < 2:
        parser.error(f"no pcb_0*.jpg frames in {args.frames}")
    times, params = measure(paths, args.repeats, args.scale_factor, args.warmup)
    med = {name: statistics.median(t) for name, t in times.items()}
    overhead = med["widget"] / med["engine, array"] - 1
    setting = ", ".join(f"{k}={params[k]}" for k in ("scale_factor", "method", "align", "device"))
    print(
        f"\nMachine: {machine()}; {len(paths)} frames; {setting}; "
        f"median of {args.repeats} interleaved runs after {args.warmup} untimed.\n"
    )
    print("| stack | settings | engine, files | engine, array | widget | widget overhead |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {args.frames.name}, {len(paths)} frames | scale_factor {params['scale_factor']} | "
        f"{med['engine, files']:.2f} s | "
        f"{med['engine, array']:.2f} s | {med['widget']:.2f} s | {overhead * 100:+.1f} % |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
