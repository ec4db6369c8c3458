"""Layers to frames and results to layers.

The engine sees frames (a :class:`~napari_focus_stack.io.FrameSource`); the
user sees layers. This module converts both ways:

- :func:`stack_source` and :func:`layers_source` read the frames of a stack
  layer, or of several 2-D layers, one at a time, with the names, EXIF and
  ICC profile the reader kept in ``layer.metadata``;
- :class:`InputAxes` says where the input layer's z axis, sliders and
  calibration are, and :class:`ChannelStack` reads several channel layers
  as one array with a channel axis, for the N-D engine
  (:func:`napari_focus_stack.nd.stack_nd`);
- :func:`result_layers` describes the layers a :class:`StackResult` becomes
  (``<input> fused``, ``depth``, ``confidence`` and optionally ``aligned``),
  :func:`nd_result_layers` those of an N-D result (one fused layer per
  channel layer, heights in the z unit); both keep the input's sliders,
  scale, translate and units (:mod:`.geometry`). :func:`put_result` adds
  one, or refills the one an earlier run on the same input made.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StackError
from ..io import Calibration, FrameSource
from ..io.hyperstack import normalise_unit
from . import layer_metadata as md
from .geometry import Placement, hyperstack_letters, placement, to_layer_layout

if TYPE_CHECKING:
    from napari.components import LayerList
    from napari.layers import Image

    from ..nd import NDResult
    from ..result import StackResult

__all__ = [
    "ChannelStack", "InputAxes", "data_index", "find_result", "find_results", "layer_shape", "layers_source",
    "nd_result_layers", "put_result", "result_layers", "reusable", "stack_source", "unit_symbol",
]

#: ``(role, data, kwargs)``: one result layer to show; kwargs are ``napari.layers.Image``'s.
ResultLayer = tuple[str, np.ndarray, dict]


def layer_shape(layer: Image) -> tuple[int, ...]:
    """The layer's shape along its ``ndim`` axes (an RGB layer's colour samples left out)."""
    return tuple(int(n) for n in layer.data.shape[: layer.ndim])


def data_index(layer: Any, world_position: Sequence[float], clip: bool = False) -> tuple[int, ...] | None:
    """The pixel of `layer` under `world_position`; None outside its y/x range (sliders clipped with `clip`)."""
    point = layer.world_to_data(tuple(world_position)[-layer.ndim:])
    shape = layer.data.shape[: layer.ndim]
    index = [int(np.floor(v + 0.5)) for v in point]
    for k, n in enumerate(shape):
        if clip or k < layer.ndim - 2:
            index[k] = min(max(index[k], 0), n - 1)  # a slider beyond a result's planes: its nearest
        elif not 0 <= index[k] < n:
            return None
    return tuple(index)


def move_z_slider(viewer: Any, key: str, z_axis: int, z: int, world_position: Sequence[float]) -> None:
    """Move the z slider of the input layer `key` (planes along its axis `z_axis`) to plane `z`.

    The other coordinates stay those of `world_position`. Nothing happens
    when the layer is gone or has no plane axis.
    """
    stack = viewer.layers[key] if key in viewer.layers else None
    if stack is None or z_axis >= stack.ndim - 2:
        return
    point = np.asarray(stack.world_to_data(tuple(world_position)[-stack.ndim:]), dtype=float)
    point[z_axis] = z
    world = stack.data_to_world(point)
    viewer.dims.set_point(viewer.dims.ndim - stack.ndim + z_axis, world[z_axis])


def unit_symbol(unit: Any) -> str | None:
    """A layer's unit (pint or text) as the symbol of a length (``"µm"``); None for pixels or none."""
    return None if unit is None else normalise_unit(str(unit))


