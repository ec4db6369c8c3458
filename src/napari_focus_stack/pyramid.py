"""Gaussian and Laplacian pyramids on any Backend.

The steps are the Backend's ``pyr_down`` and ``pyr_up`` kernels: the 5-tap
binomial kernel (1 4 6 4 1)/16 with symmetric borders. Level ``l`` pixel
``j`` sits at level-0 pixel ``j * 2**l``, so a transform estimated at level
``l`` scales to level 0 exactly.
"""
from __future__ import annotations

from typing import Any

from ._backend import Backend

__all__ = [
    "reduce", "expand", "coverage_pyramid", "gaussian_pyramid", "laplacian_pyramid", "collapse", "n_levels",
    "fill_holes",
]


def reduce(bk: Backend, a: Any) -> Any:
    """Blur with the binomial kernel and keep every second row and column."""
    return bk.pyr_down(a)


def expand(bk: Backend, a: Any, shape: tuple[int, int]) -> Any:
    """Upsample by two to ``shape`` (rows, cols): the interpolating partner of :func:`reduce`."""
    return bk.pyr_up(a, shape)


def n_levels(shape: tuple[int, ...], min_size: int = 16, max_levels: int = 12) -> int:
    """Number of pyramid levels so that the coarsest side stays >= ``min_size``."""
    side = min(shape[0], shape[1])
    levels = 1
    while side >= 2 * min_size and levels < max_levels:
        side = (side + 1) // 2
        levels += 1
    return levels


def gaussian_pyramid(bk: Backend, a: Any, levels: int) -> list:
    """``levels`` images, the first being ``a`` itself."""
    pyr = [a]
    for _ in range(levels - 1):
        pyr.append(bk.pyr_down(pyr[-1]))
    return pyr


def coverage_pyramid(xp, valid: Any, levels: int) -> list:
    """Where each level of a Gaussian pyramid is made of covered pixels only: ``levels`` bool masks.

    The first is ``valid`` itself; a pixel of the next level is True where
    all pixels of the previous level under its binomial support (5 x 5,
    centred on it) are, so the masks say which coefficients the uncovered
    pixels of ``valid`` do not reach. Bool arithmetic with any ``xp``: no
    float copy of a frame-sized mask.
    """
    out = [valid]
    for _ in range(levels - 1):
        out.append(_support_all(xp, _support_all(xp, out[-1], 0), 1))
    return out


def _support_all(xp, m: Any, axis: int) -> Any:
    """Along ``axis``: sample ``j`` of the result is the AND of ``m[2j-2 .. 2j+2]`` (inside ``m``)."""
    n = m.shape[axis]
    out_n = (n + 1) // 2
    pad = [(0, 0)] * m.ndim
    pad[axis] = (2, 2 + 2 * out_n - n)  # True beyond the edges: a symmetric border repeats inside pixels
    p = xp.pad(m, pad, constant_values=True)

    def tap(k):
        index = [slice(None)] * m.ndim
        index[axis] = slice(k, k + 2 * out_n - 1, 2)
        return p[tuple(index)]

    out = tap(0).copy()
    for k in range(1, 5):
        out &= tap(k)
    return out


def laplacian_pyramid(bk: Backend, a: Any, levels: int, overwrite: bool = False, pool: Any | None = None) -> list:
    """Band-pass levels plus the coarsest Gaussian level last.

    With ``overwrite=True`` the finest band is computed in ``a``'s own buffer
    (``a`` is consumed), which saves a full-size array per frame. With a
    :class:`~napari_focus_stack._backend.BufferPool` the coarser levels are
    written into its buffers.
    """
    pyr = []
    current = a
    for _ in range(levels - 1):
        out = None
        if pool is not None:
            out = pool.empty(((current.shape[0] + 1) // 2, (current.shape[1] + 1) // 2) + current.shape[2:],
                             current.dtype)
        smaller = bk.pyr_down(current, out=out)
        # a level of ours (or one given away) becomes its band in place
        band = current.copy() if current is a and not overwrite else current
        pyr.append(bk.pyr_up_add(band, smaller, -1.0))
        current = smaller
    pyr.append(current)
    return pyr


def collapse(bk: Backend, pyr: list, overwrite: bool = False) -> Any:
    """Rebuild the image from a Laplacian pyramid.

    With ``overwrite=True`` each level is rebuilt in its band's own buffer
    (the bands are consumed): no frame-sized copy.
    """
    image = pyr[-1]
    for band in reversed(pyr[:-1]):
        image = bk.pyr_up_add(band if overwrite else band.copy(), image, 1.0)
    return image


def fill_holes(bk: Backend, image: Any, holes: Any) -> Any:
    """Replace the pixels under ``holes`` by a smooth interpolation of the others.

    Push-pull: weighted means of the known pixels are pushed down the
    pyramid until every pixel of a level has some support, then pulled back
    up, each hole taking the expanded value of the level below.

    Parameters
    ----------
    image : array (H, W[, C]) float
        Values under ``holes`` are ignored (they may be NaN).
    holes : bool array (H, W)

    Returns
    -------
    array
        A new array: ``image`` where known, interpolated in the holes (zero
        when nothing is known).

    References
    ----------
    Gortler, Grzeszczuk, Szeliski and Cohen, "The Lumigraph", SIGGRAPH 1996
    (the pull-push hole filling of section 3.2).
    """
    xp = bk.xp

    def spread(w):
        return w[..., None] if image.ndim == 3 else w

    weight = (~holes).astype(xp.float32)
    levels = [(xp.where(spread(holes), 0, image).astype(image.dtype, copy=False), weight)]
    while not bool((levels[-1][1] > 0).all()) and max(levels[-1][1].shape) > 1:
        value, weight = levels[-1]
        levels.append((reduce(bk, value * spread(weight)), reduce(bk, weight)))
        # back from premultiplied: a weighted mean where there is support
        value, weight = levels[-1]
        levels[-1] = (value / spread(xp.maximum(weight, 1e-12)), weight)
    filled = levels[-1][0]
    for value, weight in reversed(levels[:-1]):
        up = expand(bk, filled, value.shape[:2])
        filled = xp.where(spread(weight > 0), value, up)
    return filled
