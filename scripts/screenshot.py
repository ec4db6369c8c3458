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
fused channels, vertically exaggerated so that the relief is a fifth of the
field, seen at a slant.

docs/napari-round-trip.png (``--round-trip``): the same stack with two time
points; the fused channels and the height map saved with the plugin's writer
as ImageJ TIFFs, then opened again with its reader in a new viewer, beside
the input: calibrated (scale bar in µm), on the input's t and z sliders, the
channels in their colours and the heights in turbo.

docs/napari-mesh.png (``--mesh``): the 3D surface of ``--height-3d`` saved
as a PLY with the plugin's Surface writer, read back from the file and shown
as a new Surface layer: what MeshLab, Blender or a slicer gets.

PNGs are saved with a 256-colour palette, to keep the repository small.

Usage (Linux without a display: a virtual one is started when PyVirtualDisplay
is installed, as it is with the ``testing`` extra; else use ``xvfb-run -a``)::

    python scripts/screenshot.py [--frames ../shared/data/focus-stack-pcb] [--out docs/napari-screenshot.png]
    python scripts/screenshot.py --height-3d [--out docs/napari-height-3d.png]
    python scripts/screenshot.py --round-trip [--out docs/napari-round-trip.png]
    python scripts/screenshot.py --mesh [--out docs/napari-mesh.png]
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


