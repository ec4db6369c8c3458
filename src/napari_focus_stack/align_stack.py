"""The alignment pass: every frame of a stack registered to the reference frame.

Frames are registered to their neighbour on the reference side, chaining
outward from the reference frame in both directions (on two threads), so
that the most defocused frames are still compared with a similar frame
(:func:`napari_focus_stack.align.estimate_transform` does each pair).
A registration that cannot be trusted (:func:`implausible`) excludes the
frame, and the next one is registered to the last good one; a blank frame
(one value everywhere) is excluded unregistered. When the reference is blank
or matches fewer than half the other frames, the middle frame of the largest
group of frames that register to one another becomes the reference
(:func:`napari_focus_stack.align.largest_group`).

The pass also keeps, per frame, what later stages need without decoding it
again: a colour thumbnail for exposure matching and the count of missing
(non-finite) pixels. With a known alignment (:func:`reuse_alignment`, a
turntable's repeated focus sequence) it only reads the frames for those.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend, block_mean
from .align import (
    blank_value,
    describe_transform,
    estimate_transform,
    group_reference,
    largest_group,
    relative_to,
)
from .errors import StackError
from .exposure import thumbnail
from .io import FrameSource
from .pixels import full_scale, to_unit_float
from .result import ReferenceChange
from .streaming import FrameCache, RunProgress, read_frame

__all__ = [
    "ALIGN_PIXELS", "Alignment", "align_stack", "check_transform_count", "implausible", "mark_nonfinite",
    "registration_plan", "reuse_alignment",
]

#: Registration refines up to the first pyramid level of at most this many pixels.
ALIGN_PIXELS = 1_000_000


@dataclass
class Alignment:
    """What the alignment pass found.

    Attributes
    ----------
    ref : int
        The reference frame.
    transforms : list
        3x3 reference->frame matrix per frame, None for excluded frames.
    quality : list
        Registration quality per frame (1 for the reference, NaN when not
        estimated, None when never measured).
    reasons : list
        Why each excluded frame is excluded (None for the others).
    thumbs : list
        ``(thumbnail, block size)`` per frame, for exposure matching (None
        when the frame was not read).
    missing : list
        Non-finite pixels per frame.
    reference_changed : ReferenceChange, optional
    notes : list of str
        One line per thing the user should know (see :meth:`describe`).
    blank : list of bool
        Per frame: it holds one value everywhere (excluded, never registered).
    """

    ref: int
    transforms: list
    quality: list
    reasons: list
    thumbs: list
    missing: list
    reference_changed: ReferenceChange | None = None
    notes: list = field(default_factory=list)
    blank: list = field(default_factory=list)  # per frame: True for a frame that holds nothing (one value)

    @property
    def connected(self) -> int:
        """Frames aligned to the reference, the reference included."""
        return sum(m is not None for m in self.transforms)

    def describe(self, names: list[str]) -> None:
        """Write the user-facing notes (a replaced reference, non-finite pixels)."""
        self.notes = []
        if self.reference_changed:
            old, new = self.reference_changed.old, self.reference_changed.new
            self.notes.append(
                f"the reference {names[old]} {self.reference_changed.reason}; {names[new]} is the reference instead"
            )
        bad = [(names[i], k) for i, k in enumerate(self.missing) if k]
        if bad:
            listed = ", ".join(f"{name} ({k} px)" for name, k in bad)
            self.notes.append(
                f"{sum(k for _, k in bad)} non-finite pixels (NaN or inf) treated as missing data in "
                f"{len(bad)} frame{'s' if len(bad) > 1 else ''}: {listed}"
            )


def mark_nonfinite(frame: np.ndarray) -> int:
    """Set inf in a float host frame to NaN (one marker for missing data); return the pixels missing."""
    if frame.dtype.kind != "f":
        return 0
    bad = ~np.isfinite(frame)
    if not bad.any():
        return 0
    frame[bad] = np.nan
    return int((bad.any(axis=2) if bad.ndim == 3 else bad).sum())


def implausible(m: np.ndarray, quality: float, min_quality: float, shape: tuple[int, int]) -> str | None:
    """Why a neighbour-to-neighbour registration cannot be trusted, or None."""
    d = describe_transform(m, shape)
    if not np.isfinite(m).all():
        return "alignment diverged"
    if quality < min_quality:
        return f"alignment quality {quality:.2f} below {min_quality:.2f} (frame unlike its neighbour)"
    if not 0.85 <= d["scale"] <= 1.15:
        return f"implausible scale change {d['scale']:.3f} between neighbouring frames"
    if abs(d["rotation_deg"]) > 10:
        return f"implausible rotation {d['rotation_deg']:.1f} degrees between neighbouring frames"
    if math.hypot(d["shift_x"], d["shift_y"]) > 0.25 * math.hypot(*shape):
        return "implausible shift between neighbouring frames"
    return None


def align_stack(
    source: FrameSource,
    ref: int,
    *,
    model: str,
    backend: Backend,
    cache: FrameCache,
    progress: RunProgress,
    weights: Any = None,
    min_quality: float = 0.5,
    workers: int = 1,
) -> Alignment:
    """Align every frame to ``ref``; when it is blank or matches fewer than half the other frames, to the
    middle of the largest group of frames that register to one another.

    A reference that matches few frames is the odd one out (blank, bumped,
    rotated, another scene): aligning to it would keep it (nearly) alone.

    Parameters
    ----------
    source : FrameSource
    ref : int
        The reference frame asked for.
    model : {"similarity", "affine", "translation", "none"}
    backend : Backend
    cache : FrameCache
        Decoded frames are offered to it (kept for the fusion pass within its budget).
    progress : RunProgress
        Ticked once per frame.
    weights : sequence of float, optional
        Each channel's weight in the gray image registered (None: luma-like alike).
    min_quality : float
        Registrations whose correlation falls below this exclude the frame.
    workers : int
        With more than one (and on the CPU), both directions run at once.

    Raises
    ------
    StackError
        Every frame is blank.
    """
    args = dict(model=model, backend=backend, weights=weights, min_quality=min_quality, workers=workers)
    al = _chain(source, ref, cache=cache, progress=progress, **args)
    n = len(source)
    usable = [i for i in range(n) if not al.blank[i]]
    if not usable:
        raise StackError(
            f"every frame is blank (each holds one value, e.g. {source.names[0]}): there is nothing to stack"
        )
    blank_ref = al.blank[ref]
    if not blank_ref and 2 * al.connected > len(usable):
        al.describe(source.names)
        return al
    others = [i for i in usable if al.transforms[i] is None]  # frames outside the reference's group
    group = largest_group(others, _matcher(source, model, backend, weights, min_quality))
    best = al
    if blank_ref or len(group) > al.connected:
        trial = _chain(source, group_reference(group, ref), cache=FrameCache(0), progress=progress.quiet(), **args)
        if blank_ref or trial.connected > al.connected:
            best = trial
    if best is not al:
        if blank_ref:
            why = f"is {al.reasons[ref]}"
        elif al.connected == 1:
            why = f"matched no other frame: {al.reasons[ref + 1 if ref + 1 < n else ref - 1]}"
        else:
            why = f"matched only {al.connected - 1} of the {len(usable) - 1} other frames"
        best.reference_changed = ReferenceChange(ref, best.ref, why)
    best.describe(source.names)
    return best


def _matcher(
    source: FrameSource, model: str, backend: Backend, weights: Any, min_quality: float
) -> Callable[[int, int], bool]:
    """``matches(a, b)``: whether frame ``b`` registers to frame ``a`` as a neighbour must (the group search).

    Frames are registered as :func:`_chain` registers them (decoded at a
    reduced size for big frames, :func:`registration_plan`); the last few
    pyramids are kept.
    """
    peak = full_scale(source.dtype)
    reduction, levels, finest = registration_plan(source.shape, reduce=True)
    shape = (-(-source.shape[0] // reduction), -(-source.shape[1] // reduction))
    pyramids: dict[int, list] = {}

    def pyr(i: int) -> list:
        if i not in pyramids:
            if len(pyramids) >= 4:
                pyramids.pop(next(iter(pyramids)))
            host, _ = _reduced_frame(source, i, reduction)
            gray = backend.to_gray(to_unit_float(backend, backend.asarray(host), peak), weights)
            pyramids[i] = pyramid.gaussian_pyramid(backend, gray, levels)
        return pyramids[i]

    def matches(a: int, b: int) -> bool:
        if model == "none":
            return True
        ta, tb = pyr(a), pyr(b)
        reg = estimate_transform(
            ta[0], tb[0], model, backend=backend, template_pyramid=ta, moving_pyramid=tb, finest_level=finest
        )
        return implausible(reg.matrix, reg.quality, min_quality, shape) is None

    return matches


def _chain(
    source: FrameSource, ref: int, *, model: str, backend: Backend, cache: FrameCache, progress: RunProgress,
    weights: Any, min_quality: float, workers: int,
) -> Alignment:
    """Register the frames to ``ref`` by chaining outward from it: one direction per thread.

    Each frame is decoded once (at half size for big frames when nothing is
    cached: registration stops at half resolution anyway), reduced to a
    gray Gaussian pyramid, and registered to the last frame that aligned on
    its side; the transform to the reference is the product along the chain.
    """
    n = len(source)
    h, w = source.shape[:2]
    peak = full_scale(source.dtype)
    transforms: list = [None] * n
    quality: list = [None] * n
    reasons: list = [None] * n
    thumbs: list = [None] * n
    missing: list = [0] * n
    blank: list = [False] * n
    transforms[ref] = np.eye(3)
    quality[ref] = 1.0
    # Registration of big frames stops at a reduced resolution anyway, so with no
    # frame cache to fill, decode them at that size where that is cheap (JPEG).
    reduction, levels, finest = registration_plan((h, w), reduce=cache.budget == 0)
    r = float(reduction)
    to_full = np.array([[r, 0, (r - 1) / 2], [0, r, (r - 1) / 2], [0, 0, 1]])  # reduced pixel j: full r*j .. r*j+r-1

    def load(i: int) -> list | None:
        """Decode frame ``i``; keep its thumbnail and missing pixels; return its gray pyramid."""
        host, missing[i] = _reduced_frame(source, i, reduction)
        thumb, f = thumbnail(host, peak)
        thumbs[i] = (thumb, reduction * f)
        value = blank_value(host)
        if value is not None:  # nothing to register or fuse
            blank[i] = True
            reasons[i] = "blank (every pixel is " + ("NaN or inf)" if math.isnan(value) else f"{value:g})")
        on_device = backend.asarray(host)
        cache.put(i, on_device)
        if model == "none" or blank[i] or blank[ref]:
            return None
        gray = backend.to_gray(to_unit_float(backend, on_device, peak), weights)
        return pyramid.gaussian_pyramid(backend, gray, levels)

    ref_pyramid = load(ref)
    progress.tick("align")
    lock = threading.Lock()

    def walk(order: list[int]) -> None:
        # a failed frame is skipped and the next one is registered to the last good one
        last, last_m = ref_pyramid, np.eye(3)
        for i in order:
            cur = load(i)
            if blank[i] or blank[ref]:
                reasons[i] = reasons[i] or "not aligned: the reference frame is blank"
            elif model == "none":
                transforms[i], quality[i] = np.eye(3), float("nan")
            else:
                reg = estimate_transform(
                    last[0], cur[0], model, backend=backend, template_pyramid=last,
                    moving_pyramid=cur, finest_level=finest,
                )
                if reduction > 1:
                    reg.matrix = to_full @ reg.matrix @ np.linalg.inv(to_full)
                why = implausible(reg.matrix, reg.quality, min_quality, (h, w))
                quality[i] = reg.quality
                if why:
                    reasons[i] = why
                else:
                    transforms[i] = reg.matrix @ last_m
                    last, last_m = cur, transforms[i]
            with lock:
                progress.tick("align")

    up, down = list(range(ref + 1, n)), list(range(ref - 1, -1, -1))
    if workers > 1 and up and down and not backend.is_gpu:
        with ThreadPoolExecutor(2) as pool:
            for fut in [pool.submit(walk, up), pool.submit(walk, down)]:
                fut.result()
    else:
        walk(up)
        walk(down)
    return Alignment(ref, transforms, quality, reasons, thumbs, missing, blank=blank)


def registration_plan(shape: tuple[int, ...], reduce: bool = True) -> tuple[int, int, int]:
    """How frames of ``shape`` are registered: ``(reduction, levels, finest)``.

    Registration refines up to the first pyramid level of at most
    :data:`ALIGN_PIXELS` pixels; frames are decoded at that reduction
    (2, 4 or 8, where the decoder scales cheaply: JPEG), ``levels`` is the
    pyramid depth of the reduced image and ``finest`` the level of it
    registration stops at. Without ``reduce`` (frames kept at full size for
    the fusion pass) the reduction is 1.
    """
    h, w = int(shape[0]), int(shape[1])
    levels = pyramid.n_levels((h, w), min_size=24)
    finest = 0
    while (h * w) / 4**finest > ALIGN_PIXELS and finest < levels - 1:
        finest += 1
    steps = min(finest, 3) if reduce else 0
    return 2**steps, levels - steps, finest - steps


def _reduced_frame(source: FrameSource, i: int, reduction: int) -> tuple[np.ndarray, int]:
    """Frame ``i`` at ``1 / reduction`` of its size (decoded so, else block means) and its missing pixels.

    Missing (non-finite) pixels are counted at full size, so only when the
    frame had to be decoded whole (never for JPEG, which holds none).
    """
    host = source.read_reduced(i, reduction) if reduction > 1 else None
    if host is not None:
        return host, 0
    host = source.read(i)
    missing = mark_nonfinite(host)
    return (block_mean(np, host, reduction) if reduction > 1 else host), missing


def check_transform_count(transforms: list, n: int) -> None:
    """Refuse transforms that do not match the ``n`` frames of a stack one to one (:class:`StackError`)."""
    if len(transforms) != n:
        raise StackError(
            f"{len(transforms)} transforms were given for a stack of {n} frames; they must match one to one"
        )


def reuse_alignment(
    transforms: list, source: FrameSource, ref: int, *, cache: FrameCache, progress: RunProgress,
    read_frames: bool = True,
) -> Alignment:
    """The alignment from known transforms (another stack's, the same focus sequence).

    With ``read_frames`` every frame is read once for its exposure thumbnail
    and missing-pixel count; without, the frames are read only to be fused.

    Raises
    ------
    StackError
        The number of transforms differs from the number of frames, or the
        reused alignment excludes every possible reference.
    """
    n = len(source)
    check_transform_count(transforms, n)
    mats = [None if m is None else np.asarray(m, dtype=float) for m in transforms]
    changed = None
    if mats[ref] is None:
        # the reused alignment replaced this reference: take the frame it used instead
        own = [i for i, m in enumerate(mats) if m is not None and np.allclose(m, np.eye(3))]
        if not own:
            raise StackError(f"the reused alignment excludes the reference frame {source.names[ref]}")
        changed = ReferenceChange(ref, own[0], "is excluded in the reused alignment")
        ref = own[0]
    mats = relative_to(mats, ref)
    quality = [float("nan") if m is not None else None for m in mats]
    reasons = [None if m is not None else "excluded in the reused alignment" for m in mats]
    thumbs, missing = [None] * n, [0] * n
    peak = full_scale(source.dtype)
    for i in range(n) if read_frames else ():
        host = read_frame(source, cache, i)
        missing[i] = mark_nonfinite(host)
        thumbs[i] = thumbnail(host, peak)
        progress.tick("align")
    if not read_frames:
        progress.tick("align", n)
    al = Alignment(ref, mats, quality, reasons, thumbs, missing, reference_changed=changed)
    al.describe(source.names)
    return al

