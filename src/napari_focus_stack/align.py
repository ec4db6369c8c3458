"""Frame-to-frame registration: similarity, affine or translation models.

Transforms are 3x3 matrices ``M`` acting on homogeneous pixel coordinates
``(x=col, y=row, 1)``: ``M`` maps a pixel of the *template* (reference side)
to the matching position in the *moving* frame. Warping a moving frame into
reference geometry samples it at ``M @ p`` for every reference pixel ``p``.

Registration is an inverse-compositional Gauss-Newton fit, coarse to fine on
a Gaussian pyramid, on the strongest-gradient pixels of the template only
(sub-pixel accurate and cheap even at full resolution). A per-iteration
gain/offset fit makes it blind to exposure drift between frames.

Missing pixels (NaN, e.g. non-finite input) may be present in either image:
they, and the pyramid pixels they blur into, are left out of the fit.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend
from .options import ALIGN_MODELS

__all__ = [
    "MODELS",
    "Registration",
    "estimate_transform",
    "warp_image",
    "valid_region",
    "scale_matrix",
    "describe_transform",
    "corner_error",
    "max_corner_shift",
    "relative_to",
    "blank_value",
    "largest_group",
    "group_reference",
]

MODELS = ALIGN_MODELS


@dataclass
class Registration:
    """Result of registering one frame to another."""

    matrix: np.ndarray  # 3x3, template coords -> moving coords
    quality: float  # normalised cross-correlation of the aligned pixels, -1..1
    iterations: int
    converged: bool


def scale_matrix(f: float) -> np.ndarray:
    """Matrix taking pixel coordinates of an image ``f`` times smaller to full size (decimation grid)."""
    return np.diag([f, f, 1.0])


def describe_transform(m: np.ndarray, shape: tuple[int, int]) -> dict:
    """Scale, rotation (degrees) and shift (px, of the image centre) of a transform."""
    a = np.asarray(m, dtype=float)
    scale = math.sqrt(abs(np.linalg.det(a[:2, :2])))
    rotation = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    moved = a @ np.array([cx, cy, 1.0])
    return {"scale": scale, "rotation_deg": rotation, "shift_x": moved[0] - cx, "shift_y": moved[1] - cy}


def corner_error(m_est: np.ndarray, m_true: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean displacement (px) of the four image corners between two transforms."""
    h, w = shape[:2]
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=float).T
    diff = (np.asarray(m_est) @ corners - np.asarray(m_true) @ corners)[:2]
    return float(np.mean(np.hypot(diff[0], diff[1])))


