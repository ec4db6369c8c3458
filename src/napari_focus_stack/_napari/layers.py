"""Layers to frames and results to layers.

The engine sees frames (a :class:`~napari_focus_stack.io.FrameSource`); the
user sees layers. This module converts both ways:

- :func:`stack_source` and :func:`layers_source` read the frames of a stack
  layer, or of several 2-D layers, one at a time, with the names, EXIF and
  ICC profile the reader kept in ``layer.metadata``;
- :func:`result_layers` describes the layers a :class:`StackResult` becomes
  (``<input> fused``, ``depth``, ``confidence`` and optionally ``aligned``);
  :func:`put_result` adds one, or refills the one an earlier run on the same
  input made.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import FrameSource
from . import layer_metadata as md

if TYPE_CHECKING:
    from napari.components import LayerList
    from napari.layers import Image

    from ..stacker import StackResult

__all__ = ["find_result", "layers_source", "put_result", "result_layers", "reusable", "stack_source"]

#: ``(role, data, kwargs)``: one result layer to show; kwargs are ``napari.layers.Image``'s.
ResultLayer = tuple[str, np.ndarray, dict]


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
    contrast_limits: Sequence[float] | None = None,
    aligned: np.ndarray | None = None,
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
    contrast_limits : (float, float), optional
        The input's, for gray fused and aligned images (so they look alike).
    aligned : numpy.ndarray, optional
        The aligned stack, see :meth:`FocusStacker.warp_to_reference`.

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
        md.REPORT: result.report,
        md.NAMES: list(source.names),
        md.EXIF: None if meta is None else meta.exif,
        md.ICC: None if meta is None else meta.icc,
        md.PATHS: [str(p) for p in source.paths if p is not None],
    }
    common = {"scale": tuple(scale), "translate": tuple(translate)}
    gray_limits = None if contrast_limits is None else list(contrast_limits)
    specs: list[tuple[str, np.ndarray, dict]] = []
    if aligned is not None:
        specs.append(("aligned", aligned, {
            "rgb": aligned.ndim == 4, "visible": False, "axis_labels": ("z", "y", "x"),
            "contrast_limits": gray_limits,
        }))
    specs.append(("confidence", result.confidence, {
        "colormap": "gray", "contrast_limits": [0.0, 1.0], "visible": False,
    }))
    # turbo over 0..frames-1: the depth map's colours follow the dims slider's positions
    specs.append(("depth", result.depth, {
        "colormap": "turbo", "contrast_limits": [0.0, float(max(n - 1, 1))],
    }))
    specs.append(("fused", result.image, {
        "rgb": result.image.ndim == 3,
        "contrast_limits": gray_limits if result.image.ndim == 2 else None,
    }))
    out = []
    for role, data, kwargs in specs:
        kwargs = {k: v for k, v in {**common, **kwargs}.items() if v is not None}
        kwargs["name"] = f"{key} {role}"
        kwargs["metadata"] = {**metadata, md.ROLE: role}
        out.append((role, data, kwargs))
    return out


def find_result(layers: LayerList, key: str, role: str) -> Image | None:
    """The `role` result layer of input `key`, or None."""
    return next(
        (layer for layer in layers if layer.metadata.get(md.ROLE) == role and layer.metadata.get(md.INPUT) == key),
        None,
    )


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
    old = find_result(layers, kwargs["metadata"][md.INPUT], role)
    return old if _refillable(old, data, kwargs) else None


def put_result(layers: LayerList, spec: ResultLayer) -> Image:
    """Show one result layer: refill the earlier run's layer, else add one.

    Refilling is cheap (no new vispy visual); a layer of another kind (the
    input turned from RGB to gray, say) is replaced at the same position.
    """
    from napari.layers import Image

    role, data, kwargs = spec
    key = kwargs["metadata"][md.INPUT]
    old = find_result(layers, key, role)
    if _refillable(old, data, kwargs):
        old.data = data
        old.metadata = kwargs["metadata"]
        old.scale, old.translate = kwargs["scale"], kwargs["translate"]
        if "contrast_limits" in kwargs:
            old.contrast_limits_range = kwargs["contrast_limits"]
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
