"""Retouching: take chosen frames over painted regions of a fused result.

Every automatic choice fails somewhere (a bristle in front of a background
that is never sharp, a specular highlight, a transparent wing). A retouch
mask fixes it by hand: an integer image the size of the fused image where

- ``0`` keeps the automatic result, and
- ``k > 0`` takes frame ``k``, counted from 1 in input order (label 1 is
  the first frame, ``depth`` 0), after alignment and exposure correction:
  the very pixels the fusion chose from (:func:`.fuse_stack.warp_into_window`).

Frames are blended in, not cut in: the correction ``frame - automatic`` is
split into a Laplacian pyramid of :data:`BLEND_LEVELS` levels and each
level is weighted by the same level of a Gaussian pyramid of the label's
mask (Burt and Adelson's multiresolution spline), so fine detail changes
within a pixel or two of the mask's edge and brightness within about
:data:`REACH` pixels, without a seam. Inside a painted region, farther than
that from its edge, the result is the frame itself; farther than
:data:`REACH` from every painted pixel it is the automatic result, bit for
bit. The depth maps take ``k - 1`` where label ``k`` is painted (and frame
``k`` has data), and the confidence :data:`HAND_SET_CONFIDENCE` (1.0: the
automatic confidence, ``(best - mean) / (best + typical)``, stays below
it); the mask itself is kept as :attr:`StackResult.retouch` and each
frame's painted pixels as ``FrameReport.retouched_pixels``.

A :class:`Retouch` keeps what an update needs (the automatic result, the
transforms, the gains, the frames decoded so far within a memory budget),
so that a brush stroke recomputes only its bounding box plus the blend's
reach: a few milliseconds to tens of milliseconds, whatever the image size
(``benchmarks/retouch.py``). :func:`apply_retouch` is the one-shot form
that ``FocusStacker.stack(..., retouch=mask)`` uses.

References
----------
Burt and Adelson, "A multiresolution spline with application to image
mosaics", ACM Transactions on Graphics 2(4), 1983.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend, block_all, block_mean, get_backend
from .errors import ParameterError
from .fuse_stack import unwarped, warp_into_window
from .io import FrameSource
from .pixels import cast_to, full_scale, to_unit_float
from .result import StackResult

__all__ = [
    "BLEND_LEVELS", "DEFAULT_CACHE_BYTES", "HAND_SET_CONFIDENCE", "REACH", "Retouch", "RetouchPatch",
    "apply_retouch", "check_mask", "output_shape",
]

#: Levels of the blend's pyramids: the finest band changes at the mask's edge,
#: the coarsest (8 px a pixel) over about 30 px.
BLEND_LEVELS = 4
#: Farthest (px) a painted pixel changes the result: the Gaussian pyramid's
#: reach down to the coarsest level and back up, 2 ** (levels + 2) - 4, rounded up.
REACH = 2 ** (BLEND_LEVELS + 1)
#: Windows start on the coarsest level's grid, so their pyramids sample as the whole image's would.
GRID = 2 ** (BLEND_LEVELS - 1)
#: Decoded frames a Retouch keeps for the next strokes (bytes).
DEFAULT_CACHE_BYTES = 512 << 20
#: Largest side (px) blended at once: a big change (a fill, a whole mask) goes by blocks, so that
#: the blend's pyramids stay some 100 MiB whatever the image's size.
BLOCK = 1024
#: The confidence of a pixel set by hand.
HAND_SET_CONFIDENCE = 1.0


def output_shape(result: StackResult) -> tuple[int, int]:
    """The shape (rows, cols) a retouch mask of ``result`` must have: its fused image's."""
    return tuple(int(n) for n in result.image.shape[:2])


def check_mask(mask: Any, shape: Sequence[int], frames: int, *, name: str = "the retouch mask") -> np.ndarray:
    """``mask`` as a 2-D integer NumPy array, checked against the fused image's ``shape`` and the frame count.

    Parameters
    ----------
    mask : array-like
        Labels: 0 automatic, k the k-th frame (from 1).
    shape : (rows, cols)
        The fused image's size.
    frames : int
        Frames in the stack.
    name : str
        How messages name the mask (a file name).

    Raises
    ------
    ParameterError
        Not 2-D, not integer, the wrong size, or a label that is no frame;
        the message says what fits.

    Examples
    --------
    >>> check_mask(np.zeros((4, 6), np.uint8), (4, 6), 3).shape
    (4, 6)
    >>> check_mask(np.full((4, 6), 5, np.uint8), (4, 6), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_focus_stack.errors.ParameterError: the retouch mask: label 5 is no frame: the stack has 3 frames ...
    """
    a = np.asarray(mask)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    rows, cols = int(shape[0]), int(shape[1])
    if a.ndim != 2:
        raise ParameterError(
            f"{name}: a retouch mask is one 2-D image of labels, got an array of shape {a.shape}; "
            f"save it as a single-page gray TIFF or PNG of {cols} x {rows} pixels"
        )
    if a.dtype.kind not in "ui":
        raise ParameterError(f"{name}: a retouch mask holds integer labels (frame numbers), got {a.dtype} values")
    if a.shape != (rows, cols):
        raise ParameterError(
            f"{name} is {a.shape[1]} x {a.shape[0]} pixels, the fused image {cols} x {rows}: "
            "the mask must be the size of the fused image"
        )
    _check_labels(a, frames, name)
    return a


