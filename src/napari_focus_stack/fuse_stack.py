"""The fusion pass: every aligned frame warped into reference geometry and folded into the fusion.

Every frame is read again (from the decoded-frame cache, else decoded
again), converted, exposure-corrected and warped into the reference's
geometry in one go (at ``scale_factor`` times the resolution), and handed to
the streaming fusion (:mod:`napari_focus_stack.fusion`), which keeps only
running state. Frames are decoded one ahead on a thread; small frames are
also prepared one ahead (:data:`PREFETCH_MAX_FRAME_BYTES`).

An image too large for the device is fused in overlapping windows (tiles),
chosen up front (``tile_size``) or after an out-of-memory error; each
window owns its inner part and the overlap covers the pyramid's and the
focus measure's reach, so tiles join without seams.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend
from .align import max_corner_shift, valid_region, warp_image
from .focus import measure_reach
from .fusion import MAX_LEVELS, make_fusion
from .io import FrameSource
from .options import MIN_TILE, EngineOptions
from .pixels import full_scale
from .streaming import FrameCache, RunProgress, prefetched, read_frame

__all__ = [
    "PREFETCH_MAX_FRAME_BYTES", "UNWARPED_PX", "Fused", "fuse_stack", "output_to_reference", "prefetch_fusion",
    "tile_windows", "unwarped", "warp_into_window", "warp_order",
]

#: A frame whose transform moves no image corner further than this (px) is
#: fused as it is: no interpolation blur for stacks that do not breathe.
UNWARPED_PX = 0.1

#: Largest float32 working frame (bytes) whose fusion prepares the next frame
#: while merging this one. Measured, 2 cores, whole process: 7 x 3.1 MP (36 MiB
#: frames) 8 % faster for 60 MiB more peak; 10 x 12 MP (137 MiB frames) no
#: faster, memory bandwidth being the limit, for 250 MiB more (over a 1 GiB
#: budget). Each frame ahead holds about 1.8 working frames (pyramid, maps).
PREFETCH_MAX_FRAME_BYTES = 64 << 20


@dataclass
class Fused:
    """The fusion's host arrays at the working resolution (``scale_factor`` times the frames')."""

    image: np.ndarray  # float32, 0..1 of the input's full scale
    depth_raw: np.ndarray
    confidence: np.ndarray
    tiles: int  # windows fused (1: whole image)


def prefetch_fusion(window_bytes: float) -> bool:
    """Whether a fusion window of ``window_bytes`` of float32 prepares the next frame ahead.

    See :data:`PREFETCH_MAX_FRAME_BYTES`.
    """
    return window_bytes <= PREFETCH_MAX_FRAME_BYTES


def unwarped(transform: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The identity for a transform that moves no corner by more than :data:`UNWARPED_PX`, else ``transform``."""
    if transform is None or max_corner_shift(transform, shape) > UNWARPED_PX:
        return transform
    return np.eye(3)


def output_to_reference(s: int, x0: int = 0, y0: int = 0) -> np.ndarray:
    """Matrix from output pixels (``s`` times the reference resolution, window at ``(x0, y0)``)
    to reference pixels: output pixel u covers reference pixel ``(u + 0.5) / s - 0.5``."""
    return np.array([[1 / s, 0, 0.5 / s - 0.5 + x0 / s], [0, 1 / s, 0.5 / s - 0.5 + y0 / s], [0, 0, 1.0]])


def tile_windows(out_shape: tuple[int, int], tile: int | None, options: EngineOptions) -> list[tuple]:
    """Output windows ``(y0, y1, x0, x1)``, each with the inner part it owns.

    Windows start on the coarsest pyramid grid and overlap by the reach of
    the pyramid and of the focus measure, so that each inner part comes out
    as in a whole-image fusion.
    """
    h, w = out_shape
    if tile is None or (tile >= h and tile >= w):
        return [((0, h, 0, w), (0, h, 0, w))]
    s = options.scale_factor
    grid = 2 ** (MAX_LEVELS - 1)
    overlap = 4 * grid + 2 * int(math.ceil(measure_reach(options.radius, options.smoothing) * s))
    overlap = int(math.ceil(overlap / grid) * grid)
    step = max(grid, (tile // grid) * grid)
    windows = []
    for y in range(0, h, step):
        for x in range(0, w, step):
            inner = (y, min(h, y + step), x, min(w, x + step))
            outer = (max(0, y - overlap), min(h, y + step + overlap), max(0, x - overlap), min(w, x + step + overlap))
            windows.append((outer, inner))
    return windows


def next_tile_size(out_shape: tuple[int, int], tile: int | None) -> int | None:
    """Halve the tile side after an out-of-memory error; None when already minimal."""
    current = tile or max(out_shape)
    nxt = current // 2
    return nxt if nxt >= MIN_TILE else None


def crop_footprint(frame: Any, m: np.ndarray, out_shape: tuple[int, int], margin: int = 3) -> tuple[Any, np.ndarray]:
    """Crop a frame to the part a window samples, so only that part is uploaded and warped."""
    h, w = out_shape
    corners = m @ np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], dtype=float)
    fh, fw = frame.shape[:2]
    xa = max(0, int(math.floor(corners[0].min())) - margin)
    xb = min(fw, int(math.ceil(corners[0].max())) + margin + 1)
    ya = max(0, int(math.floor(corners[1].min())) - margin)
    yb = min(fh, int(math.ceil(corners[1].max())) + margin + 1)
    if xa == 0 and ya == 0 and xb == fw and yb == fh:
        return frame, m
    if xb <= xa or yb <= ya:  # the window lies wholly outside this frame
        xa, xb, ya, yb = 0, min(fw, 2), 0, min(fh, 2)
    # the crop's edges are not the frame's edges: only clip where the frame really ends
    shift = np.array([[1, 0, -xa], [0, 1, -ya], [0, 0, 1.0]])
    return frame[ya:yb, xa:xb], shift @ m


