"""The 3D height view of the Focus stack widget: the height map as a Surface layer, exaggerated, tilted.

*Show height in 3D* adds the height map of an input's results as a napari
Surface layer, ``<input> height 3D``: vertices in physical units (z the
height, y and x from the pixel size), one mesh per time point that follows
the time slider, decimated to at most
:data:`~napari_focus_stack.surface.MAX_VERTICES` vertices per time point
(:func:`~napari_focus_stack.surface.height_surface_series`). The mesh is
built on a worker thread (a 12 MP map takes most of a second); only the
layer is made on the GUI thread.

A relief of 4 µm over a 100 µm field is flat at true scale, so the view
has a **vertical exaggeration**: the Surface layer's z scale, recorded in
``metadata["vertical_exaggeration"]`` (the vertices keep true heights, so
a saved mesh is at true scale). By default it makes the relief a fifth of
the field's larger side (:data:`RELIEF_SHARE`), and never flattens a
calibrated relief below true scale. The camera starts tilted
(:data:`ELEVATION` above the horizon) instead of looking straight down.

The surface is coloured by the fused image (the channels' composite as
shown) or, with *Colour by: height*, by its height (turbo).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..surface import height_surface_series, relief_scale
from . import layer_metadata as md
from .background import start_worker
from .layers import data_index, find_result, find_results

if TYPE_CHECKING:
    import napari

__all__ = ["COLOUR_BY", "ELEVATION", "RELIEF_SHARE", "HeightView", "default_exaggeration", "tilt_camera"]

#: The relief the default exaggeration shows: this share of the field's larger side.
RELIEF_SHARE = 0.2
#: Degrees above the horizon the camera looks down from at first (90: straight down).
ELEVATION = 35.0
#: What the surface can be coloured by.
COLOUR_BY = ("fused image", "height")


def default_exaggeration(span: float, extent: tuple[float, float], calibrated: bool) -> float:
    """The vertical exaggeration that makes a relief of `span` a fifth of the larger `extent`.

    A calibrated relief (heights in the pixel size's unit) is never shown
    below true scale; heights in frame indices have no scale of their own.

    >>> default_exaggeration(4.0, (100.0, 100.0), True), default_exaggeration(80.0, (100.0, 100.0), True)
    (5.0, 1.0)
    """
    factor = relief_scale(span, extent, share=RELIEF_SHARE)
    return max(1.0, factor) if calibrated else factor


@dataclass
class _Request:
    """What the worker needs to build a surface, gathered on the GUI thread."""

    key: str
    heights: np.ndarray  # (*loop, H, W)
    colour_planes: list  # per loop index: [(plane, limits, gamma, colormap), ...] of the fused layers
    scale: tuple[float, float]
    translate: tuple[float, float]
    dims: list  # per slider of the surface: the height map's axis it follows, None for z
    depth_meta: dict
    kwargs: dict  # the Surface layer's keywords but the colours


@dataclass
class _Built:
    """A built surface, handed back to the GUI thread."""

    request: _Request
    vertices: np.ndarray
    faces: np.ndarray
    values: np.ndarray
    colors: np.ndarray | None
    step: int


class HeightView(QWidget):
    """The 3D controls: the *Show height in 3D* button, vertical exaggeration and colouring.

    Parameters
    ----------
    viewer : napari.Viewer
    current_key : callable
        Returns the input whose height map the button shows (None: none yet).

    Attributes
    ----------
    show_button : QPushButton
    exaggeration : QDoubleSpinBox
        The shown surface's vertical exaggeration (its z scale).
    colour_by : QComboBox
        :data:`COLOUR_BY`.
    shown : Signal(object)
        Emitted with the Surface layer once it is in the viewer.
    status : Signal(str)
        What happened, for the widget's status line.
    """

    shown = Signal(object)
    status = Signal(str)

    def __init__(self, viewer: napari.Viewer, current_key, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self._current_key = current_key
        self._key: str | None = None  # the input of the surface the controls act on
        self._fused_look: dict[str, tuple] = {}  # surface name -> (values, colours, limits) of the fused colouring
        self.worker = None
        self.show_button = QPushButton("Show height in 3D")
        self.show_button.setToolTip(
            "Add the height map as a 3D surface, coloured by the fused image, and turn the viewer to 3D "
            "(the mesh is built in the background)"
        )
        self.show_button.setEnabled(False)
        self.show_button.clicked.connect(lambda: self.show(None))
        self.exaggeration = QDoubleSpinBox()
        self.exaggeration.setRange(0.01, 1e5)
        self.exaggeration.setDecimals(2)
        self.exaggeration.setValue(1.0)
        self.exaggeration.setSuffix(" x")
        self.exaggeration.setToolTip(
            "Vertical exaggeration of the 3D surface (1: true scale). By default the relief spans a fifth of "
            "the field. Saved meshes stay at true scale."
        )
        self.exaggeration.setEnabled(False)
        self.exaggeration.valueChanged.connect(self._on_exaggeration)
        self.colour_by = QComboBox()
        self.colour_by.addItems(list(COLOUR_BY))
        self.colour_by.setToolTip("Colour the surface by the fused image (as shown) or by its height (turbo)")
        self.colour_by.setEnabled(False)
        self.colour_by.currentTextChanged.connect(self._on_colour_by)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Exaggeration"))
        row.addWidget(self.exaggeration)
        row.addWidget(QLabel("Colour by"))
        row.addWidget(self.colour_by, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.show_button)
        layout.addLayout(row)

    @property
    def busy(self) -> bool:
        """A surface is being built."""
        return self.worker is not None

    def surface(self, key: str | None = None) -> Any:
        """The Surface layer of input `key` (default: the one the controls act on), or None."""
        key = key or self._key
        return None if key is None else find_result(self.viewer.layers, key, "surface")

    # ------------------------------------------------------------------ build
    def show(self, key: str | None = None) -> Any:
        """Build the surface of input `key`'s height map on a worker thread; it is shown when done.

        Returns
        -------
        worker or None
            The napari worker building the mesh; None when there is no height
            map (the status says so) or a build is running. :attr:`shown`
            is emitted with the layer.
        """
        if self.busy:
            return None
        key = key or self._current_key()
        depth = None if key is None else find_result(self.viewer.layers, key, "depth")
        if depth is None:
            self.status.emit("No height map yet: run the focus stack first.")
            return None
        request = self._request(key, depth)
        self.show_button.setEnabled(False)
        self.status.emit(f"Building the 3D surface of {key}...")
        self.worker = start_worker(_build, request, returned=self._put, finished=self._finished)
        return self.worker

    def _request(self, key: str, depth: Any) -> _Request:
        z_axis = depth.metadata.get(md.Z_AXIS, 0)
        dims = _surface_dims(depth.data.shape[: depth.ndim], z_axis)
        loop = [k for k in dims if k is not None]
        # the height maps without their single z plane: (*loop, H, W)
        heights = np.asarray(depth.data[tuple(0 if k not in loop else slice(None) for k in range(depth.ndim - 2))])
        fused = find_results(self.viewer.layers, key, "fused")
        planes = []
        for index in (np.ndindex(*heights.shape[:-2]) if heights.ndim > 2 else [()]):
            at = dict(zip(loop, index, strict=True))
            world = depth.data_to_world([at.get(k, 0) for k in range(depth.ndim - 2)] + [0, 0])
            planes.append([(layer.data[data_index(layer, world, clip=True)[:-2]], tuple(layer.contrast_limits),
                            float(layer.gamma), layer.colormap) for layer in fused])
        unit = depth.metadata.get(md.HEIGHT_UNIT, "frame")
        stack = self.viewer.layers[key] if key in self.viewer.layers else None
        z_unit = stack.units[z_axis] if unit != "frame" and stack is not None else "pixel"
        labels = [str(v) for v in depth.axis_labels]
        kwargs = {
            "name": f"{key} height 3D",
            "shading": "smooth",
            "scale": tuple(1.0 if k is None else float(depth.scale[k]) for k in dims) + (1.0, 1.0),
            "translate": tuple(0.0 if k is None else float(depth.translate[k]) for k in dims) + (0.0, 0.0),
            "units": tuple(z_unit if k is None else depth.units[k] for k in dims) + tuple(depth.units[-2:]),
            "axis_labels": tuple("z" if k is None else labels[k] for k in dims) + ("y", "x"),
        }
        return _Request(key, heights, planes, tuple(float(v) for v in depth.scale[-2:]),
                        tuple(float(v) for v in depth.translate[-2:]), dims, dict(depth.metadata), kwargs)

    def _put(self, built: _Built) -> None:
        from napari.layers import Surface

        request = built.request
        key, meta = request.key, request.depth_meta
        unit = meta.get(md.HEIGHT_UNIT, "frame")
        calibrated = unit != "frame"
        old = find_result(self.viewer.layers, key, "surface")
        z_dim = request.dims.index(None)
        heights = built.vertices[:, z_dim]
        span = float(np.ptp(heights)) if heights.size else 0.0
        extent = tuple(abs(s) * n for s, n in zip(request.scale, request.heights.shape[-2:], strict=True))
        exaggeration = (float(old.metadata.get(md.EXAGGERATION, 1.0)) if old is not None
                        else default_exaggeration(span, extent, calibrated))
        values = built.values
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5])) if values.size else (0.0, 1.0)
        scale = list(request.kwargs["scale"])
        scale[z_dim] = exaggeration
        metadata = {md.INPUT: key, md.ROLE: "surface", md.HEIGHT_UNIT: unit, md.EXAGGERATION: exaggeration,
                    "block_step": built.step}
        kwargs = {**request.kwargs, "scale": tuple(scale), "metadata": metadata, "colormap": "gray",
                  "contrast_limits": [lo, hi if hi > lo else lo + 1]}
        if built.colors is not None:
            kwargs["vertex_colors"] = built.colors
        surface = Surface((built.vertices, built.faces, values), **kwargs)
        self._fused_look[surface.name] = (values, built.colors, kwargs["contrast_limits"])
        if old is not None:
            position = self.viewer.layers.index(old)
            self.viewer.layers.remove(old)
            self.viewer.layers.insert(position, surface)
        else:
            self.viewer.layers.append(surface)
        inputs = {key, *meta.get(md.CHANNEL_LAYERS, [])}
        for layer in self.viewer.layers:
            is_result = layer.metadata.get(md.INPUT) == key and layer.metadata.get(md.ROLE) != "surface"
            if layer.name in inputs or is_result:
                layer.visible = False  # in 3D they would hide the surface
        self._key = key
        self._sync_controls(surface)
        if self.colour_by.currentText() != COLOUR_BY[0]:
            self._on_colour_by(self.colour_by.currentText())
        self.viewer.dims.ndisplay = 3
        self.viewer.reset_view()
        tilt_camera(self.viewer)
        self.status.emit(
            f"'{surface.name}': {len(built.vertices):,} vertices"
            + (f" (blocks of {built.step} x {built.step} pixels)" if built.step > 1 else "")
            + (f", heights in {unit}" if calibrated else ", heights in frame indices")
            + f", exaggerated {exaggeration:.3g} x. Drag to turn it; the 2D/3D button switches back."
        )
        self.shown.emit(surface)

    def _finished(self) -> None:
        self.worker = None
        self.show_button.setEnabled(self._current_key() is not None)

    # --------------------------------------------------------------- controls
    def _sync_controls(self, surface: Any) -> None:
        self.exaggeration.blockSignals(True)
        self.exaggeration.setValue(float(surface.metadata.get(md.EXAGGERATION, 1.0)))
        self.exaggeration.blockSignals(False)
        self.exaggeration.setEnabled(True)
        self.colour_by.setEnabled(True)

    def set_exaggeration(self, value: float) -> None:
        """Set the vertical exaggeration of the shown surface (the spin box follows)."""
        self.exaggeration.setValue(float(value))

    def _on_exaggeration(self, value: float) -> None:
        surface = self.surface()
        if surface is None:
            return
        z_dim = list(surface.axis_labels).index("z")
        scale = list(surface.scale)
        scale[z_dim] = float(value)
        surface.scale = scale
        surface.metadata = {**surface.metadata, md.EXAGGERATION: float(value)}

    def _on_colour_by(self, what: str) -> None:
        surface = self.surface()
        if surface is None:
            return
        vertices = surface.data[0]
        if what == "height":
            heights = vertices[:, list(surface.axis_labels).index("z")].astype(np.float32)
            lo, hi = float(np.nanmin(heights)), float(np.nanmax(heights))
            surface.vertex_colors = None
            surface.vertex_values = heights
            surface.colormap = "turbo"
            surface.contrast_limits = [lo, hi if hi > lo else lo + 1.0]
            return
        look = self._fused_look.get(surface.name)
        if look is None:
            return
        values, colors, limits = look
        surface.vertex_values = values
        surface.colormap = "gray"
        surface.contrast_limits = limits
        surface.vertex_colors = colors


def tilt_camera(viewer: Any, elevation: float = ELEVATION) -> None:
    """Look at the 3D scene from the image's bottom edge, `elevation` degrees above it (z up).

    napari's 3D camera starts looking straight down the z axis; a relief is
    read from the side.
    """
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari < 0.9
    a = np.radians(elevation)
    # world axes of the view (z, y, x): from above (+z) and in front of the bottom edge (+y), looking back
    view = (-float(np.sin(a)), -float(np.cos(a)), 0.0)
    up = (float(np.cos(a)), -float(np.sin(a)), 0.0)
    camera.set_view_direction(view, up)


def _build(request: _Request) -> _Built:
    """Worker-thread body: the mesh of every time point, its colours, in the Surface layer's vertex order."""
    def image(index: tuple[int, ...]) -> np.ndarray | None:
        return _composite(request.colour_planes[_flat_index(index, request.heights.shape[:-2])])

    mesh = height_surface_series(request.heights, image, scale=request.scale, translate=request.translate)
    # vertex columns in the layer's axis order: the loop indices where their sliders are, the height at z
    loop = [k for k in request.dims if k is not None]
    n = len(loop)
    columns = [n if k is None else loop.index(k) for k in request.dims] + [n + 1, n + 2]
    return _Built(request, np.ascontiguousarray(mesh.vertices[:, columns]), mesh.faces, mesh.values, mesh.colors,
                  mesh.step)


def _flat_index(index: tuple[int, ...], shape: tuple[int, ...]) -> int:
    return int(np.ravel_multi_index(index, shape)) if shape else 0


def _composite(planes: list) -> np.ndarray | None:
    """The fused image(s) at one time point as the surface's colours.

    One layer: its pixels (RGB stays RGB). Channel layers: their composite
    as shown (each through its contrast limits, gamma and colormap, added).
    """
    if not planes:
        return None
    if len(planes) == 1:
        return np.asarray(planes[0][0])
    first = np.asarray(planes[0][0])
    rgb = np.zeros((*first.shape[:2], 3), np.float32)
    for data, (lo, hi), gamma, colormap in planes:
        plane = np.asarray(data)
        norm = np.clip((plane.astype(np.float32) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0) ** gamma
        rgb += colormap.map(norm.ravel())[:, :3].reshape(rgb.shape)
    return np.clip(rgb, 0.0, 1.0)


def _surface_dims(shape: tuple[int, ...], z_axis: int) -> list[int | None]:
    """For each slider of a height map's surface: the height map's axis it follows, None for z (the height).

    A result keeps its input's z axis as a single plane (``(T, 1, Y, X)``
    for a ``(T, Z, Y, X)`` input), or drops it when nothing precedes it;
    either way the surface has a z axis there.
    """
    lead = len(shape) - 2
    if z_axis < lead and shape[z_axis] == 1:
        return [None if k == z_axis else k for k in range(lead)]
    dims: list[int | None] = list(range(lead))
    dims.insert(min(z_axis, lead), None)
    return dims
