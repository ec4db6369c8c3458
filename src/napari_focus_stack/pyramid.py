"""Gaussian and Laplacian pyramids on any Backend array module.

The 5-tap binomial kernel (1 4 6 4 1)/16 is applied by slicing, which is
several times faster than a generic convolution and runs unchanged on NumPy
and CuPy. Level ``l`` pixel ``j`` sits at level-0 pixel ``j * 2**l``, so a
transform estimated at level ``l`` scales to level 0 exactly.
"""
from __future__ import annotations

from typing import Any

__all__ = ["reduce", "expand", "gaussian_pyramid", "laplacian_pyramid", "collapse", "n_levels"]


def _take(xp, a, axis: int, start: int, stop: int | None, step: int = 1):
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop, step)
    return a[tuple(index)]


def _pad(xp, a, axis: int, n: int):
    widths = [(0, 0)] * a.ndim
    widths[axis] = (n, n)
    return xp.pad(a, widths, mode="symmetric")


def _reduce_axis(xp, a, axis: int):
    size = a.shape[axis]
    out = (size + 1) // 2
    p = _pad(xp, a, axis, 2)
    # output j reads padded samples 2j .. 2j+4
    s = lambda k: _take(xp, p, axis, k, k + 2 * out - 1, 2)  # noqa: E731
    return (s(0) + s(4) + 4 * (s(1) + s(3)) + 6 * s(2)) * (1.0 / 16.0)


def _expand_axis(xp, a, axis: int, size: int):
    n = a.shape[axis]
    p = _pad(xp, a, axis, 1)
    left = _take(xp, p, axis, 0, n)
    mid = _take(xp, p, axis, 1, n + 1)
    right = _take(xp, p, axis, 2, n + 2)
    even = (left + right + 6 * mid) * (1.0 / 8.0)
    odd = (mid + right) * 0.5
    shape = list(a.shape)
    shape[axis] = 2 * n
    out = xp.empty(shape, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, None, 2)
    out[tuple(index)] = even
    index[axis] = slice(1, None, 2)
    out[tuple(index)] = odd
    return _take(xp, out, axis, 0, size)


def reduce(xp, a: Any) -> Any:
    """Blur with the binomial kernel and keep every second row and column."""
    return _reduce_axis(xp, _reduce_axis(xp, a, 0), 1)


def expand(xp, a: Any, shape: tuple[int, int]) -> Any:
    """Upsample by two to ``shape`` (rows, cols): the adjoint-like partner of :func:`reduce`."""
    return _expand_axis(xp, _expand_axis(xp, a, 0, shape[0]), 1, shape[1])


def n_levels(shape: tuple[int, ...], min_size: int = 16, max_levels: int = 12) -> int:
    """Number of pyramid levels so that the coarsest side stays >= ``min_size``."""
    side = min(shape[0], shape[1])
    levels = 1
    while side >= 2 * min_size and levels < max_levels:
        side = (side + 1) // 2
        levels += 1
    return levels


def gaussian_pyramid(xp, a: Any, levels: int) -> list:
    """``levels`` images, the first being ``a`` itself."""
    pyr = [a]
    for _ in range(levels - 1):
        pyr.append(reduce(xp, pyr[-1]))
    return pyr


def laplacian_pyramid(xp, a: Any, levels: int) -> list:
    """Band-pass levels plus the coarsest Gaussian level last."""
    pyr = []
    current = a
    for _ in range(levels - 1):
        smaller = reduce(xp, current)
        band = expand(xp, smaller, current.shape[:2])
        pyr.append(xp.subtract(current, band, out=band))  # in place: one full-size temporary less
        current = smaller
    pyr.append(current)
    return pyr


def collapse(xp, pyr: list) -> Any:
    """Rebuild the image from a Laplacian pyramid."""
    image = pyr[-1]
    for band in reversed(pyr[:-1]):
        image = band + expand(xp, image, band.shape[:2])
    return image
