"""What one stack produced: :class:`StackResult` and its typed :class:`StackReport`.

The engine returns data and writes nothing. The report is a dataclass, so
that the command line, the batch and the widgets read attributes, not
string keys; :meth:`StackReport.to_dict` gives the one JSON-ready form that
reports, CSV rows and napari layer metadata are made from.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .io import ImageMeta

__all__ = ["FrameReport", "ReferenceChange", "StackReport", "StackResult", "Timings"]


@dataclass
class FrameReport:
    """One frame of a stack: how it was aligned, corrected and used.

    Attributes
    ----------
    index : int
        Position in the input order, from 0.
    name : str
        File name, or ``frame N`` for arrays.
    quality : float or None
        Correlation of the frame with its neighbour after alignment (-1..1);
        1 for the reference, NaN when the alignment was reused or not
        estimated, None when it was never measured.
    excluded : bool
        The frame takes no part in the result (see ``reason``).
    reason : str, optional
        Why it is excluded.
    scale, rotation_deg, shift_x, shift_y : float, optional
        Its transform relative to the reference (see
        :func:`~napari_focus_stack.align.describe_transform`); None when excluded.
    gain : list of float, optional
        Per-channel exposure gain towards the reference.
    nonfinite_pixels : int
        Pixels with NaN or inf, treated as missing data.
    warped : bool, optional
        False when the frame moved too little to be resampled (used as it is).
    retouched_pixels : int
        Pixels of the result taken from this frame by hand (a retouch mask, see
        :mod:`napari_focus_stack.retouch`).
    """

    index: int
    name: str
    quality: float | None = None
    excluded: bool = False
    reason: str | None = None
    scale: float | None = None
    rotation_deg: float | None = None
    shift_x: float | None = None
    shift_y: float | None = None
    gain: list[float] | None = None
    nonfinite_pixels: int = 0
    warped: bool | None = None
    retouched_pixels: int = 0

    def to_dict(self) -> dict:
        """The JSON-ready form: fields that say nothing (None, 0 missing pixels) are left out."""
        out = {"index": self.index, "name": self.name, "quality": self.quality, "excluded": self.excluded}
        for key in ("scale", "rotation_deg", "shift_x", "shift_y", "reason", "gain", "warped"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.nonfinite_pixels:
            out["nonfinite_pixels"] = self.nonfinite_pixels
        if self.retouched_pixels:
            out["retouched_pixels"] = self.retouched_pixels
        return out


@dataclass(frozen=True)
class ReferenceChange:
    """The reference frame was replaced: by index, and why."""

    old: int
    new: int
    reason: str

    def to_dict(self) -> dict:
        return {"from": self.old, "to": self.new, "reason": self.reason}


@dataclass
class Timings:
    """Seconds spent in each pass of one stack."""

    align_s: float = 0.0
    fuse_s: float = 0.0
    total_s: float = 0.0


@dataclass
class StackReport:
    """How one stack was aligned and fused.

    Attributes
    ----------
    frames : list of FrameReport
        One per input frame, in input order.
    reference : int
        Index of the reference frame (after any replacement).
    reference_changed : ReferenceChange, optional
        Set when the asked-for reference matched no other frame.
    warnings : list of str
        Lines the user should read (also issued as ``FocusStackWarning``).
    backend, device : str
        Where it ran ("cpu"/"gpu", and the device's name).
    parameters : dict
        The engine options that shape the result.
    timings : Timings
    channel_weights, alignment_weights : list of float, optional
        Each channel's say in the focus decision and in alignment (None:
        colour channels alike).
    exposure_matched : bool
    tiles : int
        Windows the fusion ran in (1: whole image).
    cache_hits : int
        Frames the fusion took from the decoded-frame cache.
    inputs : list of str
        The input files (empty for arrays).
    index : dict, optional
        For one z-stack of N-D data: its position on the loop axes (``{"T": 2}``).
    reused_alignment : bool
        For N-D data: the transforms came from the first z-stack.
    """

    frames: list[FrameReport]
    reference: int
    backend: str
    device: str
    parameters: dict
    timings: Timings = field(default_factory=Timings)
    reference_changed: ReferenceChange | None = None
    warnings: list[str] = field(default_factory=list)
    channel_weights: list[float] | None = None
    alignment_weights: list[float] | None = None
    exposure_matched: bool = True
    tiles: int = 1
    cache_hits: int = 0
    inputs: list[str] = field(default_factory=list)
    index: dict | None = None
    reused_alignment: bool = False

    @property
    def excluded(self) -> list[str]:
        """Names of the excluded frames."""
        return [f.name for f in self.frames if f.excluded]

    @property
    def excluded_frames(self) -> list[FrameReport]:
        """The excluded frames, with their reasons."""
        return [f for f in self.frames if f.excluded]

    @property
    def unwarped(self) -> list[str]:
        """Names of the frames fused without resampling (they moved less than a tenth of a pixel)."""
        return [f.name for f in self.frames if f.warped is False]

    @property
    def reference_name(self) -> str:
        return self.frames[self.reference].name

    @property
    def quality_range(self) -> tuple[float | None, float | None]:
        """(min, mean) alignment quality of the frames aligned to a neighbour (reference and reused excepted)."""
        values = [
            f.quality for f in self.frames
            if not f.excluded and f.index != self.reference and f.quality is not None and math.isfinite(f.quality)
        ]
        if not values:
            return None, None
        return min(values), sum(values) / len(values)

    def to_dict(self) -> dict:
        """The JSON-ready form (batch reports, napari layer metadata)."""
        out = {
            "frames": [f.to_dict() for f in self.frames],
            "reference": self.reference,
            "reference_changed": None if self.reference_changed is None else self.reference_changed.to_dict(),
            "warnings": list(self.warnings),
            "excluded": self.excluded,
            "unwarped": self.unwarped,
            "backend": self.backend,
            "device": self.device,
            "parameters": dict(self.parameters),
            "timings": asdict(self.timings),
            "channel_weights": self.channel_weights,
            "alignment_weights": self.alignment_weights,
            "exposure_matched": self.exposure_matched,
            "tiles": self.tiles,
            "cache_hits": self.cache_hits,
            "inputs": list(self.inputs),
        }
        if self.index is not None:
            out["index"] = dict(self.index)
            out["reused_alignment"] = self.reused_alignment
        return out


@dataclass
class StackResult:
    """Everything one stack produced. Writing is a separate step.

    Attributes
    ----------
    image : ndarray
        The fused image, dtype and channels of the input.
    depth_raw : ndarray
        float32 fractional index of the sharpest frame, as measured.
    confidence : ndarray
        float32, 0..1.
    transforms : list
        3x3 reference->frame matrix per frame, None for excluded frames.
    report : StackReport
    meta : ImageMeta, optional
        The reference frame's metadata (EXIF, ICC).
    depth : ndarray, optional
        The regularised depth map (see :mod:`napari_focus_stack.depth`):
        confident pixels as measured, the others filled edge-aware from
        them. None when the run was told not to compute it
        (``FocusStacker.stack(..., depth=False)``).
    retouch : ndarray, optional
        The retouch mask applied (see :mod:`napari_focus_stack.retouch`):
        where it is k > 0 the result shows frame k (from 1), the depth
        maps hold k - 1 and the confidence is 1.0, set by hand. None when
        nothing was retouched.
    """

    image: np.ndarray
    depth_raw: np.ndarray
    confidence: np.ndarray
    transforms: list
    report: StackReport
    meta: ImageMeta | None = None
    depth: np.ndarray | None = None
    retouch: np.ndarray | None = None

    def arrays(self, kinds: Any) -> dict[str, np.ndarray]:
        """The arrays of the given output kinds ("image", "depth", "confidence").

        Raises
        ------
        ValueError
            A depth map is asked for but was not computed.
        """
        out = {}
        for kind in kinds:
            value = getattr(self, kind)
            if value is None:
                raise ValueError(f"this result has no {kind} map: run the stack with {kind}=True")
            out[kind] = value
        return out
