"""Pixel value conventions: integer frames and the engine's float32 working scale.

Frames come as ``uint8``, ``uint16`` or float. The engine works on float32
in ``0..1`` of the input's full scale (the integer type's maximum; 1 for
float data, which :mod:`.intensity` first maps onto about 0..1 whatever its
scale) and gives results back in the input's dtype, rounded and clipped.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cast_to", "full_scale", "to_unit_float"]


def full_scale(dtype: Any) -> float:
    """The value of a fully exposed pixel: the integer type's maximum, 1.0 for float data.

    Examples
    --------
    >>> full_scale(np.uint8), full_scale(np.uint16), full_scale(np.float32)
    (255.0, 65535.0, 1.0)
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    return 1.0


def cast_to(image: np.ndarray, dtype: Any, scale: float = 1.0) -> np.ndarray:
    """``image * scale`` in ``dtype``: rounded and clipped to its range for integer types.

    A float32 ``image`` is scaled and rounded in place (it is frame-sized
    and the caller's to give up); float types are cast without rounding.

    Examples
    --------
    >>> cast_to(np.array([0.0, 0.5, 1.2], np.float32), np.uint8, 255.0)
    array([  0, 128, 255], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        if scale != 1.0:
            image = image * np.float32(scale)
        return image.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    if image.dtype != np.float32:
        image = image.astype(np.float32)
    if scale != 1.0:
        image *= np.float32(scale)
    np.rint(image, out=image)
    np.clip(image, info.min, info.max, out=image)
    return image.astype(dtype)


def to_unit_float(bk: Any, frame: Any, peak: float) -> Any:
    """``frame`` on the backend ``bk``'s device as float32 in 0..1 of its full scale ``peak``.

    Uploaded once, as stored (a uint8 frame is a quarter of its float32 copy).
    """
    xp = bk.xp
    a = bk.asarray(frame).astype(xp.float32)
    if peak != 1.0:
        a *= xp.float32(1.0 / peak)
    return a
