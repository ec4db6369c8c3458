"""Height maps fit to measure: confident depths kept, the rest filled edge-aware.

The raw depth map (the fractional index of the sharpest frame) is crisp
where the scene has texture and noise where it has none: a plain surface
gives every frame the same (tiny) focus energy, so its "sharpest" frame is
chance. The fusion's confidence tells the two apart. The regularised map

1. keeps the depth of confident pixels;
2. fills the others from confident pixels at any distance, by normalised
   convolution on a Gaussian pyramid ("push-pull": a confidence-weighted
   mean at the finest scale that has enough confident support);
3. makes the fill follow the image's edges with a confidence-weighted
   guided filter whose guide is the fused image, so a plain object is
   filled with its own outline's depth and not with its background's.

Heights in physical units are ``z0 + index * z_step`` (:func:`to_height`).

References
----------
.. [1] S. J. Gortler, R. Grzeszczuk, R. Szeliski, M. F. Cohen, "The
   Lumigraph", SIGGRAPH 1996 (pull-push interpolation of scattered data).
.. [2] H. Knutsson, C.-F. Westin, "Normalized and differential convolution",
   CVPR 1993.
.. [3] K. He, J. Sun, X. Tang, "Guided image filtering", IEEE TPAMI 35(6),
   2013 (the weighted form follows its Section 3 with per-pixel weights).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend

__all__ = ["CONFIDENT", "confidence_weights", "regularise_depth", "fill_depth", "guided_coefficients", "to_height"]

# Confidence from which a depth is trusted as measured. The fusion's
# confidence is (best - mean) / (best + typical) of the focus energy over the
# frames: 0.1 means the sharpest frame stands 10 % clear of the average,
# which noise on a plain surface does not reach.
CONFIDENT = 0.1

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
# Ridge on the slopes of the local planes (in squared pixels of each level,
# times the support): a slope that few pixels (or pixels along a line)
# determine shrinks towards flat.
_SLOPE_RIDGE = 0.01
_TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_OFFSETS = np.arange(-2.0, 3.0)


class _Moments:
    """Weighted moments of the confident depths around each pixel of one pyramid level.

    ``m0, mx, my, mxx, mxy, myy`` are moments of the weights and ``n0, nx,
    ny`` of weights times depths, with positions relative to the pixel's
    centre in pixels of its level. Reducing them (:meth:`reduce`) aggregates
    the exact moments over a twice larger footprint, so that each level
    fits planes to where its confident pixels really are.
    """

    NAMES = ("m0", "mx", "my", "mxx", "mxy", "myy", "n0", "nx", "ny")

    def __init__(self, **arrays: Any):
        for name in self.NAMES:
            setattr(self, name, arrays[name])

    @classmethod
    def of(cls, xp, depth: Any, weights: Any) -> _Moments:
        zero = xp.zeros_like(weights)
        return cls(m0=weights, mx=zero, my=zero, mxx=zero, mxy=zero, myy=zero, n0=weights * depth, nx=zero, ny=zero)

    def reduce(self, bk: Backend) -> _Moments:
        return self._reduce_axis(bk, 1)._reduce_axis(bk, 0)

    def _reduce_axis(self, bk: Backend, axis: int) -> _Moments:
        xp = bk.xp

        def r(a: Any, power: int) -> Any:
            # binomial taps times offset**power, zero outside the image, every second sample
            out = bk.ndi.correlate1d(a, xp.asarray(_OFFSETS**power * _TAPS), axis=axis, mode="constant")
            return out[::2] if axis == 0 else out[:, ::2]

        # "u" is the axis being reduced, "v" the other one; offsets halve in parent pixels
        if axis == 1:
            mu, mv, muu, mvv, nu, nv = self.mx, self.my, self.mxx, self.myy, self.nx, self.ny
        else:
            mu, mv, muu, mvv, nu, nv = self.my, self.mx, self.myy, self.mxx, self.ny, self.nx
        m0 = r(self.m0, 0)
        mu_ = 0.5 * (r(mu, 0) + r(self.m0, 1))
        muu_ = 0.25 * r(muu, 0) + 0.5 * r(mu, 1) + 0.25 * r(self.m0, 2)
        muv_ = 0.5 * (r(self.mxy, 0) + r(mv, 1))
        mv_, mvv_ = r(mv, 0), r(mvv, 0)
        n0 = r(self.n0, 0)
        nu_ = 0.5 * (r(nu, 0) + r(self.n0, 1))
        nv_ = r(nv, 0)
        if axis == 1:
            return _Moments(m0=m0, mx=mu_, my=mv_, mxx=muu_, mxy=muv_, myy=mvv_, n0=n0, nx=nu_, ny=nv_)
        return _Moments(m0=m0, mx=mv_, my=mu_, mxx=mvv_, mxy=muv_, myy=muu_, n0=n0, nx=nv_, ny=nu_)

    def plane_value(self, xp) -> Any:
        """Value at the pixel centre of the weighted least-squares plane (ridge on the slopes)."""
        m0, mx, my, mxy, n0, nx, ny = self.m0, self.mx, self.my, self.mxy, self.n0, self.nx, self.ny
        ridge = _SLOPE_RIDGE * m0
        mxx = self.mxx + ridge
        myy = self.myy + ridge
        # the 3 x 3 normal equations, solved for the plane's value (Cramer's rule)
        det = m0 * (mxx * myy - mxy * mxy) - mx * (mx * myy - mxy * my) + my * (mx * mxy - mxx * my)
        det_a = n0 * (mxx * myy - mxy * mxy) - mx * (nx * myy - mxy * ny) + my * (nx * mxy - mxx * ny)
        tiny = xp.maximum(m0, 1e-30)
        ok = det > 1e-9 * tiny**3
        return xp.where(ok, det_a / xp.where(ok, det, 1.0), n0 / tiny)


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


def fill_depth(bk: Backend, depth: Any, weights: Any) -> Any:
    """Confidence-weighted multi-scale interpolation of a depth map.

    Level by level of a pyramid of weighted moments, the confident depths
    around each pixel are fitted with a plane (first-order normalised
    convolution over a footprint that doubles with every level: it
    extrapolates slopes into large gaps and corners). From the coarsest
    level down, each level keeps its own fit as far as its footprint is
    confident and takes the coarser level's elsewhere ("pull-push"), so
    pixels of weight 1 keep their depth.

    Parameters
    ----------
    bk : Backend
    depth, weights : arrays (H, W)
        Depth values and their weights in 0..1.

    Returns
    -------
    array (H, W) float32, clipped to the range of ``depth``
    """
    xp = bk.xp
    weights = weights.astype(xp.float32)
    if float(weights.sum()) <= 0:  # nothing is confident: a flat map at the mean depth
        return xp.full(depth.shape, float(depth.mean()), dtype=xp.float32)
    levels = [_Moments.of(xp, depth.astype(xp.float32), weights)]
    while max(levels[-1].m0.shape) > 2:
        levels.append(levels[-1].reduce(bk))
    estimate = None
    for mom in reversed(levels):
        value = mom.plane_value(xp)
        if estimate is None:
            total = float(mom.m0.sum())
            estimate = xp.where(mom.m0 > 0, value, float(mom.n0.sum()) / total if total > 0 else 0.0)
            continue
        coarse = upsample_linear(xp, estimate, mom.m0.shape)
        # the mean weight over the footprint: 1 means "fully confident around here"
        s = xp.clip(mom.m0, 0.0, 1.0)
        estimate = s * value + (1 - s) * coarse
    # slopes extrapolate, but never beyond the stack's first and last frames
    return xp.clip(estimate, float(depth.min()), float(depth.max())).astype(xp.float32)


def guided_coefficients(bk: Backend, guide: Any, src: Any, weights: Any, radius: int, eps: float) -> tuple[Any, Any]:
    """Confidence-weighted guided filter: the local linear models ``src ~ a * guide + b``.

    In every window of side ``2 * radius + 1`` the source is fitted as a
    linear function of the guide, each pixel counting with its weight. The
    filtered map is ``a * guide + b``, where ``a`` and ``b`` (returned)
    average the fits covering a pixel; they vary slowly, so they can be
    computed on a coarse grid and upsampled ("fast guided filter").

    Parameters
    ----------
    guide : array (H, W)
        Gray fused image, scaled to a spread of about 1.
    src : array (H, W)
        The map to filter.
    weights : array (H, W)
        Per-pixel weights (> 0 everywhere).
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

    norm = xp.maximum(box(weights), 1e-30)
    wi = weights * guide
    mean_i = box(wi) / norm
    mean_p = box(weights * src) / norm
    cov = box(wi * src) / norm - mean_i * mean_p
    var = box(wi * guide) / norm - mean_i * mean_i
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
) -> Any:
    """A continuous depth map: confident depths kept, the rest filled edge-aware.

    The fill (:func:`fill_depth`) and the edge-aware step
    (:func:`guided_coefficients`) run on the first Gaussian pyramid level at
    most ``_GRID_SIDE`` pixels a side: the filled part varies slowly, and the
    guided filter's linear models are evaluated against the full-resolution
    guide, which puts edges back where the image has them.

    Parameters
    ----------
    bk : Backend
    depth : array (H, W) float32
        Raw depth (fractional frame index).
    confidence : array (H, W) float32
        The fusion's 0..1 confidence.
    guide : array (H, W), optional
        Gray fused image; without it the fill is not edge-aware.
    radius : int
        Window radius (px of ``depth``) of the edge-aware step.

    Returns
    -------
    array (H, W) float32
        Confident pixels (confidence >= :data:`CONFIDENT`) keep their depth;
        the others blend towards the fill as their confidence falls.

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
    filled = fill_depth(bk, d_small, w_small)
    if guide is None:
        smooth = _expand(xp, filled, shapes)
    else:
        g = xp.asarray(guide, dtype=xp.float32)
        lo, hi = (float(v) for v in xp.percentile(g[::4, ::4], xp.asarray([0.5, 99.5])))
        g = (g - xp.float32(lo)) * xp.float32(1.0 / max(hi - lo, 1e-12))
        g_small = _reduce(bk, g, times)
        radius = max(1, round(radius / 2**times))
        a, b = guided_coefficients(bk, g_small, filled, w_small + xp.float32(1e-3), radius, _GUIDE_EPS)
        smooth = _expand(xp, a, shapes) * g
        smooth += _expand(xp, b, shapes)
    return (weights * depth + (1 - weights) * smooth).astype(xp.float32, copy=False)


def to_height(depth: np.ndarray, z_step: float | None, z0: float = 0.0) -> np.ndarray:
    """Height ``z0 + depth * z_step`` (float32); the frame index itself without a step."""
    depth = np.asarray(depth, dtype=np.float32)
    if z_step is None:
        return depth.copy()
    return (np.float32(z0) + depth * np.float32(z_step)).astype(np.float32, copy=False)