@dataclasses.dataclass(frozen=True)
class InputAxes:
    """The input layer's axes, gathered on the GUI thread: z, sliders, calibration.

    Attributes
    ----------
    shape : tuple of int
        The layer's shape along its ``ndim`` axes (no RGB samples).
    z : int
        Its z (focus) axis.
    letters : str
        The engine's letters for its data (:func:`.geometry.hyperstack_letters`).
    scale, translate, units, axis_labels : tuple
        The layer's, one per axis (units as napari gives them).
    rgb : bool
    """

    shape: tuple[int, ...]
    z: int
    letters: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple | None = None
    axis_labels: tuple[str, ...] | None = None
    rgb: bool = False

    @classmethod
    def of(cls, layer: Image, z: int) -> InputAxes:
        """The axes of `layer` with `z` as its focus axis."""
        shape = layer_shape(layer)
        labels = tuple(str(a) for a in layer.axis_labels)
        return cls(shape, int(z), hyperstack_letters(len(shape), z, labels, bool(layer.rgb)),
                   tuple(float(v) for v in layer.scale), tuple(float(v) for v in layer.translate),
                   tuple(layer.units), labels, bool(layer.rgb))

    @property
    def frames(self) -> int:
        """Planes along z."""
        return self.shape[self.z]

    @property
    def stacks(self) -> int:
        """z-stacks to fuse: the product of the looped sliders' lengths."""
        looped = [n for n, a in zip(self.shape, self.letters, strict=False) if a not in "CZYX"]  # S not in shape
        return int(np.prod(looped, dtype=np.int64))

    @property
    def z_unit(self) -> str | None:
        """The z axis's length unit, None when it is in pixels (then heights are frame indices)."""
        return None if self.units is None else unit_symbol(self.units[self.z])

    @property
    def z_calibrated(self) -> bool:
        """Whether the z axis places its planes: a length unit, or a scale or translate of its own.

        A layer given ``scale=(0.5, 0.1, 0.1)`` and no units still spaces
        its planes 0.5 apart in the viewer: heights then come out in that
        scale (the world z), not in frame indices.
        """
        return self.z_unit is not None or self.scale[self.z] != 1.0 or self.translate[self.z] != 0.0

    @property
    def is_plain_stack(self) -> bool:
        """A single uncalibrated z-stack ``(Z, Y, X[, RGB])``: the photo path (EXIF, exposure matching)."""
        return self.letters.rstrip("S") == "ZYX" and not self.z_calibrated

    def place(self, lacks: Sequence[int]) -> Placement:
        """Where a result lacking the axes `lacks` goes (:func:`.geometry.placement`)."""
        return placement(self.shape, lacks, self.scale, self.translate, self.units, self.axis_labels)

    def calibration(self, channel_names: Sequence[str] | None = None) -> Any:
        """The engine's :class:`~napari_focus_stack.io.Calibration` from the layer's scale, translate and units.

        Heights then come out as world z coordinates (``translate + index *
        scale`` along z) when z is calibrated (:attr:`z_calibrated`: in its
        length unit, else in "pixel", the viewer's unit), else as frame
        indices.
        """
        yx_unit = None if self.units is None else unit_symbol(self.units[-1])
        z_unit, z = self.z_unit, self.z_calibrated
        return Calibration(
            pixel_size=(self.scale[-2], self.scale[-1]) if yx_unit else None,
            unit=yx_unit,
            z_step=self.scale[self.z] if z else None,
            z_unit=z_unit if z_unit else "pixel" if z else None,
            z0=self.translate[self.z] if z else 0.0,
            channel_names=None if channel_names is None else tuple(channel_names),
        )


class ChannelStack:
    """Several layers' data as one array with a leading channel axis, read a plane at a time.

    Indexing reads only what is asked from each layer (NumPy, Dask or Zarr
    data alike), so a z-stack is never loaded whole.

    Raises
    ------
    StackError
        The layers differ in shape or dtype.
    """

    def __init__(self, arrays: Sequence[Any], names: Sequence[str] | None = None):
        names = list(names) if names is not None else [f"channel {k}" for k in range(len(arrays))]
        shapes = {tuple(a.shape) for a in arrays}
        dtypes = {np.dtype(a.dtype) for a in arrays}
        if len(shapes) > 1 or len(dtypes) > 1:
            described = ", ".join(
                f"{n} {tuple(a.shape)} {np.dtype(a.dtype)}" for n, a in zip(names, arrays, strict=True)
            )
            raise StackError(f"channel layers fused together must have one shape and dtype: {described}")
        self.arrays = list(arrays)
        self.shape = (len(arrays), *shapes.pop())
        self.dtype = dtypes.pop()
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return np.asarray(self.arrays[first][rest])
        return np.stack([np.asarray(self.arrays[c][rest]) for c in range(len(self.arrays))[first]])


