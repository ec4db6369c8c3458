"""napari reader: a folder, a list of files, a multi-page TIFF or microscope data as stack layers.

The layer data is ``(Z, Y, X)`` or ``(Z, Y, X, 3)`` in natural file order,
dtype as decoded (16-bit stays 16-bit). ``layer.metadata`` keeps what the
widget and the writer need later:

``names``, ``paths``
    Frame names and files, one per Z plane.
``exif``, ``icc``
    EXIF and ICC profile of the middle frame (the engine's default
    reference), copied into written results.
``frame_exif``
    EXIF of every frame.
``source``
    The folder or file that was opened.

A folder holding several OpenScan stacks (``<name>_<pose>-<frame>``) opens
as one layer per stack, named ``<name>_<pose>``, frames in frame-number order
(see :func:`napari_focus_stack.grouping.detect_stacks`). Frames that cannot be
read, and files that fit no stack, are left out and named in a notification.
Stacks larger than :data:`LAZY_BYTES` open lazily (dask), so only the frames
on screen are decoded.

Microscope data (ImageJ hyperstacks, OME-TIFF, OME-Zarr folders: see
:func:`napari_focus_stack.io.read_hyperstack`) opens lazily (a dask array
over the file's planes: a 2 GB file is never read whole) with its
calibration: ``scale`` (pixel size, z step), ``translate`` (first plane's
z), ``units`` and ``axis_labels`` (``t``, ``z``, ``y``, ``x``). Channels
become one layer each, napari's convention (as ``channel_axis`` and
napari-ome-zarr do): named ``<file> <channel name>``, coloured with the
file's channel colours (else magenta and green, or cyan, magenta, yellow,
red, green, blue), the first channel ``translucent_no_depth`` and the others
``additive``, and ``metadata["channel_group"]`` naming the file, so that the
Focus stack widget fuses them together. A time axis is in seconds where the
file gives the interval, else without a unit (not "pixel").

Calibrated images that are not z-stacks (no z axis: the fused images,
height and confidence maps this plugin writes, 2-D, C, T or TC; any ImageJ
or OME-TIFF with a pixel size) open the same way, as what they are: the
pixel size, the units, a result's single z plane where it lay (so a
``(T, 1, Y, X)`` result reopens over its input), the channel colours; a
height map in turbo with its contrast, in its unit
(``metadata["focus_stack_height_unit"]``), a confidence map in gray over
0..1 (see :func:`napari_focus_stack.io.read_calibrated_image`).

A retouch mask the plugin saved (a TIFF marked by
:data:`napari_focus_stack.io.mask.RETOUCH_KEY`) opens as a Labels layer,
``<input> retouch``, that the Focus stack widget takes up over its input's
fused image (see :mod:`.retouch_panel`).

Nothing here imports napari at module level: the reader also works as a
plain function returning ``(data, kwargs, "image")`` tuples.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._runtime import default_threads
from ..errors import FocusStackError, InputError, StackError
from ..grouping import detect_stacks
from ..io import (
    FrameSource,
    ImageMeta,
    expand_inputs,
    is_hyperstack_file,
    is_image_name,
    natural_sorted,
    plane_count,
    read_hyperstack,
    read_image,
    read_meta,
)
from ..io.calibrated_image import ImageInfo, image_info, is_calibrated_image, read_calibrated_image
from ..io.mask import mask_info, read_retouch_mask
from . import layer_metadata as md
from ._notify import notify

__all__ = ["LAZY_BYTES", "get_reader", "read_retouch_layers", "read_stacks"]

#: Stacks whose pixels take more bytes than this are opened lazily with dask.
LAZY_BYTES = 512 * 2**20

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
LayerData = tuple[Any, dict, str]


def _as_list(path: PathOrPaths) -> list[Path]:
    if isinstance(path, (str, os.PathLike)):
        return [Path(path)]
    return [Path(p) for p in path]


def _folder_images(folder: Path) -> list[Path]:
    """The folder's image files in natural order; none when it holds none or cannot be listed."""
    try:
        return expand_inputs(folder)
    except InputError:
        return []


def _is_multipage(path: Path) -> bool:
    try:
        return read_meta(path).page is not None
    except FocusStackError:
        return False


