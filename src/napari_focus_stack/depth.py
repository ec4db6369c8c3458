"""The depth map made to measure: confident depths kept, the rest filled edge-aware; heights in units.

The raw depth map (the fractional index of the sharpest frame) is crisp
where the scene has texture and noise where it has none: a plain surface
gives every frame the same (tiny) focus energy, so its "sharpest" frame is
chance. The fusion's confidence tells the two apart. The regularised map

1. keeps the depth of confident pixels;
2. fills the others from the confident pixels they are connected to
   without crossing an edge of the fused image: a confidence-weighted
   normalised convolution whose distances are those of the domain
   transform (an edge is as far as most of the image). Confident depths
   beside a strong edge count little, for they are the depth of whichever
   side is in front: a plain object in front takes its outline's depth (it
   has nothing else), a plain background behind it its own specks' (its
   outline is the object's). Where the nearest confident pixels are far,
   the depths reaching a pixel are taken by clusters and the weightiest
   wins: a plain area takes the depth of one surface, not a blend of the
   surfaces around it that none of them has;
3. is computed on a grid of at most 256 pixels a side and brought back to
   full resolution with a guided filter whose guide is the fused image, so
   that edges fall where the image has them.

A depth is a (fractional) frame index; a height is its place in physical units,
``z0 + index * z_step`` (:func:`to_height`): the calibrated depth map of
microscope data, which ``--depth-map`` writes when the z step is known.

References
----------
.. [1] H. Knutsson, C.-F. Westin, "Normalized and differential convolution",
   CVPR 1993.
.. [2] E. S. L. Gastal, M. M. Oliveira, "Domain transform for edge-aware
   image and video processing", ACM Trans. Graph. 30(4), 2011 (the
   recursive filter of section 4.2).
.. [3] K. He, J. Sun, X. Tang, "Guided image filtering", IEEE TPAMI 35(6),
   2013.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend

__all__ = ["CONFIDENT", "confidence_weights", "regularise_depth", "fill_depth", "guided_coefficients", "to_height"]

# Confidence from which a depth is trusted as measured. The fusion's
# confidence (focus.DepthTracker.result) is the clarity of the focus peak,
# (best - mean) / (best + typical) of the focus energy over the frames, times
# checks that it stands out of noise and is the pixel's own: 0.05 is a peak
# 5 % clear of the average that passes them, which noise on a plain surface
# does not reach.
CONFIDENT = 0.05

# Regularisation of the guided filter, relative to the guide's squared
# spread: intensity steps weaker than ~3 % of the image's range are not edges.
_GUIDE_EPS = 1e-3


def confidence_weights(xp, confidence: Any) -> Any:
    """Weights 0..1 of each depth: 1 from :data:`CONFIDENT` up, falling quadratically below."""
    w = xp.clip(confidence * xp.float32(1.0 / CONFIDENT), 0.0, 1.0)
    return (w * w).astype(xp.float32)


# The fill and the guided filter's models are computed on a grid at most this
# many pixels a side: they carry only what confident pixels do not, which
# varies slowly.
_GRID_SIDE = 256
# The fill's reaches (fractions of the grid's long side), finest first, and
# the guide step that counts as much as the longest: the guide is scaled to a
# spread of 1, so a step of 2 % of it is as far as the whole grid. Each reach
# is used as far as the confident weight it gathers is _FILL_SUPPORT of that
# of a fully confident neighbourhood, the next longer one elsewhere.
_FILL_REACHES = (1 / 16, 1 / 4, 1.0)
_FILL_SIGMA_R = 0.02
_FILL_SUPPORT = 0.5
# Edges of the guide: a step of _EDGE_STEP or more across _EDGE_SPAN grid
# pixels of the guide smoothed by as many (a speck of dust is no edge). The
# confident depths within the focus measure's reach of an edge (regularise_depth's
# ``edge_reach``) are the nearer side's: the measure sees the edge from both
# sides, and an occluding edge belongs to the object in front. They count
# _EDGE_WEIGHT in the fill.
_EDGE_STEP = 0.15
_EDGE_SPAN = 2
_EDGE_WEIGHT = 1e-3
# Where less than this share of all the weight reaches a pixel, it takes the mean depth.
_FILL_TINY = 1e-12
# The longest reach sorts the depths into at most _FILL_BINS bins of equal width (one per frame in
# short stacks) and takes the mean depth of the weightiest run of _FILL_CLUSTER adjacent bins: on the
# board scene with JPEG frames, seeds 0-5, plain pixels within a frame 81-93 -> 84-95 %, and no
# synthetic case worse than with the plain mean (docs/benchmarks.md).
_FILL_BINS = 16
_FILL_CLUSTER = 3


def _upsample_axis(xp, a: Any, size: int, axis: int) -> Any:
    """Twice the samples along ``axis``: coarse sample ``j`` lands on fine ``2j``, odd samples are
    midpoints, and one past the last is extrapolated linearly (ramps stay ramps up to the border)."""
    a = xp.moveaxis(a, axis, 0)
    n = a.shape[0]
    out = xp.empty((size,) + a.shape[1:], dtype=a.dtype)
    even = (size + 1) // 2
    out[0::2] = a[:even]
    odd = size // 2
    if odd:
        inner = min(odd, n - 1)
        out[1 : 2 * inner : 2] = 0.5 * (a[:inner] + a[1 : inner + 1])
        if odd > inner:  # beyond the last coarse sample
            last = a[n - 1] if n < 2 else 1.5 * a[n - 1] - 0.5 * a[n - 2]
            out[2 * inner + 1] = last
    return xp.moveaxis(out, 0, axis)


def upsample_linear(xp, a: Any, shape: tuple[int, int]) -> Any:
    """Linear interpolation from a pyramid level to the next finer one (see :mod:`pyramid`'s grid)."""
    return _upsample_axis(xp, _upsample_axis(xp, a, shape[0], 0), shape[1], 1)


def fill_depth(bk: Backend, depth: Any, weights: Any, guide: Any | None = None, edge_reach: int = 1) -> Any:
    """Confidence-weighted, edge-aware interpolation of a depth map.

    Every pixel takes the weighted mean of the confident depths, each
    weighted by its confidence times an affinity that falls with the
    distance to it along the image: the domain transform's recursive filter,
    in which a step of the guide counts as the grid's side per
    ``_FILL_SIGMA_R``. So a plain region takes the depth of the confident
    pixels it is connected to without crossing an edge of the guide, at any
    distance; where confident pixels are near, of the nearest ones (the
    shortest of :data:`_FILL_REACHES` that gathers enough of them). At the
    longest reach the mean is that of the weightiest cluster of depths
    (:data:`_FILL_BINS`), so that surfaces far apart in depth are not blended.

    Parameters
    ----------
    bk : Backend
    depth, weights : arrays (H, W)
        Depth values and their weights in 0..1.
    guide : array (H, W[, C]), optional
        The image whose edges the fill follows, each channel scaled to a
        spread of about 1; without it distances are plain distances.
    edge_reach : int
        Confident depths this close (px) to a strong edge of the guide
        belong to whichever side is in front, and count little (see
        :data:`_EDGE_WEIGHT`).

    Returns
    -------
    array (H, W) float32
    """
    xp = bk.xp
    weights = weights.astype(xp.float64)
    total = float(weights.sum())
    if total <= 0:  # nothing is confident: a flat map at the mean depth
        return xp.full(depth.shape, float(depth.mean()), dtype=xp.float32)
    h, w = depth.shape
    side = max(h, w)
    depth = depth.astype(xp.float64)
    steps = [xp.ones((h, w - 1)), xp.ones((h - 1, w))]
    counted = weights
    if guide is not None:
        g = guide[..., None] if guide.ndim == 2 else guide
        channels = range(g.shape[2])
        # an edge in any channel is an edge; smoothed first, so that noise does not cut the fill short
        smooth = xp.stack([bk.gaussian_filter(g[..., c], 1.0) for c in channels], axis=-1).astype(xp.float64)
        steps = [1 + (side / _FILL_SIGMA_R) * xp.abs(xp.diff(smooth, axis=axis)).max(axis=2) for axis in (1, 0)]
        counted = weights * xp.where(_near_edges(bk, g, edge_reach), _EDGE_WEIGHT, 1.0)
    # the longest reach, as far as the region does: the weightiest cluster of the depths reaching a pixel
    near = _binned(xp, depth, counted, weights > 0)
    _domain_transform(xp, near, steps, _FILL_REACHES[-1] * side)
    value = _weightiest_cluster(xp, near)
    share = (near[..., 0::2].sum(axis=2) > _FILL_TINY * total).astype(xp.float64)
    filled = share * value + (1 - share) * (float((weights * depth).sum()) / total)
    # each shorter reach where it gathers enough confident weight: the mean of the depths
    sums = xp.stack([counted, counted * depth], axis=-1)
    for reach in reversed(_FILL_REACHES[:-1]):
        near = sums.copy()
        _domain_transform(xp, near, steps, reach * side)
        value = near[..., 1] / xp.maximum(near[..., 0], 1e-300)
        share = xp.clip(near[..., 0] / _FILL_SUPPORT, 0.0, 1.0)
        filled = share * value + (1 - share) * filled
    return filled.astype(xp.float32)


def _binned(xp, depth: Any, weights: Any, measured: Any) -> Any:
    """(H, W, 2B): per depth bin (:data:`_FILL_BINS` at most, over the range of the ``measured`` depths)
    the weight of the depths in it and their weighted sum."""
    lo, hi = float(depth[measured].min()), float(depth[measured].max())
    n = max(1, min(_FILL_BINS, math.ceil(hi - lo) + 1))
    index = xp.clip(((depth - lo) * (n / max(hi - lo, 1e-6))).astype(xp.int32), 0, n - 1)
    out = xp.zeros(depth.shape + (2 * n,))
    for k in range(n):
        out[..., 2 * k] = xp.where(index == k, weights, 0.0)
        out[..., 2 * k + 1] = out[..., 2 * k] * depth
    return out


def _weightiest_cluster(xp, binned: Any) -> Any:
    """The mean depth of the run of :data:`_FILL_CLUSTER` adjacent bins of ``binned`` (see :func:`_binned`)
    that holds the most weight, per pixel."""
    pad = _FILL_CLUSTER // 2
    w = xp.pad(binned[..., 0::2], ((0, 0), (0, 0), (pad, pad)))
    d = xp.pad(binned[..., 1::2], ((0, 0), (0, 0), (pad, pad)))
    n = binned.shape[2] // 2
    w = sum(w[..., k: k + n] for k in range(_FILL_CLUSTER))
    d = sum(d[..., k: k + n] for k in range(_FILL_CLUSTER))
    best = xp.argmax(w, axis=2)[..., None]
    return (xp.take_along_axis(d, best, 2) / xp.maximum(xp.take_along_axis(w, best, 2), 1e-300))[..., 0]


def _near_edges(bk: Backend, g: Any, reach: int) -> Any:
    """Pixels within ``reach`` of a strong edge of ``g`` (H, W, C): see :data:`_EDGE_STEP`."""
    xp = bk.xp
    k = _EDGE_SPAN
    h, w = g.shape[:2]
    coarse = xp.stack([bk.gaussian_filter(g[..., c], k) for c in range(g.shape[2])], axis=-1)
    edge = xp.zeros((h, w), bool)
    if w > 2 * k:
        edge[:, k:-k] = xp.abs(coarse[:, 2 * k:] - coarse[:, :-2 * k]).max(axis=2) > _EDGE_STEP
    if h > 2 * k:
        edge[k:-k] |= xp.abs(coarse[2 * k:] - coarse[:-2 * k]).max(axis=2) > _EDGE_STEP
    return bk.max_filter(edge.astype(xp.float32), 2 * int(reach) + 1) > 0


def _domain_transform(xp, a: Any, steps: list, sigma_s: float, iterations: int = 3) -> None:
    """The domain transform's recursive filter of ``a`` (H, W, K), in place.

    ``steps`` are the transformed distances between horizontal neighbours
    (H, W - 1) and vertical ones (H - 1, W). Each iteration filters the rows
    then the columns, left to right and back, with a kernel that narrows
    from one iteration to the next so that the result approximates a
    filter of ``sigma_s`` (Gastal and Oliveira 2011, section 4.2).
    """
    for i in range(iterations):
        sigma = sigma_s * np.sqrt(3.0) * 2.0 ** (iterations - 1 - i) / np.sqrt(4.0**iterations - 1)
        feedback = np.exp(-np.sqrt(2.0) / sigma)
        for axis, step in ((1, steps[0]), (0, steps[1])):
            v = xp.moveaxis(a, axis, 0)  # a view: the loop runs along the first axis
            f = xp.moveaxis(feedback**step, axis, 0)[..., None]
            for j in range(1, v.shape[0]):
                v[j] += f[j - 1] * (v[j - 1] - v[j])
            for j in range(v.shape[0] - 2, -1, -1):
                v[j] += f[j] * (v[j + 1] - v[j])


def guided_coefficients(bk: Backend, guide: Any, src: Any, radius: int, eps: float) -> tuple[Any, Any]:
    """Guided filter: the local linear models ``src ~ a * guide + b``.

    In every window of side ``2 * radius + 1`` the source is fitted as a
    linear function of the guide. The filtered map is ``a * guide + b``,
    where ``a`` and ``b`` (returned) average the fits covering a pixel; they
    vary slowly, so they can be computed on a coarse grid and upsampled
    ("fast guided filter").

    Parameters
    ----------
    guide : array (H, W)
        Gray fused image, scaled to a spread of about 1.
    src : array (H, W)
        The map to filter.
    radius : int
        Window radius in pixels.
    eps : float
        Regularisation: guide variations whose variance is below it are
        treated as flat.
    """
    xp = bk.xp
    size = 2 * int(radius) + 1

    def box(a: Any) -> Any:
        return bk.box_filter(a, size)

    mean_i = box(guide)
    mean_p = box(src)
    cov = box(guide * src) - mean_i * mean_p
    var = box(guide * guide) - mean_i * mean_i
    a = cov / (xp.maximum(var, 0) + eps)
    b = mean_p - a * mean_i
    return box(a), box(b)


def _reduce(bk: Backend, a: Any, times: int) -> Any:
    """``times`` Gaussian pyramid reductions (level-``times`` grid of :mod:`pyramid`)."""
    for _ in range(times):
        a = pyramid.reduce(bk, a)
    return a


def _expand(xp, a: Any, shapes: list) -> Any:
    """Back up the pyramid through ``shapes`` (coarsest last) to ``shapes[0]``, as float32."""
    a = a.astype(xp.float32)
    for shape in reversed(shapes[:-1]):
        a = upsample_linear(xp, a, shape)
    return a


def regularise_depth(
    bk: Backend,
    depth: Any,
    confidence: Any,
    guide: Any | None = None,
    radius: int = 16,
    edge_reach: float = 20.0,
) -> Any:
    """A continuous depth map: confident depths kept, the rest filled edge-aware.

    The fill (:func:`fill_depth`) and the guided filter's models
    (:func:`guided_coefficients`) run on the first Gaussian pyramid level at
    most ``_GRID_SIDE`` pixels a side: the filled part varies slowly, and the
    models are evaluated against the full-resolution guide, which puts edges
    back where the image has them. The fused image is the guide only: it is
    not changed.

    Parameters
    ----------
    bk : Backend
    depth : array (H, W) float32
        Raw depth (fractional frame index).
    confidence : array (H, W) float32
        The fusion's 0..1 confidence.
    guide : array (H, W[, C]), optional
        The fused image (colour or gray: an edge of hue is an edge); without
        it the fill is not edge-aware.
    radius : int
        Window radius (px of ``depth``) of the edge-aware step.
    edge_reach : float
        How far (px of ``depth``) the focus measure's window reaches: a
        confident depth this close to a strong edge of the guide may be the
        edge's, and counts little in the fill.

    Returns
    -------
    array (H, W) float32
        Confident pixels (confidence >= :data:`CONFIDENT`) keep their depth;
        the others blend towards the fill as their confidence falls. Every
        value lies within the range of the measured depths.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_focus_stack._backend import get_backend
    >>> depth = np.full((32, 32), 3.0, np.float32)
    >>> depth[10:20, 10:20] = 9.0  # noise where nothing was confident
    >>> conf = np.full((32, 32), 0.5, np.float32)
    >>> conf[10:20, 10:20] = 0.0
    >>> out = regularise_depth(get_backend("cpu"), depth, conf)
    >>> bool(np.allclose(out, 3.0, atol=1e-3))
    True
    """
    xp = bk.xp
    depth = xp.asarray(depth, dtype=xp.float32)
    weights = confidence_weights(xp, xp.asarray(confidence, dtype=xp.float32))
    if bool((weights >= 1).all()):
        return depth.copy()
    shapes = [depth.shape]
    while max(shapes[-1]) > _GRID_SIDE:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    times = len(shapes) - 1
    w_small = _reduce(bk, weights, times)
    d_small = _reduce(bk, depth * weights, times) / xp.maximum(w_small, 1e-30)
    if guide is None:
        smooth = _expand(xp, fill_depth(bk, d_small, w_small), shapes)
    else:
        guide = xp.asarray(guide, dtype=xp.float32)
        # the fill's edges from every channel, on the grid; the guided filter's from one image, at full size too
        colour = _spread_one(xp, _reduce(bk, guide, times))
        filled = fill_depth(bk, d_small, w_small, colour, edge_reach=max(1, math.ceil(edge_reach / 2**times)))
        g = _spread_one(xp, bk.to_gray(guide))
        g_small = _reduce(bk, g, times)
        radius = max(1, round(radius / 2**times))
        # the fill is complete: every pixel counts alike in the models that bring it to full resolution
        a, b = guided_coefficients(bk, g_small, filled, radius, _GUIDE_EPS)
        smooth = _expand(xp, a, shapes) * g
        smooth += _expand(xp, b, shapes)
        # the guided filter's linear models overshoot at strong edges; a fill never leaves the measured range
        finite = xp.isfinite(depth)
        if bool(finite.any()):
            smooth = xp.clip(smooth, xp.min(depth[finite]), xp.max(depth[finite]))
    return (weights * depth + (1 - weights) * smooth).astype(xp.float32, copy=False)


def _spread_one(xp, g: Any) -> Any:
    """Each channel of ``g`` scaled to a spread of 1 between its 0.5th and 99.5th percentiles."""
    flat = g[::4, ::4].reshape(-1, 1 if g.ndim == 2 else g.shape[2])
    lo, hi = xp.percentile(flat, xp.asarray([0.5, 99.5]), axis=0).astype(xp.float32)
    scale = xp.float32(1.0) / xp.maximum(hi - lo, xp.float32(1e-12))
    return ((g - lo.reshape(-1)) * scale.reshape(-1) if g.ndim == 3 else (g - lo[0]) * scale[0]).astype(xp.float32)


def to_height(depth: np.ndarray, z_step: float | None, z0: float = 0.0) -> np.ndarray:
    """Height ``z0 + depth * z_step`` (float32); the frame index itself without a step."""
    depth = np.asarray(depth, dtype=np.float32)
    if z_step is None:
        return depth.copy()
    return (np.float32(z0) + depth * np.float32(z_step)).astype(np.float32, copy=False)