def stack_source(layer: Image) -> FrameSource:
    """The frames of a stack layer ``(Z, Y, X[, RGB])``, read one at a time.

    Names, paths, EXIF and ICC come from ``layer.metadata`` when the reader
    put them there, so the fused result keeps the camera's metadata.
    """
    source = FrameSource.from_inputs(layer.data)  # lazy: one plane per read, dask included
    meta = layer.metadata or {}
    n = len(source)
    names = meta.get(md.NAMES)
    names = list(names) if names is not None and len(names) == n else list(source.names)
    paths = meta.get(md.PATHS) or [None] * n
    exifs = meta.get(md.FRAME_EXIF) or [meta.get(md.EXIF)] * n
    if len(paths) != n or len(exifs) != n:
        paths, exifs = [None] * n, [meta.get(md.EXIF)] * n
    metas = [
        dataclasses.replace(source.meta(k), path=None if paths[k] is None else Path(paths[k]),
                            exif=exifs[k], icc=meta.get(md.ICC))
        for k in range(n)
    ]
    return FrameSource([partial(source.read, k) for k in range(n)], metas, names)


def layers_source(layers: Sequence[Image]) -> FrameSource:
    """The frames of several 2-D layers, in the given order, named after the layers.

    Raises
    ------
    StackError
        The layers differ in size, channels or dtype (the message says which).
    """
    source = FrameSource.from_inputs([np.asarray(layer.data) for layer in layers])
    metas = [
        dataclasses.replace(source.meta(k), exif=layer.metadata.get(md.EXIF), icc=layer.metadata.get(md.ICC))
        for k, layer in enumerate(layers)
    ]
    return FrameSource([partial(source.read, k) for k in range(len(layers))], metas,
                       [layer.name for layer in layers])


def result_layers(
    result: StackResult,
    key: str,
    source: FrameSource,
    *,
    scale: Sequence[float] = (1.0, 1.0),
    translate: Sequence[float] = (0.0, 0.0),
    units: Sequence[Any] | None = None,
    axis_labels: Sequence[str] | None = None,
    contrast_limits: Sequence[float] | None = None,
    colormap: Any = None,
    aligned: np.ndarray | None = None,
    axes: InputAxes | None = None,
) -> list[ResultLayer]:
    """The layers a result becomes, bottom to top (the fused image ends on top).

    Parameters
    ----------
    result : StackResult
        What the engine returned.
    key : str
        Names the layers (``"<key> fused"``...) and ties them to their input.
    source : FrameSource
        The frames that were stacked (names and paths for the metadata).
    scale, translate : (float, float)
        The input's y/x scale and translate: results lie where the input does.
    units, axis_labels : (str, str), optional
        The input's y/x units and labels (so that napari finds them consistent).
    contrast_limits : (float, float), optional
        The input's, for gray fused and aligned images (so they look alike).
    colormap : optional
        The input's colormap, for a gray fused image.
    aligned : numpy.ndarray, optional
        The aligned stack, see :meth:`FocusStacker.warp_to_reference`.
    axes : InputAxes, optional
        The input layer's axes: when given, they place the results (and the
        aligned stack) instead of `scale` ... `axis_labels`.

    Returns
    -------
    list of (role, data, kwargs)
        ``role`` is one of :data:`layer_metadata.ROLES`; kwargs hold the
        name, metadata and display settings of a ``napari.layers.Image``.
    """
    n = len(source)
    meta = result.meta
    metadata = {
        md.INPUT: key,
        md.REPORT: result.report.to_dict(),
        md.NAMES: list(source.names),
        md.EXIF: None if meta is None else meta.exif,
        md.ICC: None if meta is None else meta.icc,
        md.PATHS: [str(p) for p in source.paths if p is not None],
        md.HEIGHT_UNIT: "frame",
        md.Z_AXIS: 0 if axes is None else axes.z,
    }
    if axes is not None:
        common = axes.place([axes.z]).kwargs()
        stack = {"scale": axes.scale, "translate": axes.translate, "units": axes.units,
                 "axis_labels": axes.axis_labels}
    else:
        common = {"scale": tuple(scale), "translate": tuple(translate), "units": units, "axis_labels": axis_labels}
        stack = {"axis_labels": ("z", "y", "x")}
    gray_limits = None if contrast_limits is None else list(contrast_limits)
    gray = result.image.ndim == 2
    specs: list[tuple[str, np.ndarray, dict]] = []
    if aligned is not None:
        specs.append(("aligned", aligned, {
            **stack, "rgb": aligned.ndim == 4, "visible": False, "contrast_limits": gray_limits,
            "colormap": colormap if gray else None,
        }))
    specs.append(("confidence", result.confidence, {
        "colormap": "gray", "contrast_limits": [0.0, 1.0], "visible": False,
    }))
    # turbo over 0..frames-1: the depth map's colours follow the dims slider's positions
    specs.append(("depth", result.depth, {
        "colormap": "turbo", "contrast_limits": [0.0, float(max(n - 1, 1))],
    }))
    specs.append(("fused", result.image, {
        "rgb": not gray,
        "contrast_limits": gray_limits if gray else None,
        "colormap": colormap if gray else None,
    }))
    out = []
    for role, data, kwargs in specs:
        kwargs = {k: v for k, v in {**common, **kwargs}.items() if v is not None}
        kwargs["name"] = f"{key} {role}"
        kwargs["metadata"] = {**metadata, md.ROLE: role}
        out.append((role, data, kwargs))
    return out