def warp_order(scale_factor: int) -> int:
    """The interpolation the fusion warps frames with at ``scale_factor`` (see :meth:`Backend.warp_affine`)."""
    # bicubic at 1x too: bilinear loses much of the detail below 6 px periods (docs/benchmarks.md, quality);
    # order 2 is OpenCV's bicubic (as fast as bilinear), prefiltered to keep as much of the detail below
    # 3.5 px periods as Lanczos-4 on average; order 3 is Lanczos-4 itself, for upsampling
    return 2 if scale_factor == 1 else 3


def warp_into_window(
    bk: Backend,
    frame: Any,
    transform: np.ndarray,
    gain: Any,
    window: tuple[int, int, int, int],
    scale_factor: int,
    dtype: Any,
    out: Callable[[tuple], Any] | None = None,
) -> tuple[Any, Any | None]:
    """One frame as the fusion sees it: in reference geometry over an output window, exposure-corrected.

    The fusion (every frame of every window) and the retouching
    (:mod:`napari_focus_stack.retouch`: the frames painted in, over the
    painted part) both take their frames from here, so that a retouched
    region shows exactly the pixels the fusion chose from.

    Parameters
    ----------
    bk : Backend
    frame : array (H, W[, C])
        The frame as stored (host or device), any dtype.
    transform : 3x3 array
        Its reference->frame matrix (as the fusion uses it: after :func:`unwarped`).
    gain : sequence of float or None
        Its exposure gain per channel (None: 1).
    window : (y0, y1, x0, x1)
        The window, in output pixels (``scale_factor`` times the reference's).
    scale_factor : int
    dtype
        The frames' dtype (its full scale maps to 1).
    out : callable(shape) -> array, optional
        Gives the float32 buffer the warp writes into (a BufferPool's ``empty``).

    Returns
    -------
    warped : array (h, w[, C]) float32, 0..1 of the full scale
    valid : bool array (h, w) or None
        The pixels the frame covers and holds data for (NaN or inf in float
        frames are missing data); None when that is all of them.
    """
    xp = bk.xp
    y0, y1, x0, x1 = window
    shape = (y1 - y0, x1 - x0)
    order = warp_order(scale_factor)
    m = transform @ output_to_reference(scale_factor, x0, y0)
    frame, m = crop_footprint(frame, m, shape)
    covered = frame.shape[:2]
    frame = bk.asarray(frame)
    gain = (1.0 if gain is None else np.asarray(gain, np.float64)) / full_scale(dtype)
    holes = _missing_pixels(xp, frame) if np.dtype(dtype).kind == "f" else None  # only float data holds NaN
    if holes is None:
        # conversion, exposure and warp in one go (by strips of rows on the CPU)
        buffer = None if out is None else out(tuple(shape) + frame.shape[2:])
        warped = bk.warp_frame(frame, m, shape, order, gain, out=buffer)
    else:
        # exposure first: it commutes with hole filling and the warp (weighted means);
        # smooth stand-ins keep the band-pass quiet around holes, the mask keeps them out
        image = bk.scale_channels(frame.astype(xp.float32), gain)
        warped = warp_image(bk, pyramid.fill_holes(bk, image, holes), m, shape, order)
    del frame
    valid = valid_region(xp, m, shape, covered)
    if holes is not None:
        valid &= warp_image(bk, holes.astype(xp.float32), m, shape, 1) < 1e-3
    if bool(valid.all()):
        valid = None
    return warped, valid


def _missing_pixels(xp, image: Any) -> Any | None:
    """Boolean (H, W) mask of pixels with a non-finite value in any channel, or None when there are none."""
    bad = ~xp.isfinite(image)
    if bad.ndim == 3:
        bad = bad.any(axis=2)
    return bad if bool(bad.any()) else None