def _is_microscope_data(path: Path) -> bool:
    """An OME-Zarr folder, or an ImageJ/OME/N-D TIFF with more than one plane (one plane: a 2-D image)."""
    if path.is_dir():
        return is_hyperstack_file(path)
    return is_hyperstack_file(path) and plane_count(path) >= 2


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """Return :func:`read_stacks` when `path` is something this plugin stacks.

    Parameters
    ----------
    path : str, path-like or list of them
        What napari asks about: one path (a folder or a file) or several files.

    Returns
    -------
    callable or None
        :func:`read_stacks` for a folder with image files, two or more image
        files, a multi-page TIFF or microscope data (an ImageJ or OME-TIFF
        with several planes, an OME-Zarr folder), a calibrated image (an
        ImageJ or OME-TIFF with a pixel size, a map this plugin wrote); None
        otherwise (a single uncalibrated 2-D image, a missing or unreadable
        path), so that other readers can try.
    """
    paths = _as_list(path)
    if not paths:
        return None
    if len(paths) == 1:
        p = paths[0]
        if mask_info(p) is not None:
            return read_retouch_layers
        if p.is_dir():
            return read_stacks if _is_microscope_data(p) or _folder_images(p) else None
        if p.is_file() and is_image_name(p) and (_is_microscope_data(p) or _is_multipage(p) or is_calibrated_image(p)):
            return read_stacks
        return None
    if all(p.is_file() and is_image_name(p) for p in paths):
        return read_stacks
    return None


# ----------------------------------------------------------------------- read


def read_retouch_layers(path: PathOrPaths) -> list[LayerData]:
    """A retouch mask the plugin saved, as a Labels layer named after its input (``<input> retouch``)."""
    p = _as_list(path)[0]
    info = mask_info(p) or {}
    key = info.get("input") or p.stem
    try:
        mask = read_retouch_mask(p)
    except FocusStackError as exc:
        notify(str(exc), "error")
        return []
    metadata = {md.INPUT: key, md.ROLE: "retouch", md.NAMES: list(info.get("frames") or []), md.SOURCE: str(p)}
    return [(mask, {"name": f"{key} retouch", "metadata": metadata}, "labels")]



def read_stacks(path: PathOrPaths) -> list[LayerData]:
    """Read a folder, a list of files or a multi-page TIFF into stack layers.

    Parameters
    ----------
    path : str, path-like or list of them
        A folder of frames, several frame files, or one multi-page TIFF.

    Returns
    -------
    list of (data, kwargs, "image")
        One layer per stack (per channel for microscope data). Empty when
        nothing could be read (the reason is shown as a notification);
        ``[(None,)]`` (napari's "nothing to add") when microscope data cannot
        be focus-stacked: the notification says why.
    """
    paths = _as_list(path)
    if len(paths) == 1 and (_is_microscope_data(paths[0]) or is_calibrated_image(paths[0])):
        try:
            return _microscope_layers(paths[0])
        except FocusStackError as exc:
            notify(f"napari-focus-stack cannot open {paths[0].name}: {exc}", "error")
            return [(None,)]
    try:
        if len(paths) == 1 and paths[0].is_file():
            return [_tiff_layer(paths[0])]
        if len(paths) == 1:
            source, files = paths[0], _folder_images(paths[0])
        else:
            source, files = paths[0].parent, natural_sorted(paths)
        return _file_layers(source, files, whole_folder=len(paths) == 1)
    except FocusStackError as exc:
        notify(str(exc), "error")
        return []


def _tiff_layer(path: Path) -> LayerData:
    src = FrameSource.from_inputs(path)
    metas = [src.meta(k) for k in range(len(src))]
    loaders = [lambda k=k: src.read(k) for k in range(len(src))]
    layer, problems = _layer(path.stem, str(path), loaders, metas, src.names)
    if layer is None:
        raise FocusStackError(" ".join(problems))
    if problems:
        notify(f"Skipped {len(problems)} unreadable frame(s) of {path}: " + " ".join(problems))
    return layer


