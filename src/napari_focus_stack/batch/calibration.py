"""Reused alignment for turntable scans: one focus sequence, many positions.

A turntable scanner (OpenScan) runs the same focus sequence at every
position, so the frame-to-frame geometry (focus breathing, the small shifts
of the focus mechanism) repeats and can be estimated once. Here it is
estimated on a few evenly spaced positions and combined by the element-wise
median of their transforms, so that one position that moved while it was
taken does not spoil the others (a mean would carry a third of its error
into every stack). Each stack that reuses the result is checked first: the
two end frames of its stack are registered to its reference frame, starting
from the reused transforms, on small images; if the registration moves them
by more than a tolerance, the reused alignment does not fit that stack and
it is aligned on its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._backend import get_backend
from ..align import corner_error, estimate_transform, relative_to
from ..focus import block_mean
from ..io import FrameSource
from ..pixels import full_scale

__all__ = ["CHECK_PIXELS", "calibration_indices", "check_reused_alignment", "combine_transforms"]

#: The fit check registers images of at most this many pixels.
CHECK_PIXELS = 300_000


def calibration_indices(n_stacks: int, n_positions: int) -> list[int]:
    """Indices of `n_positions` evenly spaced stacks out of `n_stacks` (first and last included).

    Examples
    --------
    >>> calibration_indices(36, 3), calibration_indices(2, 3), calibration_indices(5, 1)
    ([0, 18, 35], [0, 1], [0])
    """
    k = max(1, min(int(n_positions), int(n_stacks)))
    if k == 1:
        return [0]
    return sorted({int(round(x)) for x in np.linspace(0, n_stacks - 1, k)})


def combine_transforms(sets: Sequence[Sequence[np.ndarray | None]], reference: int) -> list[np.ndarray | None]:
    """Element-wise median of several stacks' transforms, relative to their reference frames.

    Parameters
    ----------
    sets : sequence of sequence of 3x3 array or None
        Per calibration stack, one reference->frame transform per frame
        (None: the frame was excluded there).
    reference : int
        Index of the reference frame (the same in every stack).

    Returns
    -------
    list of 3x3 array or None
        Per frame, the median of the transforms where at least half of the
        stacks aligned that frame, else None.
    """
    n = len(sets[0])
    if any(len(s) != n for s in sets):
        raise ValueError("every calibration stack must have the same number of frames")
    rel = [relative_to(s, reference) for s in sets if s[reference] is not None]
    out: list[np.ndarray | None] = []
    for k in range(n):
        valid = [s[k] for s in rel if s[k] is not None]
        out.append(np.median(np.stack(valid), axis=0) if valid and 2 * len(valid) >= len(rel) else None)
    return out


def _small_gray(source, i: int, scale: float, max_pixels: int) -> tuple[Any, np.ndarray]:
    """Frame `i` as a small gray float image and the matrix from its pixels to full-frame pixels."""
    frame = source.read_reduced(i)
    f = 2
    if frame is None:
        frame, f = source.read(i), 1
    h, w = frame.shape[:2]
    extra = 1
    while (h // extra) * (w // extra) > max_pixels:
        extra *= 2
    gray = get_backend("cpu").to_gray(block_mean(np, frame, extra).astype(np.float32) * np.float32(1.0 / scale))
    f *= extra
    # pixel j of the small image covers full pixels f*j .. f*j + f - 1
    return gray.astype(np.float32, copy=False), np.array([[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2], [0, 0, 1.0]])


def check_reused_alignment(
    frames: Any,
    transforms: Sequence[np.ndarray | None],
    *,
    reference: int | None = None,
    model: str = "similarity",
    backend=None,
    tolerance_px: float = 1.0,
    max_pixels: int = CHECK_PIXELS,
) -> dict:
    """Does an alignment estimated on other stacks fit this one?

    The reference frame and the two end frames of the stack (the farthest
    from the reference in focus, where a misfit shows most) are decoded at
    reduced size; each end frame is registered to the reference frame
    starting from the reused transform, and the corner displacement between
    the registered and the reused transform is measured in full-size pixels.

    Parameters
    ----------
    frames
        The stack: files, a folder or arrays (see :class:`~napari_focus_stack.io.FrameSource`).
    transforms : sequence of 3x3 array or None
        The reused reference->frame transforms, one per frame.
    reference : int, optional
        Reference frame index (default: the middle frame), as for the engine.
    model : {"similarity", "affine", "translation", "none"}
        The engine's alignment model; ``"none"`` always fits.
    backend : Backend, optional
        Where to register (default: the CPU).
    tolerance_px : float
        The alignment fits when no checked frame moves by more than this.
    max_pixels : int
        The images registered have at most about this many pixels.

    Returns
    -------
    dict
        ``fits`` (bool), ``error_px`` (the largest displacement),
        ``tolerance_px``, and per checked frame ``index``, ``name``,
        ``error_px`` and ``quality`` (normalised cross-correlation after
        registration, -1..1).

    Examples
    --------
    >>> from napari_focus_stack.synthetic import make_stack
    >>> stack = make_stack("checker", shape=(96, 128), n_frames=4, seed=2)
    >>> check_reused_alignment(stack.frames, stack.transforms)["fits"]
    True
    >>> moved = [m if k == 2 else np.array([[1, 0, 4.0], [0, 1, 0], [0, 0, 1]]) @ m
    ...          for k, m in enumerate(stack.transforms)]
    >>> check = check_reused_alignment(stack.frames, moved)
    >>> check["fits"], round(check["error_px"])
    (False, 4)
    """
    source = frames if isinstance(frames, FrameSource) else FrameSource.from_inputs(frames)
    n = len(source)
    ref = n // 2 if reference is None else int(reference) % n
    h, w = source.shape[:2]
    bk = backend or get_backend("cpu")
    scale = full_scale(source.dtype)
    mats = relative_to(list(transforms), ref)
    ends = [k for k in sorted({0, n - 1}) if k != ref and mats[k] is not None]
    result = {"fits": True, "error_px": 0.0, "tolerance_px": float(tolerance_px), "frames": []}
    if model == "none" or not ends:
        return result
    ref_img, to_full = _small_gray(source, ref, scale, max_pixels)
    to_small = np.linalg.inv(to_full)
    for k in ends:
        img, _ = _small_gray(source, k, scale, max_pixels)
        guess = to_small @ mats[k] @ to_full
        reg = estimate_transform(bk.asarray(ref_img), bk.asarray(img), model, backend=bk, initial=guess)
        found = to_full @ reg.matrix @ to_small
        err = corner_error(found, mats[k], (h, w))
        result["frames"].append({"index": k, "name": source.names[k], "error_px": err, "quality": float(reg.quality)})
    result["error_px"] = max(f["error_px"] for f in result["frames"])
    result["fits"] = result["error_px"] <= tolerance_px
    return result
