"""Exposure matching: a gain per frame and channel that brings it to the reference's exposure.

The alignment pass keeps a small colour thumbnail of every frame
(:func:`thumbnail`); once the transforms are known, :func:`exposure_gains`
compares each frame's thumbnail with the reference's over the part of the
scene both show. Defocus spreads light but keeps its mean, so the ratio of
the means sees exposure and not blur (a gain-and-offset fit would take the
contrast a blurred frame lost for a lower exposure: 5-20 % off on the
synthetic stacks).
"""
from __future__ import annotations

import math

import numpy as np

from ._backend import block_mean, get_backend
from .align import valid_region, warp_image

__all__ = ["THUMB_SIDE", "exposure_gains", "thumbnail"]

#: Colour thumbnails for exposure matching are at most this big (px a side).
THUMB_SIDE = 256


def thumbnail(frame: np.ndarray, full_scale: float) -> tuple[np.ndarray, int]:
    """Small float colour thumbnail of a host frame (block means, in 0..1), for exposure matching.

    Returns the thumbnail and its block size ``f`` in frame pixels. Only every
    second (or fourth) pixel enters the means: plenty for exposure statistics
    and a fraction of the memory traffic.
    """
    h, w = frame.shape[:2]
    f = max(1, 2 ** math.ceil(math.log2(max(h, w) / THUMB_SIDE))) if max(h, w) > THUMB_SIDE else 1
    step = min(4, f)
    sub = np.asarray(frame[::step, ::step], dtype=np.float32)
    thumb = block_mean(np, sub, f // step) * np.float32(1.0 / full_scale)
    return thumb, f


def exposure_gains(thumbs: list, transforms: list, ref: int) -> list:
    """Per-frame, per-channel gains that map each frame onto the reference's exposure.

    Parameters
    ----------
    thumbs : list of (thumbnail, block size)
        From :func:`thumbnail`, one per frame.
    transforms : list of 3x3 arrays or None
        Reference->frame transforms at full resolution; None for excluded frames.
    ref : int
        The reference frame.

    Returns
    -------
    list of float32 arrays or None
        A gain per channel, clipped to 0.5..2; None for the reference,
        excluded frames and frames that share too little with the reference.
    """
    cpu = get_backend("cpu")
    ref_thumb, f = thumbs[ref]
    c = (f - 1) / 2.0
    to_full = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
    ref_ok = _finite(ref_thumb)
    total = np.nansum if ref_ok is not None else np.sum  # NaN * 0 is NaN: only missing data needs nansum
    gains: list = [None] * len(transforms)
    for i, (thumb, _) in enumerate(thumbs):
        if i == ref or transforms[i] is None:
            continue
        m = np.linalg.inv(to_full) @ transforms[i] @ to_full
        warped = warp_image(cpu, thumb, m, ref_thumb.shape[:2])
        ok = valid_region(np, m, ref_thumb.shape[:2], thumb.shape[:2])
        own = _finite(warped)
        for part in (own, ref_ok):  # missing (NaN) pixels take no part
            if part is not None:
                ok &= part
        n = int(ok.sum())
        if n < 16:
            continue
        weight = ok.astype(np.float32)
        if warped.ndim == 3:
            weight = weight[..., None]
        # means over the pixels both show, per channel
        add = np.nansum if own is not None else total
        a = add(warped * weight, axis=(0, 1), dtype=np.float64) / n
        b = add(ref_thumb * weight, axis=(0, 1), dtype=np.float64) / n
        g = np.clip(np.atleast_1d(b) / np.maximum(np.atleast_1d(a), 1e-6), 0.5, 2.0)
        gains[i] = g.astype(np.float32)
    return gains


def _finite(thumb: np.ndarray) -> np.ndarray | None:
    """Pixels of a thumbnail with every channel finite; None when all are (integer frames always)."""
    if not np.isnan(thumb).any():
        return None
    return np.isfinite(thumb).all(axis=2) if thumb.ndim == 3 else np.isfinite(thumb)