def nd_result_layers(
    result: NDResult,
    key: str,
    axes: InputAxes,
    looks: Sequence[dict],
    *,
    channel_layers: bool = False,
    inputs: Sequence[str] = (),
) -> list[ResultLayer]:
    """The layers an N-D result becomes: fused image(s), heights and confidence.

    Every layer keeps the input's sliders (time points stay on the time
    slider), scale, translate and units (:meth:`InputAxes.place`).

    Parameters
    ----------
    result : NDResult
        What :func:`napari_focus_stack.nd.stack_nd` returned for the input.
    key : str
        The input layer's name: names the depth and confidence layers and
        ties all results to the input.
    axes : InputAxes
        The input layer's axes.
    looks : sequence of dict
        Per fused layer, its ``name`` and display keywords (``colormap``,
        ``blending``, ``contrast_limits``, ``gamma``): one per channel
        layer with `channel_layers`, else one.
    channel_layers : bool
        The result's channel axis holds layers fused together (one fused
        layer each, the channel index in ``metadata[md.CHANNEL]``).
    inputs : sequence of str
        The names of the input layers (the channel layers fused together).

    Returns
    -------
    list of (role, data, kwargs)
        Confidence, depth (heights: ``z0 + index * z step`` in the z unit
        when the layer's z axis has one, i.e. the world z of the sharpest
        plane; else the fractional frame index), then the fused layers.
    """
    cal = result.calibration
    calibrated = result.unit != "frame"
    n = axes.frames
    if calibrated:
        names = [f"z = {cal.z0 + k * cal.z_step:.6g} {result.unit}" for k in range(n)]
        lo, hi = sorted((cal.z0, cal.z0 + (n - 1) * cal.z_step))
    else:
        names = [f"plane {k}" for k in range(n)]
        lo, hi = 0.0, float(n - 1)
    metadata = {
        md.INPUT: key,
        md.REPORT: result.reports[0].to_dict() if result.reports else {},
        md.REPORTS: [r.to_dict() for r in result.reports],
        md.NAMES: names,
        md.Z_AXIS: axes.z,
        md.HEIGHT_UNIT: result.unit,
        md.CHANNEL_LAYERS: list(inputs) or [key],
    }
    if calibrated:
        metadata.update({md.Z0: float(cal.z0), md.Z_STEP: float(cal.z_step)})
    layer_axes = axes.letters[: len(axes.shape)]
    fused_place = axes.place([axes.z])
    map_place = axes.place([axes.z] + [k for k, a in enumerate(layer_axes) if a == "C"])
    maps = map_place.kwargs()
    specs: list[tuple[str, np.ndarray, dict]] = [
        ("confidence", to_layer_layout(result.confidence, result.height_axes, axes.letters, map_place.axes),
         {**maps, "colormap": "gray", "contrast_limits": [0.0, 1.0], "visible": False}),
        ("depth", to_layer_layout(result.height, result.height_axes, axes.letters, map_place.axes),
         {**maps, "colormap": "turbo", "contrast_limits": [float(lo), float(hi) if hi > lo else float(lo) + 1.0]}),
    ]
    if channel_layers:
        c_axis = result.axes.index("C")
        data_axes = result.axes.replace("C", "")
        for c, look in enumerate(looks):
            data = to_layer_layout(np.take(result.image, c, axis=c_axis), data_axes, axes.letters, fused_place.axes)
            specs.append(("fused", data, {**fused_place.kwargs(), **look, md.CHANNEL: c}))
    else:
        data = to_layer_layout(result.image, result.axes, axes.letters, fused_place.axes)
        specs.append(("fused", data, {**fused_place.kwargs(), "rgb": axes.rgb, **looks[0]}))
    out = []
    for role, data, kwargs in specs:
        channel = kwargs.pop(md.CHANNEL, None)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.setdefault("name", f"{key} {role}")
        kwargs["metadata"] = {**metadata, md.ROLE: role, **({} if channel is None else {md.CHANNEL: channel})}
        out.append((role, data, kwargs))
    return out