def _check_labels(a: np.ndarray, frames: int, name: str) -> None:
    if a.size == 0:
        return
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > frames:
        bad = lo if lo < 0 else hi
        raise ParameterError(
            f"{name}: label {bad} is no frame: the stack has {frames} frames (0 keeps the automatic result, "
            f"1-{frames} take frames 1-{frames} in input order)"
        )


@dataclass
class RetouchPatch:
    """The new values of one window of a retouched result (:meth:`Retouch.compute`).

    Attributes
    ----------
    window : (y0, y1, x0, x1)
        Where it goes, in output pixels.
    mask : ndarray
        The mask over the window, as applied.
    image, depth_raw, confidence : ndarray
    depth : ndarray or None
        The regularised depth map's window (None when the result has none).
    """

    window: tuple[int, int, int, int]
    mask: np.ndarray
    image: np.ndarray
    depth_raw: np.ndarray
    confidence: np.ndarray
    depth: np.ndarray | None = None

    @property
    def slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.window
        return slice(y0, y1), slice(x0, x1)


class Retouch:
    """A fused result being retouched: updated by the bounding box of each change of the mask.

    Parameters
    ----------
    result : StackResult
        The automatic result (kept unchanged: erasing a label gives its pixels back exactly).
    inputs
        The stack that was fused (anything :meth:`FocusStacker.stack` takes); only the painted
        frames are read again, each once while the cache holds it.
    backend : Backend or str, optional
        Where the blend runs (default: the CPU).
    cache_bytes : int, optional
        Decoded frames kept for the next strokes (default :data:`DEFAULT_CACHE_BYTES`).
    in_place : bool
        Retouch ``result``'s own arrays (what a viewer shows) and keep a copy
        of the automatic ones; default: work on copies, ``result`` unchanged.

    Attributes
    ----------
    image, depth_raw, confidence, depth : ndarray
        The retouched result so far (``depth`` None when the result has none).
    mask : ndarray
        The mask applied so far (uint16).

    Examples
    --------
    >>> from napari_focus_stack import FocusStacker
    >>> from napari_focus_stack.synthetic import make_stack
    >>> stack = make_stack("checker", shape=(96, 128), n_frames=4)
    >>> result = FocusStacker(device="cpu").stack(stack.frames)
    >>> retouch = Retouch(result, stack.frames)
    >>> mask = np.zeros((96, 128), np.uint8)
    >>> mask[20:60, 30:90] = 2          # take the second frame there
    >>> retouch.update(mask)            # the window that changed
    (0, 92, 0, 122)
    >>> float(retouch.depth_raw[40, 60]), float(retouch.confidence[40, 60])
    (1.0, 1.0)
    """

    def __init__(
        self, result: StackResult, inputs: Any, backend: Backend | str | None = None,
        cache_bytes: int | None = None, in_place: bool = False,
    ):
        self.source = inputs if isinstance(inputs, FrameSource) else FrameSource.from_inputs(inputs)
        n = len(self.source)
        if len(result.transforms) != n:
            raise ParameterError(
                f"the result has {len(result.transforms)} frames and the inputs {n}: give the stack that was fused"
            )
        self.backend = backend if isinstance(backend, Backend) else get_backend(backend or "cpu")
        params = result.report.parameters
        self.scale = int(params.get("scale_factor", 1))
        self.upscaled = bool(params.get("upscale_output", False)) and self.scale > 1
        frame_shape = self.source.shape[:2]
        # as the fusion warps them: frames that hardly move are taken as they are
        self.transforms = [unwarped(m, frame_shape) for m in result.transforms]
        self.gains = [None if f.gain is None else np.asarray(f.gain, np.float64) for f in result.report.frames]
        self.names = list(self.source.names)
        self.shape = output_shape(result)
        self.dtype = np.dtype(result.image.dtype)
        self.peak = full_scale(self.dtype)
        copied = _copied(result)
        if in_place:  # the automatic result is the copy
            self.automatic = copied
        else:
            self.automatic, result = result, copied
        self.image, self.depth_raw, self.confidence, self.depth = (
            result.image, result.depth_raw, result.confidence, result.depth
        )
        self.mask = np.zeros(self.shape, np.uint16)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = DEFAULT_CACHE_BYTES if cache_bytes is None else int(cache_bytes)
        self._lock = threading.Lock()

    @property
    def frames(self) -> int:
        return len(self.transforms)

    # ------------------------------------------------------------ the mask
    def check(self, mask: Any, name: str = "the retouch mask") -> np.ndarray:
        """``mask`` checked for this result (see :func:`check_mask`), excluded frames refused."""
        a = check_mask(mask, self.shape, self.frames, name=name)
        self._check_excluded(a, name)
        return a

    def _check_excluded(self, labels: np.ndarray, name: str) -> None:
        if labels.size == 0:
            return
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=self.frames + 1))
        for k in present:
            if k and self.transforms[k - 1] is None:
                frame = self.automatic.report.frames[k - 1]
                why = f" ({frame.reason})" if frame.reason else ""
                raise ParameterError(
                    f"{name}: label {k} takes frame {k} ({frame.name}), which was excluded from the stack{why}; "
                    "paint another frame there, or 0 for the automatic result"
                )

    def window(self, region: tuple[int, int, int, int]) -> tuple[tuple, tuple]:
        """``(outer, inner)`` for a change of the mask within ``region`` (y0, y1, x0, x1).

        ``inner`` is what the change can alter: the region grown by
        :data:`REACH`. ``outer`` is what computing it reads: ``inner`` grown
        by the pyramid's reach again, its corner on the :data:`GRID`.
        """
        h, w = self.shape
        y0, y1, x0, x1 = (int(v) for v in region)
        inner = (max(0, y0 - REACH), min(h, y1 + REACH), max(0, x0 - REACH), min(w, x1 + REACH))
        return self._outer(inner), inner

    def _outer(self, inner: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """What computing ``inner`` reads: grown by :data:`REACH`, its corner on the :data:`GRID`."""
        h, w = self.shape
        a, b, c, d = inner
        return (max(0, (a - REACH) // GRID * GRID), min(h, b + REACH), max(0, (c - REACH) // GRID * GRID),
                min(w, d + REACH))

    def changed_region(self, mask: Any) -> tuple[int, int, int, int] | None:
        """The bounding box (y0, y1, x0, x1) where ``mask`` differs from the mask applied, None where nowhere."""
        diff = np.asarray(mask) != self.mask
        rows = np.flatnonzero(diff.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(diff[rows[0]: rows[-1] + 1].any(axis=0))
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

    # ------------------------------------------------------------- updates
    def update(self, mask: Any, region: tuple[int, int, int, int] | None = None) -> tuple | None:
        """Apply ``mask`` (a change within ``region``, default: wherever it differs); the window changed, or None."""
        patch = self.compute(mask, region)
        if patch is None:
            return None
        self.apply(patch)
        return patch.window

    def compute(self, mask: Any, region: tuple[int, int, int, int] | None = None) -> RetouchPatch | None:
        """The new values where a change of ``mask`` within ``region`` has an effect; nothing is applied.

        Reads only the automatic result and the frames (never what
        :meth:`apply` writes), so it may run on a worker thread while the
        GUI shows the result.

        Parameters
        ----------
        mask : array-like (rows, cols)
            The whole mask; only the window around ``region`` is read.
        region : (y0, y1, x0, x1), optional
            Where it changed (a brush stroke's bounding box); default: found
            by comparing with the mask applied so far, and the whole mask is
            checked.

        Returns
        -------
        RetouchPatch or None
            None when nothing changed.

        Raises
        ------
        ParameterError
            A label that is no frame, or takes an excluded frame.
        """
        if region is None:
            full = check_mask(mask, self.shape, self.frames)
            region = self.changed_region(full)
            if region is None:
                return None
        elif np.shape(mask)[:2] != self.shape:
            check_mask(mask, self.shape, self.frames)  # says what is wrong
        outer, inner = self.window(region)
        oy, ox = outer[0], outer[2]
        own = (slice(inner[0] - oy, inner[1] - oy), slice(inner[2] - ox, inner[3] - ox))
        labels = np.array(mask[outer[0]: outer[1], outer[2]: outer[3]])  # a copy: painting may go on meanwhile
        if labels.dtype == np.bool_:
            labels = labels.astype(np.uint8)
        if labels.dtype.kind not in "ui":
            check_mask(labels, labels.shape, self.frames)  # says what is wrong
        _check_labels(labels, self.frames, "the retouch mask")
        self._check_excluded(labels, "the retouch mask")
        auto = self.automatic
        at = (slice(inner[0], inner[1]), slice(inner[2], inner[3]))
        patch = RetouchPatch(
            inner, labels[own].astype(np.uint16), auto.image[at].copy(), auto.depth_raw[at].copy(),
            auto.confidence[at].copy(), None if auto.depth is None else auto.depth[at].copy(),
        )
        for block in _blocks(inner, BLOCK):
            bo = self._outer(block)
            self._blend(bo, labels[bo[0] - oy: bo[1] - oy, bo[2] - ox: bo[3] - ox], block, patch)
        return patch

    def apply(self, patch: RetouchPatch) -> None:
        """Write a patch into :attr:`image`, the maps and :attr:`mask` (on the GUI thread in napari)."""
        at = patch.slices
        self.image[at] = patch.image
        self.depth_raw[at] = patch.depth_raw
        self.confidence[at] = patch.confidence
        if self.depth is not None:
            self.depth[at] = patch.depth
        self.mask[at] = patch.mask

    def reset(self) -> tuple | None:
        """Erase the whole mask: the automatic result again; the window changed, or None."""
        return self.update(np.zeros(self.shape, np.uint16))

    # --------------------------------------------------------------- reads
    def sharpest_labels(self, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The label of the automatically sharpest frame (rounded depth + 1) over ``window`` (default: all)."""
        y0, y1, x0, x1 = window or (0, self.shape[0], 0, self.shape[1])
        depth = self.automatic.depth if self.automatic.depth is not None else self.automatic.depth_raw
        d = np.nan_to_num(depth[y0:y1, x0:x1], nan=0.0)
        labels = np.clip(np.rint(d), 0, self.frames - 1).astype(np.uint16) + 1
        excluded = [k + 1 for k, m in enumerate(self.transforms) if m is None]
        if excluded:  # a regularised depth can lie on an excluded frame's index
            labels[np.isin(labels, excluded)] = 0
        return labels

    def frame_at(self, y: int, x: int) -> int | None:
        """The frame (from 0) the result shows at pixel (y, x): the painted one, else the sharpest; None outside."""
        h, w = self.shape
        if not (0 <= y < h and 0 <= x < w):
            return None
        k = int(self.mask[y, x])
        if k:
            return k - 1
        label = int(self.sharpest_labels((y, y + 1, x, x + 1))[0, 0])
        return label - 1 if label else None

    def result(self, copy: bool = True) -> StackResult:
        """The retouched :class:`StackResult`: the mask in ``retouch``, pixels per frame in the report."""
        counts = np.bincount(self.mask.ravel(), minlength=self.frames + 1)
        report = dataclasses.replace(
            self.automatic.report,
            frames=[dataclasses.replace(f, retouched_pixels=int(counts[k + 1]))
                    for k, f in enumerate(self.automatic.report.frames)],
        )
        take = (lambda a: None if a is None else a.copy()) if copy else (lambda a: a)
        return dataclasses.replace(
            self.automatic, image=take(self.image), depth_raw=take(self.depth_raw),
            confidence=take(self.confidence), depth=take(self.depth), report=report,
            retouch=take(self.mask) if counts[1:].any() else None,
        )

    # ------------------------------------------------------------- helpers
    def _frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as stored, from the cache or decoded (and cached within the budget)."""
        with self._lock:
            frame = self._cache.get(i)
            if frame is not None:
                self._cache.move_to_end(i)
                return frame
        frame = self.source.read(i)
        with self._lock:
            if frame.nbytes <= self._cache_bytes:
                self._cache[i] = frame
                while sum(f.nbytes for f in self._cache.values()) > self._cache_bytes:
                    self._cache.popitem(last=False)
        return frame

    def _warped(self, i: int, window: tuple[int, int, int, int]) -> tuple[Any, Any]:
        """Frame ``i`` over an output window as the fusion sees it, at the output's resolution: (float, valid)."""
        bk, s = self.backend, self.scale
        frame = self._frame(i)
        if s == 1 or self.upscaled:
            warped, valid = warp_into_window(bk, frame, self.transforms[i], self.gains[i], window, s,
                                             self.source.dtype)
        else:  # fused at s times, brought back by block means (pipeline._finish)
            y0, y1, x0, x1 = window
            work = (y0 * s, y1 * s, x0 * s, x1 * s)
            warped, valid = warp_into_window(bk, frame, self.transforms[i], self.gains[i], work, s, self.source.dtype)
            warped = block_mean(bk.xp, warped, s)
            valid = None if valid is None else block_all(bk.xp, valid, s)
        return warped, valid

    def _blend(self, outer: tuple, labels: np.ndarray, inner: tuple, patch: RetouchPatch) -> None:
        """Blend the painted frames over ``inner`` (a part of ``patch``), reading the window ``outer``."""
        bk = self.backend
        xp = bk.xp
        y0, y1, x0, x1 = outer
        own = (slice(inner[0] - y0, inner[1] - y0), slice(inner[2] - x0, inner[3] - x0))
        py, px = patch.window[0], patch.window[2]
        dst = (slice(inner[0] - py, inner[1] - py), slice(inner[2] - px, inner[3] - px))
        image, depth_raw, confidence = patch.image[dst], patch.depth_raw[dst], patch.confidence[dst]
        depth = None if patch.depth is None else patch.depth[dst]
        present = [int(k) for k in np.flatnonzero(np.bincount(labels.ravel(), minlength=2)) if k]
        if not present:
            return
        base = to_unit_float(bk, self.automatic.image[y0:y1, x0:x1], self.peak)
        levels = min(BLEND_LEVELS, pyramid.n_levels(base.shape, min_size=2))
        bands = None
        for k in present:
            frame, valid = self._warped(k - 1, outer)
            hit = bk.asarray(labels) == k
            if valid is not None:
                hit &= valid
            if not bool(hit.any()):
                continue
            hit_host = bk.to_numpy(hit)[own]
            # depth and confidence: set by hand, no blend (a frame index is not mixed)
            depth_raw[hit_host] = k - 1
            confidence[hit_host] = HAND_SET_CONFIDENCE
            if depth is not None:
                depth[hit_host] = k - 1
            diff = frame - base
            diff = xp.where(xp.isfinite(diff), diff, xp.float32(0))  # missing data blends as no change
            weights = pyramid.gaussian_pyramid(bk, hit.astype(xp.float32), levels)
            lap = pyramid.laplacian_pyramid(bk, diff, levels, overwrite=True)
            for level, (w, band) in enumerate(zip(weights, lap, strict=True)):
                band *= w[..., None] if band.ndim == 3 else w
                if bands is None:
                    continue
                bands[level] += band
            if bands is None:
                bands = lap
        if bands is None:
            return
        correction = pyramid.collapse(bk, bands, overwrite=True)[own]
        moved = correction != 0
        if moved.ndim == 3:
            moved = moved.any(axis=2)
        new = base[own] + correction
        new = cast_to(bk.to_numpy(new), self.dtype, self.peak)
        moved = bk.to_numpy(moved)
        # exactly the automatic pixels wherever the blend does not reach
        image[moved] = new[moved]


def _blocks(window: tuple[int, int, int, int], side: int):
    """``window`` (y0, y1, x0, x1) cut into blocks of at most ``side`` x ``side``."""
    y0, y1, x0, x1 = window
    for y in range(y0, y1, side):
        for x in range(x0, x1, side):
            yield y, min(y1, y + side), x, min(x1, x + side)


def _copied(result: StackResult) -> StackResult:
    """``result`` with copies of its arrays."""
    def copy(a):
        return None if a is None else a.copy()

    return dataclasses.replace(result, image=copy(result.image), depth_raw=copy(result.depth_raw),
                               confidence=copy(result.confidence), depth=copy(result.depth))


def apply_retouch(
    result: StackResult, inputs: Any, mask: Any, backend: Backend | str | None = None
) -> StackResult:
    """``result`` with the frames the retouch mask names blended in (see the module's description).

    Parameters
    ----------
    result : StackResult
        The automatic result (not changed).
    inputs
        The stack that was fused.
    mask : array-like (rows, cols) of int
        0 keeps the automatic result, k > 0 takes frame k (from 1, input order).
    backend : Backend or str, optional

    Returns
    -------
    StackResult
        New arrays; ``retouch`` holds the mask, each frame report its ``retouched_pixels``.

    Raises
    ------
    ParameterError
        The mask does not fit (size, labels) or names an excluded frame.
    """
    retouch = Retouch(result, inputs, backend, cache_bytes=0)
    retouch.update(retouch.check(mask))
    return retouch.result(copy=False)