def max_corner_shift(m: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest displacement (px) of an image corner under ``m`` (0 for the identity)."""
    h, w = shape[:2]
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=float).T
    moved = np.asarray(m, dtype=float) @ corners - corners
    return float(np.max(np.hypot(moved[0], moved[1])))


def relative_to(transforms: list, ref: int) -> list:
    """Transforms re-expressed relative to frame ``ref``, whose own becomes the identity.

    Reference->frame transforms estimated with one reference frame, made to
    take another (a reused alignment, a stack whose reference differs);
    None (an excluded frame) stays None.

    Examples
    --------
    >>> shift = np.array([[1, 0, 2.0], [0, 1, 0], [0, 0, 1]])
    >>> rel = relative_to([np.eye(3), shift, None], 1)
    >>> float(rel[0][0, 2]), float(rel[1][0, 2]), rel[2]
    (-2.0, 0.0, None)
    """
    to_ref = np.linalg.inv(np.asarray(transforms[ref], dtype=float))
    return [None if m is None else np.asarray(m, dtype=float) @ to_ref for m in transforms]


def valid_region(xp, m: np.ndarray, out_shape: tuple[int, int], in_shape: tuple[int, int]) -> Any:
    """Boolean mask of output pixels whose source position lies on the input frame.

    A pixel covers half a pixel either side of its centre, so positions up to
    0.5 px beyond the outermost centres still count as covered.
    """
    h, w = out_shape
    eps = 0.5
    # the covered part of each output row is one interval of columns (the
    # intersection of two strips): find it per row, then compare once per pixel
    ys = np.arange(h, dtype=np.float64)
    first = np.zeros(h)
    last = np.full(h, w - 1.0)
    for k, n in ((0, in_shape[1]), (1, in_shape[0])):
        a, b = m[k, 0], m[k, 1] * ys + m[k, 2]  # source coordinate k = a * x + b
        lo, hi = -eps - b, n - 1 + eps - b  # the bounds on a * x
        if a == 0:
            outside = (lo > 0) | (hi < 0)
            first[outside], last[outside] = w, -1.0
            continue
        x0, x1 = (lo / a, hi / a) if a > 0 else (hi / a, lo / a)
        first = np.maximum(first, np.ceil(x0))
        last = np.minimum(last, np.floor(x1))
    xs = xp.arange(w, dtype=xp.float32)[None, :]
    ok = xs >= xp.asarray(first.astype(np.float32))[:, None]
    ok &= xs <= xp.asarray(last.astype(np.float32))[:, None]
    return ok


def is_identity(m: np.ndarray) -> bool:
    """Whether ``m`` is the identity to within rounding (1e-9)."""
    return bool(np.allclose(m, np.eye(3), atol=1e-9))


def warp_image(bk: Backend, image: Any, m: np.ndarray, out_shape: tuple[int, int], order: int = 1) -> Any:
    """Resample ``image`` (H, W[, C]) into the output grid: ``out[p] = image[m @ p]``.

    Positions outside the frame take the nearest edge value (so band-pass
    filters see no artificial edge); use :func:`valid_region` to know which
    pixels are real.
    """
    if is_identity(m) and tuple(out_shape) == tuple(image.shape[:2]):
        return image
    return bk.warp_affine(image, m, out_shape, order)


def _phase_correlation(xp, a: Any, b: Any) -> tuple[float, float]:
    """Shift (dx, dy) such that ``b(x + d) ~ a(x)``, by phase correlation with a window."""
    h, w = a.shape
    a, b = _fill_missing(xp, a), _fill_missing(xp, b)
    win = xp.asarray(np.outer(np.hanning(h), np.hanning(w)).astype(np.float32))
    fa = xp.fft.rfft2((a - a.mean()) * win)
    fb = xp.fft.rfft2((b - b.mean()) * win)
    cross = fb * xp.conj(fa)
    cross /= xp.abs(cross) + 1e-9
    corr = xp.fft.irfft2(cross, s=(h, w))
    idx = int(xp.argmax(corr))
    py, px = divmod(idx, w)
    corr = np.asarray(corr.get() if hasattr(corr, "get") else corr)

    def sub(c_m, c_0, c_p):
        den = c_m - 2 * c_0 + c_p
        return 0.0 if abs(den) < 1e-12 else 0.5 * (c_m - c_p) / den

    dy = py + sub(corr[(py - 1) % h, px], corr[py, px], corr[(py + 1) % h, px])
    dx = px + sub(corr[py, (px - 1) % w], corr[py, px], corr[py, (px + 1) % w])
    if dy > h / 2:
        dy -= h
    if dx > w / 2:
        dx -= w
    return float(dx), float(dy)


def _fill_missing(xp, a: Any) -> Any:
    """``a`` with NaN pixels set to the mean of the others (the FFT needs finite values)."""
    missing = xp.isnan(a)
    if not bool(missing.any()):
        return a
    fill = a[~missing].mean() if bool((~missing).any()) else 0.0
    return xp.where(missing, fill, a)


def _params_to_matrix(model: str, p: np.ndarray) -> np.ndarray:
    if model == "similarity":
        a, b, tx, ty = p
        return np.array([[1 + a, -b, tx], [b, 1 + a, ty], [0, 0, 1.0]])
    if model == "affine":
        return np.array([[1 + p[0], p[1], p[2]], [p[3], 1 + p[4], p[5]], [0, 0, 1.0]])
    return np.array([[1, 0, p[0]], [0, 1, p[1]], [0, 0, 1.0]])


def _steepest_descent(xp, model: str, gx, gy, xn, yn, length: float):
    if model == "similarity":
        cols = [gx * xn + gy * yn, gy * xn - gx * yn, gx, gy]
    elif model == "affine":
        cols = [gx * xn, gx * yn, gx, gy * xn, gy * yn, gy]
    else:
        cols = [gx, gy]
    return xp.stack(cols, axis=1) * length


def _select_points(xp, grad_mag: Any, max_points: int, margin: int) -> Any:
    h, w = grad_mag.shape
    g = xp.nan_to_num(grad_mag, nan=0.0, posinf=0.0)  # a fresh copy; gradients of missing pixels are NaN
    g[:margin] = 0
    g[h - margin:] = 0
    g[:, :margin] = 0
    g[:, w - margin:] = 0
    flat = g.ravel()
    if flat.size > max_points:
        idx = xp.argpartition(flat, flat.size - max_points)[flat.size - max_points:]
    else:
        idx = xp.arange(flat.size)
    idx = idx[flat[idx] > 0]
    return idx


def _register_level(
    bk: Backend, tmpl: Any, mov: Any, m: np.ndarray, model: str, max_iter: int, tol: float, max_points: int
) -> tuple[np.ndarray, float, int, bool]:
    xp = bk.xp
    h, w = tmpl.shape
    gy, gx = xp.gradient(tmpl)
    idx = _select_points(xp, xp.hypot(gx, gy), max_points, margin=2)
    idx = idx[~xp.isnan(tmpl.ravel()[idx])]  # a missing pixel can have finite neighbours
    if int(idx.size) < 16:
        return m, 0.0, 0, False
    ys = (idx // w).astype(xp.float32)
    xs = (idx % w).astype(xp.float32)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    length = max(h, w) / 2.0
    norm = np.array([[1 / length, 0, -cx / length], [0, 1 / length, -cy / length], [0, 0, 1.0]])
    sd = _steepest_descent(xp, model, gx.ravel()[idx], gy.ravel()[idx], (xs - cx) / length, (ys - cy) / length, length)
    t_vals = tmpl.ravel()[idx]
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=float).T
    quality, converged, it = 0.0, False, 0
    full_hess = None  # with every point inside, the Hessian is the same each iteration
    for it in range(1, max_iter + 1):
        sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
        sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        vals = bk.sample_bilinear(mov, sy, sx)
        ok = ~xp.isnan(vals)
        n_ok = int(ok.sum())
        if n_ok < 16:
            return m, 0.0, it, False
        whole = n_ok == int(vals.size)
        iv, tv, sdv = (vals, t_vals, sd) if whole else (vals[ok], t_vals[ok], sd[ok])
        im, tm = iv.mean(), tv.mean()
        di, dt = iv - im, tv - tm
        var_i = float((di * di).sum())
        var_t = float((dt * dt).sum())
        cov = float((di * dt).sum())
        quality = cov / math.sqrt(var_i * var_t) if var_i > 0 and var_t > 0 else 0.0
        gain = cov / var_i if var_i > 0 else 1.0
        err = gain * di - dt  # photometrically corrected moving minus template
        if whole and full_hess is not None:
            hess = full_hess
        else:
            hess = bk.to_numpy(sdv.T @ sdv).astype(np.float64)
            full_hess = hess if whole else full_hess
        rhs = bk.to_numpy(sdv.T @ err).astype(np.float64)
        try:
            dp = np.linalg.solve(hess, rhs)
        except np.linalg.LinAlgError:
            return m, quality, it, False
        step = np.linalg.inv(norm) @ _params_to_matrix(model, dp) @ norm
        m = m @ np.linalg.inv(step)
        moved = np.abs(step @ corners - corners)[:2].max()
        if moved < tol:
            converged = True
            break
    return m, quality, it, converged


def estimate_transform(
    template: Any,
    moving: Any,
    model: str = "similarity",
    *,
    backend: Backend,
    initial: np.ndarray | None = None,
    template_pyramid: list | None = None,
    moving_pyramid: list | None = None,
    min_size: int = 24,
    max_iter: int = 30,
    tol: float = 2e-3,
    max_points: int = 60_000,
    finest_level: int = 0,
) -> Registration:
    """Register ``moving`` onto ``template`` (both gray float32, same shape).

    Parameters
    ----------
    template, moving : array
        Gray images on ``backend``.
    model : {"similarity", "affine", "translation", "none"}
        Degrees of freedom: scale+rotation+shift, full affine, shift only,
        or nothing (identity, still scored).
    initial : 3x3 array, optional
        Starting estimate (template -> moving). Without one, the coarsest
        level is initialised by phase correlation.
    template_pyramid, moving_pyramid : list, optional
        Precomputed :func:`pyramid.gaussian_pyramid` of the inputs.
    finest_level : int
        Stop refining at this pyramid level (0 = full resolution). Big frames
        reach a few hundredths of a pixel already at level 1.

    Returns
    -------
    Registration
        ``matrix`` maps template pixel coordinates to moving ones;
        ``quality`` is the normalised cross-correlation after alignment.

    Examples
    --------
    >>> from napari_focus_stack._backend import get_backend
    >>> bk = get_backend("cpu")
    >>> rng = np.random.default_rng(0)
    >>> import scipy.ndimage as ndi
    >>> a = ndi.gaussian_filter(rng.random((128, 128)), 2).astype(np.float32)
    >>> b = ndi.shift(a, (1.5, -2.0), mode="nearest")
    >>> reg = estimate_transform(a, b, "translation", backend=bk)
    >>> np.round(reg.matrix[:2, 2], 1).tolist()
    [-2.0, 1.5]
    """
    if model not in MODELS:
        raise ValueError(f"align model must be one of {MODELS}, got {model!r}")
    xp = backend.xp
    levels = pyramid.n_levels(template.shape, min_size=min_size)
    tp = template_pyramid or pyramid.gaussian_pyramid(backend, template, levels)
    mp = moving_pyramid or pyramid.gaussian_pyramid(backend, moving, levels)
    levels = min(len(tp), len(mp))
    if model == "none":
        m = np.eye(3)
        _, quality, _, _ = _register_level(backend, tp[0], mp[0], m, "translation", 1, np.inf, max_points)
        return Registration(m, quality, 0, True)
    top = levels - 1
    f = 2.0**top
    if initial is not None:
        m = scale_matrix(1 / f) @ np.asarray(initial, dtype=float) @ scale_matrix(f)
    else:
        dx, dy = _phase_correlation(xp, tp[top], mp[top])
        m = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1.0]])
    quality, iterations, converged = 0.0, 0, False
    finest = min(finest_level, top)
    for level in range(top, finest - 1, -1):
        fine = level == finest
        m, quality, its, converged = _register_level(
            backend, tp[level], mp[level], m, model, max_iter if fine else max(10, max_iter // 2),
            tol if fine else tol * 4, max_points,
        )
        iterations += its
        m = scale_matrix(2.0) @ m @ scale_matrix(0.5)
    m = scale_matrix(2.0**finest / 2.0) @ m @ scale_matrix(2.0 / 2.0**finest)
    return Registration(m, quality, iterations, converged)


def blank_value(frame: np.ndarray) -> float | None:
    """The value of every pixel of a frame that holds nothing (one value per channel, or no finite one), else None.

    Such a frame (a lens cap, a plane a file does not hold, a dropped camera
    frame) has no structure to register or fuse: it can match no frame, and
    blended in it would only darken the result. A frame with content is told
    apart on 4096 of its pixels (a fraction of a millisecond); only a frame
    that looks blank there is read whole.

    >>> blank_value(np.zeros((4, 5), np.uint16)), blank_value(np.eye(4))
    (0.0, None)
    """
    a = np.asarray(frame)
    rows = a.reshape(-1, a.shape[2]) if a.ndim == 3 else a.reshape(-1, 1)
    if _constant_value(rows[:: max(1, rows.shape[0] // 4096)]) is None:
        return None
    return _constant_value(rows)


def _constant_value(rows: np.ndarray) -> float | None:
    """The value of pixels ``(N, C)`` that are one value per channel (their mean; NaN: none finite), else None."""
    if rows.dtype.kind == "f":
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            if not finite.any():
                return float("nan")
            rows = rows[finite]
    if rows.min() == rows.max():  # contiguous: fast, and enough for gray frames and black ones
        return float(rows.flat[0])
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    return float(lo.mean()) if bool((lo == hi).all()) else None


def largest_group(frames: Sequence[int], matches: Callable[[int, int], bool], recent: int = 2) -> list[int]:
    """The largest group of frames that register to one another, in focus order.

    Walking ``frames`` in order, each frame is registered to the last frame
    of the most recent groups (``recent`` of them, newest first) and joins
    the first it matches, else starts a group of its own: focus changes
    slowly along a stack, so a frame resembles its neighbours, and a run of
    bad frames (blank, bumped, another scene) splits the stack into groups
    without hiding the good frames beyond it. Ties go to the earlier group.

    Parameters
    ----------
    frames : sequence of int
        The candidate frames, in focus order.
    matches : callable(a, b) -> bool
        Whether frame ``b`` registers to frame ``a``.

    Examples
    --------
    >>> good = {0, 1, 2, 3, 4}  # five frames of a scene, then seven of nothing
    >>> largest_group(range(12), lambda a, b: a in good and b in good)
    [0, 1, 2, 3, 4]
    """
    groups: list[list[int]] = []
    for i in frames:
        for group in reversed(groups[-recent:]):
            if matches(group[-1], i):
                group.append(i)
                break
        else:
            groups.append([i])
    return max(groups, key=len, default=[])


def group_reference(group: Sequence[int], requested: int) -> int:
    """The reference frame for a group: the requested one if it belongs to it, else the group's middle frame.

    >>> group_reference([0, 1, 2, 3, 4], 6), group_reference([0, 1, 2, 3, 4], 1)
    (2, 1)
    """
    return requested if requested in group else group[len(group) // 2]
