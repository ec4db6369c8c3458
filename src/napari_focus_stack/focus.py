"""Focus measures and the streaming depth estimate built on them.

The focus measure is the energy of the finest Laplacian band (a
difference-of-Gaussians Laplacian), summed over colour channels, averaged
over a box of ``radius`` pixels and smoothed by a Gaussian of ``smoothing``
pixels. It is computed on a half-resolution grid (2x2 block means), which
costs a quarter of the work and loses nothing at the window sizes used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import Backend, block_all, block_mean, upsample_blocks

__all__ = [
    "focus_measure", "local_energy", "measure_reach", "quantile", "smooth_measure", "block_mean", "upsample_blocks",
    "DepthTracker",
]

# The depth's confidence (DepthTracker.result) is the clarity of its focus peak
# times checks that the peak is real and this pixel's own:
# - signal: the peak over the pixel's noise floor (the smallest measure of any
#   frame). Noise alone makes peaks of up to about twice the floor (frames
#   resampled by the alignment are less noisy than the reference); from
#   SIGNAL[0] times the floor a peak starts to count, from SIGNAL[1] fully.
SIGNAL = (2.5, 4.0)
# - evidence: the best frame's energy in a small window (Gaussian of
#   LOCAL_SIGMA px of the half-resolution grid) against the largest such
#   energy within the measure's window. The wide window's choice is that of
#   its strongest detail: a plain pixel beside an edge, or one with weak
#   detail, takes the edge's depth (and a sharp edge's JPEG ringing is
#   strongest in the frame where the edge is sharp). From EVIDENCE of the
#   strongest, a pixel's own detail counts fully.
LOCAL_SIGMA = 0.5
EVIDENCE = 0.03
# - agreement: in its own small window the pixel is sharpest in the frame its
#   wide window chose, or nearly: the chosen frame's small-window energy over
#   the largest of any frame counts for nothing up to AGREE[0] and fully from
#   AGREE[1]. Beside an edge between two depths the wide window sees both
#   sides' frames, the small one its own side's.
AGREE = (0.5, 0.9)
# - kept: the fused image keeps the chosen frame's detail there. Its finest
#   band's small-window energy over the chosen frame's counts for nothing up
#   to KEPT[0] and fully from KEPT[1]. Where the frames' finest bands do not
#   add up (noise, the block artefacts JPEG leaves in a blurred gradient, the
#   defocused spill of a bright edge over a plain stripe) the pyramid fusion
#   averages them, and the chosen frame's peak there was no detail: on the
#   focus-stack depthmap example, far-frame bands over plain white print went
#   from 2.4 to 1.2 % of the regularised map; plain pixels of the board scene
#   within one frame 90-95 -> 92-97 % (seeds 0-2).
KEPT = (0.35, 0.7)


def quantile(xp, v: Any, q: float) -> float:
    """``float(xp.percentile(v, q))`` (linear interpolation) of a non-empty 1D array.

    By partial sorting, without the import of numpy.ma that NumPy's median
    and percentile make (0.01-0.1 s of every run). NaN if ``v`` holds one.
    """
    if bool(xp.isnan(v).any()):
        return float("nan")
    n = int(v.size)
    pos = q / 100.0 * (n - 1)
    k = min(int(pos), n - 1)
    if k + 1 >= n or pos == k:
        return float(xp.partition(v, k)[k])
    part = xp.partition(v, [k, k + 1])
    lo, hi = float(part[k]), float(part[k + 1])
    return lo + (pos - k) * (hi - lo)


def smooth_measure(bk: Backend, a: Any, radius: float, smoothing: float) -> Any:
    """The spatial averaging shared by measures and their validity masks."""
    size = 2 * int(round(radius)) + 1
    if size > 1:
        a = bk.box_filter(a, size)
    if smoothing >= 0.3:
        a = bk.gaussian_filter(a, smoothing, truncate=3.0)
    return a


def focus_measure(
    bk: Backend,
    band: Any,
    radius: float,
    smoothing: float,
    downsample: int = 2,
    valid: Any | None = None,
    weights: Any | None = None,
    energy: Any | None = None,
) -> tuple[Any, Any | None]:
    """Focus measure of a band-pass image, on a grid ``downsample`` times coarser.

    Parameters
    ----------
    band : array (H, W[, C])
        Band-pass (Laplacian pyramid) level of one aligned frame.
    radius, smoothing : float
        Window radius and Gaussian sigma, in pixels of ``band``.
    downsample : int
        Block size of the output grid (1 keeps the band's grid).
    valid : bool array (H, W), optional
        Pixels the frame really covers. The average is then a normalised
        convolution over covered pixels only, so a frame's measure stays
        usable right up to the edge of what it covers.
    weights : sequence of float, optional
        Per-channel weights of the energy (see :meth:`Backend.block_energy`).
    energy : array (H, W), optional
        ``bk.block_energy(band, f, weights)`` on some grid ``f`` when the caller has it
        already; it is then averaged over ``downsample x downsample`` blocks of that grid.

    Returns
    -------
    measure : array (ceil(H / downsample), ceil(W / downsample)) float32
    ok : bool array of the same shape, or None when every pixel is covered
    """
    xp = bk.xp
    if energy is None:
        energy = bk.block_energy(band, downsample, weights)
    else:
        energy = block_mean(xp, energy, downsample).astype(xp.float32, copy=False)
    r, s = radius / downsample, smoothing / downsample
    if valid is None:
        return smooth_measure(bk, energy, r, s), None
    ok = block_all(xp, valid, downsample)
    energy = xp.where(ok, energy, 0)
    weight = smooth_measure(bk, ok.astype(xp.float32), r, s)
    measure = smooth_measure(bk, energy, r, s) / xp.maximum(weight, 1e-6)
    return measure, ok


def measure_reach(radius: float, smoothing: float) -> float:
    """How far (px) the focus measure's window (a box of ``radius``, then a Gaussian of ``smoothing``) reaches."""
    return float(radius) + 3.0 * float(smoothing)


def local_energy(bk: Backend, energy: Any) -> Any:
    """The energy in a small window (see :data:`LOCAL_SIGMA`), from the same block energies as the measure."""
    return smooth_measure(bk, energy, 0, LOCAL_SIGMA)


class DepthTracker:
    """Streaming per-pixel argmax of a focus measure over frames.

    Frames must be given in increasing index order (gaps allowed, for
    excluded frames). Keeps the best value, its frame, and the values of the
    frames just before and after it, for a sub-frame (log-parabolic) peak;
    for the confidence, the best frame's :func:`local_energy`, the largest
    local energy and the smallest measure of any frame.

    Parameters
    ----------
    bk : Backend
    shape : (int, int)
        The measure's grid.
    window : float
        How far (px of that grid) the measure's window reaches (see
        :func:`measure_reach` and :data:`EVIDENCE`).
    """

    def __init__(self, bk: Backend, shape: tuple[int, int], window: float = 4.0):
        xp = bk.xp
        self.bk = bk
        self.window = float(window)
        self.local = xp.zeros(shape, dtype=xp.float32)  # the best frame's local energy
        self.local_peak = xp.zeros(shape, dtype=xp.float32)  # the largest local energy of any frame
        self.low = xp.full(shape, xp.inf, dtype=xp.float32)  # the smallest measure of any frame
        self.best = xp.full(shape, -xp.inf, dtype=xp.float32)
        self.index = xp.full(shape, -1, dtype=xp.int16)  # frames in a stack: far fewer than 32768
        self.before = xp.full(shape, xp.nan, dtype=xp.float32)
        self.after = xp.full(shape, xp.nan, dtype=xp.float32)
        self.last = None
        self.last_index = None
        self.total = xp.zeros(shape, dtype=xp.float32)
        self.count = xp.zeros(shape, dtype=xp.uint16)

    def update(self, i: int, measure: Any, valid: Any | None = None, local: Any | None = None) -> Any:
        """Add frame ``i`` (and its :func:`local_energy`); returns the mask of pixels where it is the new best."""
        xp = self.bk.xp
        # in place: the state is several maps, and a new copy of each per frame is memory and time
        m = measure if valid is None else xp.where(valid, measure, -xp.inf)
        better = m > self.best
        local = measure if local is None else local
        xp.copyto(self.local, local, where=better)
        xp.maximum(self.local_peak, local if valid is None else xp.where(valid, local, 0), out=self.local_peak)
        xp.minimum(self.low, measure if valid is None else xp.where(valid, measure, xp.inf), out=self.low)
        follows = self.last is not None and self.last_index == i - 1
        if follows:
            xp.copyto(self.before, self.last, where=better)
            was_best = (self.index == i - 1) & ~better
            xp.copyto(self.after, m if valid is None else xp.where(valid, m, xp.nan), where=was_best)
        else:
            xp.copyto(self.before, xp.nan, where=better)
        xp.copyto(self.after, xp.nan, where=better)
        xp.copyto(self.best, m, where=better)
        xp.copyto(self.index, i, where=better)
        if valid is None:
            self.total += measure
            self.count += 1
            self.last = measure
        else:
            self.total += xp.where(valid, measure, 0)
            self.count += valid
            self.last = xp.where(valid, measure, xp.nan)
        self.last_index = i
        return better

    def result(self, kept: Any | None = None) -> tuple[Any, Any]:
        """Fractional frame index of the peak and a 0..1 confidence.

        Confidence is the clarity of the peak, ``(best - mean) / (best +
        typical)`` (high where one frame is clearly sharper than the others
        and the region has more focus energy than the median pixel's average,
        ``typical``), lowered where it does not stand out of noise
        (:data:`SIGNAL`) and where the peak is not the pixel's own: where its small window
        holds little next to the strongest detail within the measure's window
        (:data:`EVIDENCE`) or is sharpest in another frame (:data:`AGREE`),
        and, given ``kept`` (the fused result's :func:`local_energy` on this
        grid), where the fusion did not keep the chosen frame's detail
        (:data:`KEPT`).
        """
        xp = self.bk.xp
        eps = 1e-12
        with np.errstate(invalid="ignore", divide="ignore"):  # pixels no frame covered
            lb = xp.log(self.best + eps)
            lp = xp.log(self.before + eps)
            ln = xp.log(self.after + eps)
            den = lp - 2 * lb + ln
            offset = xp.where(xp.isfinite(den) & (den < 0), 0.5 * (lp - ln) / den, 0.0)
            offset = xp.clip(xp.nan_to_num(offset), -0.5, 0.5)
            depth = (xp.maximum(self.index, 0) + offset).astype(xp.float32)
            mean = self.total / xp.maximum(self.count, 1)
            # a clear peak over the other frames, and more focus energy than a
            # typical pixel: flat or featureless areas get low confidence
            floor = quantile(xp, mean[self.count > 0], 50.0) if bool((self.count > 0).any()) else 0.0
            confidence = xp.clip(xp.nan_to_num((self.best - mean) / (self.best + floor + eps)), 0.0, 1.0)
            best = xp.where(self.count > 0, self.best, 0.0).astype(xp.float32)
            signal = best / (xp.where(self.count > 0, self.low, 1.0) + eps)
            confidence *= xp.clip((signal - SIGNAL[0]) / (SIGNAL[1] - SIGNAL[0]), 0.0, 1.0)
            strongest = self.bk.max_filter(self.local, 2 * max(1, int(round(self.window))) + 1)
            confidence *= xp.clip(self.local / (EVIDENCE * strongest + eps), 0.0, 1.0)
            agree = self.local / (self.local_peak + eps)
            confidence *= xp.clip((agree - AGREE[0]) / (AGREE[1] - AGREE[0]), 0.0, 1.0)
            if kept is not None:
                confidence *= xp.clip((kept / (self.local + eps) - KEPT[0]) / (KEPT[1] - KEPT[0]), 0.0, 1.0)
        confidence = xp.where(self.count > 1, confidence, 0.0).astype(xp.float32)
        return depth, confidence