def find_result(layers: LayerList, key: str, role: str, channel: int | None = None) -> Image | None:
    """The `role` result layer of input `key` (of fused `channel` for channel layers), or None."""
    return next(
        (
            layer
            for layer in layers
            if layer.metadata.get(md.ROLE) == role
            and layer.metadata.get(md.INPUT) == key
            and layer.metadata.get(md.CHANNEL) == channel
        ),
        None,
    )


def find_results(layers: LayerList, key: str, role: str) -> list[Image]:
    """Every `role` result layer of input `key` (several fused channel layers), in layer-list order."""
    return [
        layer for layer in layers if layer.metadata.get(md.ROLE) == role and layer.metadata.get(md.INPUT) == key
    ]


def _refillable(layer: Image | None, data: np.ndarray, kwargs: dict) -> bool:
    """Whether `layer` can take `data` in place (same kind of image: rgb, ndim, dtype)."""
    return (
        layer is not None
        and layer.rgb == bool(kwargs.get("rgb", False))
        and layer.data.ndim == data.ndim
        and layer.dtype == data.dtype
    )


def reusable(layers: LayerList, spec: ResultLayer) -> Image | None:
    """The layer an earlier run made for `spec`, if its data can simply be replaced."""
    role, data, kwargs = spec
    meta = kwargs["metadata"]
    old = find_result(layers, meta[md.INPUT], role, meta.get(md.CHANNEL))
    return old if _refillable(old, data, kwargs) else None


def _same(current: Any, wanted: Any) -> bool:
    """Whether a layer property already has the value a result layer asks for."""
    name = getattr(current, "name", None)  # a colormap asked for by name
    if isinstance(wanted, str):
        return str(current) == wanted or name == wanted
    try:
        a = np.asarray(current, dtype=float)
        b = np.asarray(wanted, dtype=float)
    except (TypeError, ValueError):  # units, labels, colormap objects: as text
        return [str(x) for x in np.atleast_1d(current)] == [str(x) for x in np.atleast_1d(wanted)]
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=0))


def put_result(layers: LayerList, spec: ResultLayer) -> Image:
    """Show one result layer: refill the earlier run's layer, else add one.

    Refilling is cheap (no new vispy visual); a layer of another kind (the
    input turned from RGB to gray, say) is replaced at the same position. A
    result layer of this plugin with the same name is taken for the earlier
    run's (napari would otherwise add ``"<name> [1]"``).
    """
    from napari.layers import Image

    role, data, kwargs = spec
    meta = kwargs["metadata"]
    old = find_result(layers, meta[md.INPUT], role, meta.get(md.CHANNEL))
    if old is None:  # a result of this plugin with the name (another input's, or its channels' run): replaced
        old = next((layer for layer in layers if layer.name == kwargs.get("name") and md.ROLE in layer.metadata),
                   None)
    if _refillable(old, data, kwargs):
        old.data = data
        old.metadata = meta
        # every property set redraws the layer and its thumbnail (tens of ms for
        # a few megapixels): set only what changed since the earlier run
        for name in ("scale", "translate", "units", "axis_labels", "colormap", "blending", "gamma"):
            if name in kwargs and not _same(getattr(old, name), kwargs[name]):
                setattr(old, name, kwargs[name])
        if "contrast_limits" in kwargs:
            if not _same(old.contrast_limits_range, kwargs["contrast_limits"]):
                old.contrast_limits_range = kwargs["contrast_limits"]
            if not _same(old.contrast_limits, kwargs["contrast_limits"]):
                old.contrast_limits = kwargs["contrast_limits"]
        return old
    layer = Image(data, **kwargs)
    if old is not None:
        index = layers.index(old)
        layers.remove(old)
        layers.insert(index, layer)
    else:
        layers.append(layer)
    return layer