def _file_layers(source: Path, files: list[Path], whole_folder: bool) -> list[LayerData]:
    good: list[Path] = []
    metas: dict[Path, ImageMeta] = {}
    problems: list[str] = []
    for f in files:
        try:
            meta = read_meta(f)
        except FocusStackError as exc:
            problems.append(str(exc))
            continue
        if meta.page is not None:
            problems.append(f"{f} holds several frames (a z-stack); open it on its own.")
            continue
        good.append(f)
        metas[f] = meta
    layers = []
    groups, grouping_problems = _split(good)
    problems += grouping_problems
    for stack_name, group in groups:
        group, odd = _consistent(group, metas)
        problems += [f"{f.name} differs in size, colour or bit depth from the other frames." for f in odd]
        if not group:
            continue
        if stack_name is None:
            common = _common_name([f.stem for f in group]) or source.name
            name = (source.name or str(source)) if whole_folder else common
        else:
            name = stack_name
        loaders = [lambda f=f: read_image(f)[0] for f in group]
        layer, failed = _layer(name, str(source), loaders, [metas[f] for f in group], [f.name for f in group])
        problems += failed
        if layer is not None:
            layers.append(layer)
    if problems:
        notify(f"Skipped {len(problems)} unreadable or mismatched file(s) in {source}: " + " ".join(problems))
    if not layers:
        raise FocusStackError(f"No readable frames in {source}.")
    return layers


def _split(paths: list[Path]) -> tuple[list[tuple[str | None, list[Path]]], list[str]]:
    """OpenScan stacks (``scanNN_PPP_fsKK``, ``<name>_<pose>-<frame>``) by position, else one unnamed stack.

    Returns ``(name, frames)`` per stack and the grouping's problems (files
    that fit no stack, missing frame numbers...), by file name.
    """
    try:
        plan = detect_stacks(paths)
    except FocusStackError:  # no stacks recognised (a bug in grouping must surface)
        return [(None, paths)], []
    if plan.mode not in ("openscan", "openscan3") or not plan.stacks:
        return [(None, paths)], []
    return [(s.name, [Path(f) for f in s.frames]) for s in plan.stacks], [p.message for p in plan.problems]


def _consistent(group: list[Path], metas: dict[Path, ImageMeta]) -> tuple[list[Path], list[Path]]:
    """Split `group` into the frames of the most common size/colour/dtype and the rest."""
    key = {f: (metas[f].shape, metas[f].dtype.str) for f in group}
    if not key:
        return [], []
    common = Counter(key.values()).most_common(1)[0][0]
    return [f for f in group if key[f] == common], [f for f in group if key[f] != common]


def _common_name(stems: list[str]) -> str:
    """The shared start of frame names, without a trailing partial number or separator."""
    prefix = os.path.commonprefix(stems)
    if prefix and prefix[-1].isdigit() and any(len(s) > len(prefix) and s[len(prefix)].isdigit() for s in stems):
        prefix = prefix.rstrip("0123456789")
    return re.sub(r"[\s._-]+$", "", prefix)


# ----------------------------------------------------------- microscope data

#: napari's channel colours when a file names none (``channel_axis``'s defaults).
_TWO_CHANNELS = ("magenta", "green")
_MORE_CHANNELS = ("cyan", "magenta", "yellow", "red", "green", "blue")
_NAMED_COLOURS = {
    (1, 0, 0): "red", (0, 1, 0): "green", (0, 0, 1): "blue", (1, 0, 1): "magenta", (0, 1, 1): "cyan",
    (1, 1, 0): "yellow", (1, 1, 1): "gray",
}