def fuse_stack(
    source: FrameSource,
    transforms: list,
    gains: list,
    *,
    options: EngineOptions,
    backend: Backend,
    cache: FrameCache,
    progress: RunProgress,
    weights: Any = None,
    workers: int = 1,
) -> Fused:
    """Fuse the aligned frames of ``source`` at ``scale_factor`` times their resolution.

    Parameters
    ----------
    source : FrameSource
    transforms : list
        Reference->frame matrices (None: the frame is left out).
    gains : list
        Per-frame exposure gains (None: 1).
    options : EngineOptions
        Method, radius, smoothing, scale factor, occlusion order and tile size.
    backend : Backend
    cache : FrameCache
        Frames decoded by the alignment pass (emptied after an out-of-memory error).
    progress : RunProgress
        Ticked once per frame (tiles tick fractions).
    weights : sequence of float, optional
        Each channel's say in the focus decision.
    workers : int
        With more than one (on the CPU), frames are decoded and prepared
        ahead and each frame's independent halves run on two threads.

    Notes
    -----
    When the device runs out of memory, the fusion starts over in tiles of
    half the size, down to :data:`~napari_focus_stack.options.MIN_TILE`.
    """
    h, w = source.shape[:2]
    s = options.scale_factor
    out_shape = (h * s, w * s)
    tile = options.tile_size
    while True:
        try:
            return _fuse_windows(
                source, transforms, gains, options, backend, cache, progress, weights, workers, out_shape, tile
            )
        except backend.oom_errors:
            cache.clear()
            backend.release_memory()
            tile = next_tile_size(out_shape, tile)
            if tile is None:
                raise
            progress.restart_fusion()


def _fuse_windows(source, transforms, gains, options, backend, cache, progress, weights, workers, out_shape, tile):
    """Fuse every window; returns host arrays at the working resolution."""
    windows = tile_windows(out_shape, tile, options)
    fuse = lambda window, frame_share: _fuse_window(  # noqa: E731
        source, transforms, gains, options, backend, cache, progress, weights, workers, window, frame_share
    )
    if len(windows) == 1:
        res = fuse(windows[0][0], 1.0)
        return Fused(backend.to_numpy(res.image), backend.to_numpy(res.depth), backend.to_numpy(res.confidence), 1)
    image = np.empty(tuple(out_shape) + tuple(source.shape[2:]), np.float32)
    depth = np.empty(out_shape, np.float32)
    confidence = np.empty(out_shape, np.float32)
    for outer, inner in windows:
        res = fuse(outer, 1.0 / len(windows))
        y0, y1, x0, x1 = inner
        oy, ox = y0 - outer[0], x0 - outer[2]
        own = (slice(oy, oy + y1 - y0), slice(ox, ox + x1 - x0))
        image[y0:y1, x0:x1] = backend.to_numpy(res.image[own])
        depth[y0:y1, x0:x1] = backend.to_numpy(res.depth[own])
        confidence[y0:y1, x0:x1] = backend.to_numpy(res.confidence[own])
        del res
    return Fused(image, depth, confidence, len(windows))


def _fuse_window(source, transforms, gains, options, backend, cache, progress, weights, workers, window, frame_share):
    """Fuse one output window over all frames, streaming; ``frame_share`` is the part of a frame's
    progress this window stands for (``1 / windows``).

    Each frame is cropped to the part the window samples, converted and
    corrected for exposure and warped in one step, prepared (pyramid and
    focus maps, by :meth:`Fusion.prepare`) and merged into the running state;
    pixels the warped frame does not cover, or that were missing in it,
    take no part.
    """
    bk = backend
    s = options.scale_factor
    y0, y1, x0, x1 = window
    shape = (y1 - y0, x1 - x0)
    parallel = workers > 1 and not bk.is_gpu
    fusion = make_fusion(
        options.method, bk, shape, options.radius * s, options.smoothing * s, weights, prefer=options.prefer,
        parallel=parallel,
    )
    frames = [i for i, m in enumerate(transforms) if m is not None]

    def prepare(i: int, frame: Any) -> dict:
        warped, valid = warp_into_window(
            bk, frame, transforms[i], gains[i], window, s, source.dtype, out=fusion.buffers.empty
        )
        del frame  # free the decoded frame before the pyramid is built
        return fusion.prepare(warped, valid)

    # Decode the next frame on a thread (one is enough: decoding takes a
    # fraction of a frame's fusion, and each decoded frame waiting is
    # memory). Prepare and merge run their kernels and independent halves
    # in parallel; small frames are also prepared one ahead (prefetch_fusion).
    decoded = prefetched(lambda i: read_frame(source, cache, i), frames, 1 if workers > 1 else 0)
    window_bytes = shape[0] * shape[1] * int(np.prod(source.shape[2:], dtype=int)) * 4  # float32
    ahead = 1 if parallel and prefetch_fusion(window_bytes) else 0
    prepared = prefetched(lambda i: prepare(i, next(decoded)), frames, ahead)
    try:
        for i in frames:
            # no zip(): it would keep the previous frame's pyramid alive one step longer
            prep = next(prepared)
            fusion.merge(i, prep)
            del prep
            progress.tick("fuse", frame_share)
        progress.tick("fuse", frame_share * (len(transforms) - len(frames)))
        return fusion.result()
    finally:
        fusion.close()  # cancelled or failed: stop its thread now
