"""Retouching: how long one brush stroke takes to update the fused image, at 3 MP and 12 MP.

The stacks are the PCB frames of ``../shared/data/focus-stack-pcb`` (7 x
3.1 MP JPEG) and the same frames tiled 2 x 2 (7 x 12.6 MP, written as JPEG
quality 95 to a temporary folder), so that a first stroke with a frame
decodes a real JPEG. Without the shared frames, synthetic ``pcb`` stacks
of the same sizes are used. Each stack is fused once with the defaults,
then :class:`napari_focus_stack.retouch.Retouch` takes strokes, timed from
the call to the retouched window written into the result
(:meth:`Retouch.update` with the stroke's bounding box, as the napari
panel passes it):

* ``stroke, new frame``: a brush of radius 20 px dragged 300 px, painting a
  frame no stroke used before (the frame is decoded, then cached), one per frame;
* ``stroke, same frame``: the same brush elsewhere with a frame already used;
* ``erase stroke``: label 0 over a painted stroke;
* ``fill 1000 x 1000``: a bucket fill of a 1 MP region;
* ``undo (whole mask compared)``: an update without a bounding box (napari's
  undo gives none): the mask is compared with the one applied to find it.

Medians over the strokes (``--strokes`` each, positions drawn with a fixed
seed). The figures need an otherwise idle machine.

``--napari`` also times the napari panel on the same frames (as an
in-memory stack layer): the Focus stack widget runs, **Retouch** is
clicked, and strokes (one paint event each, as a mouse stroke ends) are
timed from the paint event to the fused layer redrawn, while a 5 ms
heartbeat timer on the GUI thread gives the longest the GUI was blocked
during each stroke. Without a display it reruns itself on a virtual X
display (PyVirtualDisplay), so OpenGL is Mesa's software renderer.

    python benchmarks/retouch.py [--strokes 15] [--napari] [--write]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PCB, machine, replace_section, rerun_with_virtual_display  # noqa: E402
from napari_focus_stack import FocusStacker  # noqa: E402
from napari_focus_stack.retouch import Retouch  # noqa: E402


def tiled_frames(paths: list[Path], folder: Path, tiles: int) -> list[Path]:
    """Each frame tiled ``tiles x tiles``, as JPEG (quality 95) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        a = np.asarray(Image.open(p))
        big = np.tile(a, (tiles, tiles, 1))
        target = folder / p.name
        Image.fromarray(big).save(target, quality=95)
        out.append(target)
    return out


def synthetic_frames(folder: Path, shape: tuple[int, int], n: int = 7) -> list[Path]:
    from napari_focus_stack.synthetic import make_stack, save_stack

    save_stack(make_stack("pcb", shape=shape, n_frames=n, seed=1), folder, fmt="jpg", prefix="pcb")
    return sorted(folder.glob("pcb*.jpg"))