def _colormap(colour: Any) -> str:
    """A napari colormap name for a channel colour ``(r, g, b)`` in 0..1 (or a name, kept)."""
    if isinstance(colour, str):
        return colour
    rgb = tuple(int(round(255 * min(max(float(v), 0.0), 1.0))) for v in tuple(colour)[:3])
    named = _NAMED_COLOURS.get(tuple(v // 255 for v in rgb) if all(v in (0, 255) for v in rgb) else None)
    return named or "#{:02x}{:02x}{:02x}".format(*rgb)


def _channel_colormaps(colours: Any, n: int) -> list[str]:
    if colours is not None and len(colours) == n:
        return [_colormap(c) for c in colours]
    if n == 1:
        return ["gray"]
    cycle = _TWO_CHANNELS if n == 2 else _MORE_CHANNELS
    return [cycle[k % len(cycle)] for k in range(n)]


def _stem(path: Path) -> str:
    """The file or folder name without its format's suffixes (``cells.ome.tif`` -> ``cells``)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _microscope_layers(path: Path) -> list[LayerData]:
    """One lazy, calibrated layer per channel of an ImageJ/OME-TIFF or OME-Zarr, z-stack or not."""
    try:
        hs = read_hyperstack(path)
    except StackError:  # no z axis (or one plane): a calibrated image, e.g. a result this plugin wrote
        if path.is_dir():
            raise
        image = read_calibrated_image(path)
        return _calibrated_layers(path, image.data, image.axes, image.calibration, image.info)
    info = image_info(path) if path.is_file() else ImageInfo()
    return _calibrated_layers(path, hs.data, hs.axes, hs.calibration, info)


def _calibrated_layers(path: Path, array: Any, axes: str, cal: Any, info: ImageInfo) -> list[LayerData]:
    """The layers of calibrated data (a z-stack or an image): one per channel, lazy, in physical units."""
    import dask.array as da

    data = da.from_zarr(array) if type(array).__module__.startswith("zarr") else da.asarray(array)
    loop = [k for k, a in enumerate(axes) if a not in "CZYXS"]
    if "Z" not in axes and cal.z_step is not None and loop:
        # a result's single z plane (io.calibrated.collapsed_z): back after the loop axes, where it lay
        k = loop[-1] + 1
        data, axes = data[(slice(None),) * k + (None,)], axes[:k] + "Z" + axes[k:]
    layer_axes = [a for a in axes if a not in "CS"]
    scale, translate, units = [], [], []
    for a in layer_axes:
        if a == "Z" and cal.z_step is not None:
            scale.append(float(cal.z_step))
            translate.append(float(cal.z0))
            units.append(cal.z_unit or cal.unit or "pixel")
        elif a in "YX" and cal.pixel_size is not None:
            scale.append(float(cal.pixel_size[0 if a == "Y" else 1]))
            translate.append(0.0)
            units.append(cal.unit or "pixel")
        elif a == "T" and info.time_step is not None:
            scale.append(float(info.time_step))
            translate.append(0.0)
            units.append("second")
        else:
            scale.append(1.0)
            translate.append(0.0)
            units.append("pixel" if a in "ZYX" else "")  # time points, positions: counts, not pixels
    n = data.shape[axes.index("C")] if "C" in axes else 1
    names = list(cal.channel_names) if cal.channel_names and len(cal.channel_names) == n else [
        f"channel {c}" for c in range(n)]
    colormaps = _channel_colormaps(cal.channel_colors, n)
    # one plane (the middle z of the first z-stack) sets the contrast of each channel
    first = tuple(0 if a not in "CZYXS" else data.shape[k] // 2 if a == "Z" else slice(None)
                  for k, a in enumerate(axes))
    plane = np.asarray(data[first])
    plane_axes = [a for a in axes if a in "CYXS"]
    rgb = "S" in axes
    stem = _stem(path)
    role = {"height": "depth", "depth (frame index)": "depth", "confidence": "confidence"}.get(info.value_name)
    layers = []
    for c in range(n):
        channel = data if "C" not in axes else data[(slice(None),) * axes.index("C") + (c,)]
        kwargs: dict[str, Any] = {
            "name": stem if n == 1 else f"{stem} {names[c]}",
            "rgb": rgb,
            "scale": tuple(scale),
            "translate": tuple(translate),
            "units": tuple(units),
            "axis_labels": tuple(a.lower() for a in layer_axes),
            "multiscale": False,
            "metadata": {md.SOURCE: str(path)},
        }
        if role is not None:  # a map this plugin wrote: shown, and saved again, as what it is
            unit = info.value_unit or ("pixel" if info.value_name == "height" else "frame")
            kwargs["metadata"].update({md.ROLE: role, md.HEIGHT_UNIT: unit})
        if not rgb:
            values = plane if "C" not in plane_axes else np.take(plane, c, axis=plane_axes.index("C"))
            kwargs["contrast_limits"] = _contrast_limits(values[None], values.dtype)
            kwargs["colormap"] = colormaps[c]
            if role == "depth":
                kwargs["colormap"] = "turbo"
                kwargs["contrast_limits"] = list(info.display_range or kwargs["contrast_limits"])
            elif role == "confidence":
                kwargs["colormap"], kwargs["contrast_limits"] = "gray", [0.0, 1.0]
        if n > 1:
            kwargs["blending"] = "translucent_no_depth" if c == 0 else "additive"
            kwargs["metadata"][md.CHANNEL_GROUP] = str(path)
        elif role is None and not rgb and cal.channel_colors and colormaps[0] != "gray":
            kwargs["blending"] = "additive"  # one coloured channel (a fused channel layer): it composes with others
        layers.append((channel, kwargs, "image"))
    return layers


# --------------------------------------------------------------------- layers


def _layer(
    name: str,
    source: str,
    loaders: list[Callable[[], np.ndarray]],
    metas: list[ImageMeta],
    names: list[str],
) -> tuple[LayerData | None, list[str]]:
    """A stack layer tuple, eager for small stacks and dask-backed for large ones.

    Returns the layer (None when no frame could be decoded) and the messages
    of the frames that failed to decode. Those are dropped from an eager
    stack; a lazy frame that fails shows black and is reported when displayed.
    """
    frame_shape, dtype = metas[0].shape, metas[0].dtype
    nbytes = len(loaders) * int(np.prod(frame_shape)) * dtype.itemsize
    problems: list[str] = []
    if nbytes > LAZY_BYTES:
        data = _lazy_stack(loaders, frame_shape, dtype, names)
        keep = list(range(len(loaders)))
    else:
        data, keep, problems = _eager_stack(loaders, frame_shape, dtype)
        if data is None:
            return None, problems
    metas = [metas[k] for k in keep]
    mid = metas[len(metas) // 2]
    kwargs: dict[str, Any] = {
        "name": name,
        "rgb": len(frame_shape) == 3,
        "axis_labels": ("z", "y", "x"),
        "multiscale": False,
        "metadata": {
            md.SOURCE: source,
            md.NAMES: [names[k] for k in keep],
            md.PATHS: [None if m.path is None else str(m.path) for m in metas],
            md.EXIF: mid.exif,
            md.ICC: mid.icc,
            md.FRAME_EXIF: [m.exif for m in metas],
        },
        "contrast_limits": _contrast_limits(data, dtype),
    }
    return (data, kwargs, "image"), problems


def _eager_stack(loaders, frame_shape, dtype) -> tuple[np.ndarray | None, list[int], list[str]]:
    data = np.empty((len(loaders), *frame_shape), dtype)
    ok = [True] * len(loaders)
    problems: list[str] = []

    def load(k: int) -> None:
        try:
            frame = loaders[k]()
            if frame.shape != tuple(frame_shape) or frame.dtype != dtype:
                raise FocusStackError(f"frame {k} decoded to another size or dtype than its header says")
            data[k] = frame
        except FocusStackError as exc:
            ok[k] = False
            problems.append(str(exc))

    with ThreadPoolExecutor(default_threads()) as pool:
        list(pool.map(load, range(len(loaders))))
    keep = [k for k in range(len(loaders)) if ok[k]]
    if not keep:
        return None, [], problems
    if len(keep) < len(loaders):
        data = data[keep]
    return data, keep, problems


def _lazy_stack(loaders, frame_shape, dtype, names):
    import dask
    import dask.array as da

    reported: set[int] = set()

    def load(k: int) -> np.ndarray:
        try:
            return loaders[k]()
        except FocusStackError as exc:
            if k not in reported:  # once per frame, not on every redraw
                reported.add(k)
                notify(f"{names[k]} shows black: {exc}")
            return np.zeros(frame_shape, dtype)

    frames = [
        da.from_delayed(dask.delayed(load, pure=True)(k), shape=tuple(frame_shape), dtype=dtype)
        for k in range(len(loaders))
    ]
    return da.stack(frames)


def _contrast_limits(data, dtype: np.dtype) -> list[float]:
    """Contrast limits without napari scanning the whole (maybe lazy) stack."""
    if dtype == np.uint8:
        return [0.0, 255.0]
    # One frame (the middle one, usually the sharpest) stands for the stack.
    frame = np.asarray(data[len(data) // 2])
    lo, hi = float(np.nanmin(frame)), float(np.nanmax(frame))
    return [lo, hi if hi > lo else lo + 1.0]
