"""Take the README's napari screenshots: the focus-stack widget and its result layers.

docs/napari-screenshot.png: opens the PCB frames with the plugin's reader,
runs the dock widget with its default settings and saves a picture of the
whole window, the viewer in grid mode showing the fused image, the depth
map and the stack side by side.

docs/napari-height-3d.png (``--height-3d``): writes a synthetic two-channel
microscope z-stack with known relief as a calibrated ImageJ hyperstack
(0.25 µm pixels, 1 µm z step), opens it with the plugin's reader (one layer
per channel), fuses both channels together in the widget and clicks "Show
height in 3D": the height map in micrometres as a surface coloured by the
fused channels.

Usage (Linux without a display: a virtual one is started when PyVirtualDisplay
is installed, as it is with the ``testing`` extra; else use ``xvfb-run -a``)::

    python scripts/screenshot.py [--frames ../shared/data/focus-stack-pcb] [--out docs/napari-screenshot.png]
    python scripts/screenshot.py --height-3d [--out docs/napari-height-3d.png]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PCB = ROOT.parent / "shared" / "data" / "focus-stack-pcb"
WINDOW = (1600, 960)


def _rerun_with_virtual_display(argv: list[str]) -> int:
    """Run this script again in a child process on a fresh virtual X display.

    The child (and with it Qt's X connection) ends before the display stops,
    so nothing complains about a vanished X server.
    """
    try:
        from pyvirtualdisplay import Display
    except ImportError:
        sys.exit("No display: install PyVirtualDisplay (pip install '.[testing]') or run under `xvfb-run -a`.")
    import subprocess

    with Display(visible=False, size=(WINDOW[0] + 100, WINDOW[1] + 100), color_depth=24) as display:
        env = {**os.environ, "DISPLAY": f":{display.display}"}
        return subprocess.run([sys.executable, __file__, *argv], env=env).returncode


def take_screenshot(frames: list[Path], out: Path, scale_factor: int | None = None) -> Path:
    """Open `frames`, focus-stack them in the widget, and save the window to `out`.

    Parameters
    ----------
    frames : list of Path
        Frame files of one stack.
    out : Path
        PNG to write.
    scale_factor : int, optional
        The widget's scale factor (default: the widget's, i.e. the engine's).

    Returns
    -------
    Path
        `out`.
    """
    import napari

    viewer = napari.Viewer(title="napari-focus-stack", show=True)
    try:
        viewer.window._qt_window.resize(*WINDOW)
        (stack,) = viewer.open([str(p) for p in frames], stack=True, plugin="napari-focus-stack")
        _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
        widget.set_input(stack.name)
        if scale_factor is not None:
            widget.engine.scale_factor.value = scale_factor
        _run_widget(viewer, widget)
        depth = next(layer for layer in viewer.layers if layer.metadata.get("focus_stack_role") == "depth")
        # show on the stack the frame that is sharpest in the middle of the picture
        h, w = depth.data.shape
        widget.jump_to_sharpest(depth, depth.data_to_world((h / 2, w / 2)))
        for layer in viewer.layers:
            layer.visible = True  # grid mode gives each visible layer a cell: fused, depth, confidence, stack
        viewer.grid.enabled = True
        viewer.grid.shape = (2, 2)
        viewer.grid.stride = -1  # top layer first: fused, depth / confidence, stack
        viewer.reset_view()
        _save_window(viewer, out)
    finally:
        viewer.close()
    return out


def _run_widget(viewer, widget) -> None:
    """Click Run and wait for the widget's run to end; RuntimeError unless it is done."""
    from qtpy.QtCore import QEventLoop

    loop = QEventLoop()
    status: list[str] = []
    widget.run_finished.connect(lambda s: (status.append(s), loop.quit()))
    widget.run()
    loop.exec_()
    if status != ["done"]:
        raise RuntimeError(f"the widget's run ended with {status}: {widget.status_label.text()}")


def _save_window(viewer, out: Path) -> None:
    """Let the canvas draw, hide start-up toasts, and save the whole window to `out`."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtTest import QTest

    QTest.qWait(1500)  # let every canvas draw
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()  # start-up notifications would cover the canvas
    QTest.qWait(200)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(out), canvas_only=False, flash=False)


def take_height_3d_screenshot(out: Path) -> Path:
    """Fuse a synthetic calibrated two-channel z-stack in the widget and save its 3D height view.

    Parameters
    ----------
    out : Path
        PNG to write.

    Returns
    -------
    Path
        `out`.
    """
    import tempfile

    import napari
    import numpy as np
    import tifffile

    from napari_focus_stack.synthetic import make_hyperstack

    hyper = make_hyperstack("rocks", shape=(384, 512), n_z=12, n_t=1, n_c=2, seed=11)
    luts = [np.round(np.outer(rgb, np.arange(256))).astype(np.uint8) for rgb in ((1, 0, 1), (0, 1, 0))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.tif"
        tifffile.imwrite(path, np.ascontiguousarray(hyper.data.transpose(0, 2, 1, 3, 4)), imagej=True,
                         resolution=(4.0, 4.0),  # 0.25 µm pixels
                         metadata={"axes": "TZCYX", "unit": "micron", "spacing": 1.0, "mode": "composite",
                                   "LUTs": luts})
        viewer = napari.Viewer(title="napari-focus-stack", show=True)
        try:
            viewer.window._qt_window.resize(*WINDOW)
            first, _second = viewer.open(str(path), plugin="napari-focus-stack")
            _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
            widget.set_input(first.name)  # the other channel of the file is ticked: fused together
            _run_widget(viewer, widget)
            widget.surface_button.click()
            _save_window(viewer, out)
        finally:
            viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=PCB, help="folder with pcb_0*.jpg frames")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG to write (default: docs/napari-screenshot.png, or docs/napari-height-3d.png)")
    parser.add_argument("--scale-factor", type=int, default=None)
    parser.add_argument("--height-3d", action="store_true",
                        help="the 3D height view of a synthetic calibrated microscope stack instead")
    args = parser.parse_args(argv)
    frames = sorted(args.frames.glob("pcb_0*.jpg")) or sorted(args.frames.glob("*.jpg"))
    if len(frames) < 2 and not args.height_3d:
        parser.error(f"no frames found in {args.frames}")
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return _rerun_with_virtual_display(sys.argv[1:] if argv is None else argv)
    if args.height_3d:
        out = take_height_3d_screenshot(args.out or ROOT / "docs" / "napari-height-3d.png")
    else:
        out = take_screenshot(frames, args.out or ROOT / "docs" / "napari-screenshot.png", args.scale_factor)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