def _save_window(viewer, out: Path, small: bool = False) -> None:
    """Let the canvas draw, hide start-up toasts, and save the whole window to `out` (`small`: 256 colours)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtTest import QTest

    QTest.qWait(1500)  # let every canvas draw
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.hide()  # start-up notifications would cover the canvas
    QTest.qWait(200)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(out), canvas_only=False, flash=False)
    if small:
        from PIL import Image

        with Image.open(out) as image:
            palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(out, optimize=True)


def _wait(signal, start) -> list:
    """Call `start` and run the event loop until `signal` fires; its arguments."""
    from qtpy.QtCore import QEventLoop

    loop, args = QEventLoop(), []
    signal.connect(lambda *a: (args.extend(a), loop.quit()))
    start()
    loop.exec()
    return args


def _hyperstack_file(folder: Path, n_t: int = 1) -> Path:
    """A synthetic two-channel ImageJ hyperstack with a raised disc: 0.25 µm pixels, 1 µm z step."""
    import numpy as np
    import tifffile

    from napari_focus_stack.synthetic import make_hyperstack

    hyper = make_hyperstack("rocks", shape=(384, 512), n_z=12, n_t=n_t, n_c=2, seed=11)
    # the scene's disc is sharpest in the first plane: the planes reversed, it stands out of the ground
    data = np.ascontiguousarray(hyper.data[:, :, ::-1].transpose(0, 2, 1, 3, 4))
    luts = [np.round(np.outer(rgb, np.arange(256))).astype(np.uint8) for rgb in ((1, 0, 1), (0, 1, 0))]
    path = folder / "cells.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(4.0, 4.0),  # 0.25 µm pixels
                     metadata={"axes": "TZCYX", "unit": "micron", "spacing": 1.0, "mode": "composite", "LUTs": luts})
    return path


def _fused_in_3d(viewer, path: Path):
    """Open `path`, fuse its channels in the widget, show the height in 3D; the widget and the surface."""
    first, _second = viewer.open(str(path), plugin="napari-focus-stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
    widget.set_input(first.name)  # the other channel of the file is ticked: fused together
    _run_widget(viewer, widget)
    (surface,) = _wait(widget.height_view.shown, widget.surface_button.click)
    return widget, surface


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

    with tempfile.TemporaryDirectory() as folder:
        path = _hyperstack_file(Path(folder))
        viewer = napari.Viewer(title="napari-focus-stack", show=True)
        try:
            viewer.window._qt_window.resize(*WINDOW)
            _fused_in_3d(viewer, path)
            _save_window(viewer, out, small=True)
        finally:
            viewer.close()
    return out


def take_round_trip_screenshot(out: Path) -> Path:
    """Fuse a two-time-point stack, save the results with the plugin, reopen them beside the input; save `out`."""
    import tempfile

    import napari

    with tempfile.TemporaryDirectory() as folder:
        path = _hyperstack_file(Path(folder), n_t=2)
        viewer = napari.Viewer(title="napari-focus-stack", show=False)
        try:
            first, _second = viewer.open(str(path), plugin="napari-focus-stack")
            _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
            widget.set_input(first.name)
            _run_widget(viewer, widget)
            saved = []
            for layer in viewer.layers:
                if layer.metadata.get("focus_stack_role") in ("fused", "depth"):
                    name = "height.tif" if layer.metadata["focus_stack_role"] == "depth" else f"{layer.name}.tif"
                    saved += layer.save(str(Path(folder) / name.replace(" ", "_")), plugin="napari-focus-stack")
        finally:
            viewer.close()
        viewer = napari.Viewer(title="napari-focus-stack: results reopened", show=True)
        try:
            viewer.window._qt_window.resize(*WINDOW)
            inputs = viewer.open(str(path), plugin="napari-focus-stack")
            reopened = []
            for file in sorted(saved, key=lambda f: "height" in f):  # the fused channels, then the heights
                reopened += viewer.open(file, plugin="napari-focus-stack")
            for layer in inputs:
                layer.visible = False
                viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))  # last: out of the grid's cells
            viewer.scale_bar.visible = True
            viewer.grid.enabled = True
            viewer.grid.shape = (1, 2)
            viewer.grid.stride = 2  # the two fused channels together in one cell, the heights in the other
            viewer.dims.set_point(0, 1)  # the second time point
            viewer.layers.selection.active = reopened[-1]
            viewer.reset_view()
            _save_window(viewer, out, small=True)
        finally:
            viewer.close()
    return out


def take_mesh_screenshot(out: Path) -> Path:
    """Save the 3D height surface as PLY with the plugin, read the file back and show it; save `out`."""
    import tempfile

    import napari
    import numpy as np

    from napari_focus_stack._napari.height_view import tilt_camera

    with tempfile.TemporaryDirectory() as folder:
        path = _hyperstack_file(Path(folder))
        viewer = napari.Viewer(title="napari-focus-stack", show=False)
        try:
            _widget, surface = _fused_in_3d(viewer, path)
            (ply,) = surface.save(str(Path(folder) / "relief.ply"), plugin="napari-focus-stack")
        finally:
            viewer.close()
        mesh = _read_ply(Path(ply))
        viewer = napari.Viewer(title="napari-focus-stack: relief.ply read back", show=True)
        try:
            viewer.window._qt_window.resize(*WINDOW)
            x, y, z = mesh["vertices"].T
            vertices = np.stack([z, -y, x], axis=1)  # the file's x, y up the image, z up -> napari's (z, y, x)
            colours = np.concatenate([mesh["colors"] / 255.0, np.ones((len(x), 1))], axis=1)
            viewer.add_surface((vertices, mesh["faces"], z), vertex_colors=colours, name="relief.ply",
                               units=("µm",) * 3, scale=(2.5, 1.0, 1.0), shading="smooth")
            viewer.dims.ndisplay = 3
            viewer.reset_view()
            tilt_camera(viewer)
            viewer.text_overlay.visible = True
            viewer.text_overlay.font_size = 11
            viewer.text_overlay.text = (
                f"relief.ply read back: {len(vertices):,} vertices, {len(mesh['faces']):,} triangles, "
                f"x {np.ptp(x):.0f} µm, y {np.ptp(y):.0f} µm, z {np.ptp(z):.1f} µm (shown 2.5 x), colours per vertex"
            )
            _save_window(viewer, out, small=True)
        finally:
            viewer.close()
    return out


def _read_ply(path: Path) -> dict:
    """Vertices, faces and colours of the binary PLY the plugin writes (float xyz, uchar rgb, int triangles)."""
    import numpy as np

    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").split("\n")
    n_vertices = int(next(line for line in header if line.startswith("element vertex")).split()[2])
    n_faces = int(next(line for line in header if line.startswith("element face")).split()[2])
    vertices = np.frombuffer(raw, [("xyz", "<f4", 3), ("rgb", "u1", 3)], n_vertices, end)
    faces = np.frombuffer(raw, [("n", "u1"), ("abc", "<i4", 3)], n_faces, end + vertices.nbytes)
    return {"vertices": vertices["xyz"], "colors": vertices["rgb"], "faces": faces["abc"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=PCB, help="folder with pcb_0*.jpg frames")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG to write (default: docs/napari-screenshot.png, or docs/napari-height-3d.png)")
    parser.add_argument("--scale-factor", type=int, default=None)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--height-3d", action="store_true",
                       help="the 3D height view of a synthetic calibrated microscope stack instead")
    which.add_argument("--round-trip", action="store_true",
                       help="saved results of a calibrated stack reopened beside it instead")
    which.add_argument("--mesh", action="store_true", help="the height surface saved as PLY and read back instead")
    args = parser.parse_args(argv)
    frames = sorted(args.frames.glob("pcb_0*.jpg")) or sorted(args.frames.glob("*.jpg"))
    microscopy = args.height_3d or args.round_trip or args.mesh
    if len(frames) < 2 and not microscopy:
        parser.error(f"no frames found in {args.frames}")
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return _rerun_with_virtual_display(sys.argv[1:] if argv is None else argv)
    if args.height_3d:
        out = take_height_3d_screenshot(args.out or ROOT / "docs" / "napari-height-3d.png")
    elif args.round_trip:
        out = take_round_trip_screenshot(args.out or ROOT / "docs" / "napari-round-trip.png")
    elif args.mesh:
        out = take_mesh_screenshot(args.out or ROOT / "docs" / "napari-mesh.png")
    else:
        out = take_screenshot(frames, args.out or ROOT / "docs" / "napari-screenshot.png", args.scale_factor)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