def stroke(mask: np.ndarray, rng: np.random.Generator | tuple, label: int, radius: int = 20,
           length: int = 300) -> tuple:
    """Paint a brush stroke of ``label`` into ``mask``, from a random start or ``(y, x, angle)``.

    Returns its bounding box (y0, y1, x0, x1) and its start (y, x, angle).
    """
    h, w = mask.shape
    if isinstance(rng, tuple):
        y, x, angle = rng
    else:
        y, x = rng.integers(radius + length, h - radius - length), rng.integers(radius + length, w - radius - length)
        angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1]
    disk = yy**2 + xx**2 <= radius**2
    ys, xs = [], []
    for t in range(0, length, 4):  # a dab every 4 px, as a mouse drag gives
        cy, cx = int(y + t * np.sin(angle)), int(x + t * np.cos(angle))
        mask[cy - radius: cy + radius + 1, cx - radius: cx + radius + 1][disk] = label
        ys.append(cy)
        xs.append(cx)
    return (min(ys) - radius, max(ys) + radius + 1, min(xs) - radius, max(xs) + radius + 1), (y, x, angle)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(paths: list[Path], strokes: int, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    result = FocusStacker().stack(paths)
    fuse_s = time.perf_counter() - t0
    h, w = result.image.shape[:2]
    retouch = Retouch(result, paths)
    mask = np.zeros((h, w), np.uint16)
    rng = np.random.default_rng(seed)
    n = len(paths)
    side = min(1000, h // 2, w // 2)  # the fill's (1000 but on small test stacks)
    length = min(300, min(h, w) // 4)
    times: dict[str, list[float]] = {"new": [], "same": [], "erase": [], "fill": [], "undo": []}
    for k in range(1, n + 1):
        box, _ = stroke(mask, rng, k, length=length)
        times["new"].append(timed(lambda box=box: retouch.update(mask, box)))
    starts = []
    for i in range(strokes):
        box, start = stroke(mask, rng, 1 + i % n, length=length)
        starts.append(start)
        times["same"].append(timed(lambda box=box: retouch.update(mask, box)))
    for start in starts:  # erase those strokes again
        box, _ = stroke(mask, start, 0, length=length)
        times["erase"].append(timed(lambda box=box: retouch.update(mask, box)))
    for i in range(3):
        y0, x0 = rng.integers(0, h - side), rng.integers(0, w - side)
        mask[y0: y0 + side, x0: x0 + side] = 1 + i % n
        times["fill"].append(timed(lambda y0=y0, x0=x0: retouch.update(mask, (y0, y0 + side, x0, x0 + side))))
    for _ in range(5):
        before = mask.copy()
        stroke(mask, rng, 2, length=length)
        retouch.update(mask)
        mask[:] = before  # undo: napari puts the old values back and names no region
        times["undo"].append(timed(lambda: retouch.update(mask)))
    return {"shape": (h, w), "frames": n, "fuse_s": fuse_s, **{k: statistics.median(v) for k, v in times.items()},
            "same_max": max(times["same"])}


def measure_napari(paths: list[Path], strokes: int, seed: int = 0) -> dict:
    """The napari panel on ``paths``: (stroke -> shown, GUI stall) medians and the start's stall, in seconds."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    frames = np.stack([np.asarray(Image.open(p)) for p in paths])
    viewer = napari.Viewer(title="retouch benchmark", show=True)
    app = QApplication.instance()

    def wait(condition, timeout=600.0):
        t0 = time.perf_counter()
        while not condition():
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError("timed out")
            app.processEvents()
            time.sleep(0.002)

    try:
        viewer.add_image(frames, name="stack", rgb=frames.ndim == 4)
        _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
        widget.set_input("stack")
        done: list[str] = []
        widget.run_finished.connect(done.append)
        widget.run_button.click()
        wait(lambda: done)
        gaps: list[float] = []
        last = [time.perf_counter()]

        def beat() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        heartbeat = QTimer()
        heartbeat.timeout.connect(beat)
        heartbeat.start(5)
        panel = widget.retouch
        gaps.clear()
        last[0] = time.perf_counter()
        t0 = time.perf_counter()
        panel.start_button.click()
        wait(lambda: panel.layer is not None and not panel.busy)
        start_s, start_stall = time.perf_counter() - t0, max(gaps)
        layer = panel.layer
        rng = np.random.default_rng(seed)
        n = len(paths)
        shown, stalls = [], []
        for i in range(strokes):
            mask = np.zeros(layer.data.shape, np.uint8)
            stroke(mask, rng, 1, length=min(300, min(mask.shape) // 4))
            indices = np.nonzero(mask)
            gaps.clear()
            last[0] = time.perf_counter()
            t0 = time.perf_counter()
            layer.data_setitem(indices, 1 + i % n)
            wait(lambda: not panel._timer.isActive() and panel._worker is None and not panel._regions
                 and not panel._full)
            shown.append(time.perf_counter() - t0)
            wait(lambda: not panel.busy)  # the depth and confidence layers' redraw included
            stalls.append(max(gaps))
        heartbeat.stop()
        return {"shown": statistics.median(shown), "shown_max": max(shown), "stall": statistics.median(stalls),
                "stall_max": max(stalls), "start_s": start_s, "start_stall": start_stall}
    finally:
        viewer.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strokes", type=int, default=15, help="strokes per kind (default 15)")
    p.add_argument("--napari", action="store_true", help="also time the napari panel (GUI thread, redraws)")
    p.add_argument("--write", action="store_true", help="also write the table into docs/benchmarks.md")
    args = p.parse_args()
    if args.napari and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        sys.exit(rerun_with_virtual_display(__file__, sys.argv[1:]))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pcb = sorted(PCB.glob("pcb_0*.jpg"))
        if pcb:
            cases = [("3 MP (pcb, 7 frames)", pcb),
                     ("12 MP (pcb tiled 2 x 2, 7 frames)", tiled_frames(pcb, Path(tmp) / "12mp", 2))]
        else:
            cases = [("3 MP (synthetic pcb, 7 frames)", synthetic_frames(Path(tmp) / "3mp", (1536, 2048))),
                     ("12 MP (synthetic pcb, 7 frames)", synthetic_frames(Path(tmp) / "12mp", (3072, 4096)))]
        rows, gui_rows = [], []
        ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
        for name, paths in cases:
            r = measure(paths, args.strokes)
            print(name, r, flush=True)
            rows.append(f"| {name}: {r['shape'][1]} x {r['shape'][0]} | {r['fuse_s']:.1f} s | {ms(r['new'])} | "
                        f"{ms(r['same'])} (max {ms(r['same_max'])}) | {ms(r['erase'])} | {ms(r['fill'])} | "
                        f"{ms(r['undo'])} |")
            if args.napari:
                g = measure_napari(paths, args.strokes)
                print(name, "napari", g, flush=True)
                gui_rows.append(f"| {name} | {ms(g['shown'])} (max {ms(g['shown_max'])}) | {ms(g['stall'])} "
                                f"(max {ms(g['stall_max'])}) | {g['start_s']:.1f} s, GUI blocked "
                                f"{ms(g['start_stall'])} |")
    text = (
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. Produced by `python benchmarks/retouch.py`: "
        f"medians in milliseconds of {args.strokes} strokes each (one per frame for a new frame, 3 fills, "
        "5 undos), brush radius 20 px dragged 300 px, engine only (the napari panel adds the redraw). "
        f"Load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other jobs on the machine "
        "make the figures slower, not faster).\n\n"
        "| stack | fusion | stroke, new frame | stroke, same frame | erase stroke | fill 1000 x 1000 | "
        "undo (whole mask compared) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    if gui_rows:
        text += (
            "\n\nIn napari (`--napari`: the Focus stack widget on the same frames as a stack layer, Xvfb with "
            "software OpenGL), a stroke's paint event to the fused layer redrawn, and the longest the GUI thread "
            "was blocked during a stroke (the redraws of the fused layer, and of the depth and confidence layers "
            "0.4 s later), medians in ms:\n\n"
            "| stack | stroke -> shown | GUI blocked | Retouch button -> ready |\n|---|---|---|---|\n"
            + "\n".join(gui_rows)
        )
    print(text)
    if args.write:
        replace_section("retouch", "## Retouching: one stroke's update\n\n" + text)


if __name__ == "__main__":
    main()
