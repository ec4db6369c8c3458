"""Synthetic turntable scans: one focus stack per position, one focus sequence, OpenScan3 file names.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .render import check_args, draw_transforms, geometry_margin, jpeg_round_trip, quantize, warp_cubic
from .stacks import SyntheticStack, make_stack


@dataclass
class TurntableScan:
    """A synthetic turntable scan: one focus stack per position, one focus sequence.

    Attributes
    ----------
    positions : list of SyntheticStack
        One stack per turntable position, each with its own content and
        ground truth; its ``transforms`` are that position's true ones.
    focus_transforms : list of ndarray
        The transforms of the focus sequence shared by every position
        (reference -> frame, 3x3); a position's true transforms are these
        times its jitter (and, for a disturbed position, its disturbance).
    disturbed : tuple of int
        Positions whose frames moved on their own while they were taken.
    scan_index : int
        Used in the OpenScan3 file names (``scanNN``).
    """

    positions: list[SyntheticStack]
    focus_transforms: list[np.ndarray]
    disturbed: tuple[int, ...] = ()
    scan_index: int = 1

    @property
    def n_positions(self) -> int:
        """Number of turntable positions."""
        return len(self.positions)


def make_turntable_scan(
    n_positions: int = 6,
    n_frames: int = 8,
    shape: tuple[int, int] = (384, 512),
    *,
    scenes: str | tuple[str, ...] = ("pcb", "rocks", "checker", "coffee", "astronaut", "chelsea"),
    seed: int = 0,
    scan_index: int = 1,
    breathing: float = 0.03,
    max_rotation_deg: float = 0.5,
    max_shift: float = 4.0,
    jitter: float = 0.1,
    disturbed: tuple[int, ...] = (),
    disturbance: float = 6.0,
    gain_range: float = 0.05,
    noise: float = 0.005,
    max_blur: float = 6.0,
    jpeg_quality: int | None = 95,
) -> TurntableScan:
    """Render a turntable scan: several positions shot with one focus sequence.

    A turntable scanner (OpenScan) turns the object between positions and,
    at each, runs the same focus sequence. So the frame-to-frame geometry
    (focus breathing, the small shifts and tilts of the focus mechanism) is
    nearly the same at every position while the content differs: the case
    for estimating the alignment once and reusing it.

    Parameters
    ----------
    n_positions : int
        Turntable positions (stacks), at least 1.
    n_frames, shape, breathing, max_rotation_deg, max_shift, gain_range, noise, max_blur
        As for :func:`make_stack`; the geometry is drawn once for the scan.
    scenes : str or tuple of str
        Scene of each position, cycled (see :data:`SCENES`); every position
        has its own seed, so procedural scenes differ even when repeated.
    seed : int
        Seed of the whole scan.
    scan_index : int
        Scan number used by :func:`save_turntable_scan`.
    jitter : float
        Standard deviation (px) of a random shift added to every
        non-reference frame at every position: vibration, backlash. The
        shared alignment is off by about this much at each position.
    disturbed : tuple of int
        Positions where the frames moved on their own (the scanner was
        bumped): each non-reference frame gets an extra random shift of
        `disturbance` px, so the shared alignment does not fit there.
    disturbance : float
        Size (px) of those extra shifts.
    jpeg_quality : int or None
        JPEG round trip of every frame (the firmware saves JPEG).

    Returns
    -------
    TurntableScan

    Examples
    --------
    >>> scan = make_turntable_scan(3, 4, (64, 80), scenes="checker", jitter=0.0)
    >>> scan.n_positions, scan.positions[0].n_frames, scan.positions[1].frames[0].shape
    (3, 4, (64, 80, 3))
    >>> bool(np.allclose(scan.positions[2].transforms[0], scan.focus_transforms[0]))
    True
    """
    if int(n_positions) < 1:
        raise ValueError(f"n_positions must be at least 1, got {n_positions}")
    names = (scenes,) if isinstance(scenes, str) else tuple(scenes)
    if not names:
        raise ValueError("scenes must name at least one scene")
    for name in names:
        check_args(name, shape, n_frames, np.uint8, max_blur, breathing, max_rotation_deg,
                    max_shift, gain_range, noise, jpeg_quality)
    for name, value in (("jitter", jitter), ("disturbance", disturbance)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    bad = [p for p in disturbed if not 0 <= int(p) < n_positions]
    if bad:
        raise ValueError(f"disturbed positions {bad} are not in 0..{n_positions - 1}")
    height, width = int(shape[0]), int(shape[1])
    n = int(n_frames)
    reference = n // 2
    seeds = np.random.SeedSequence(seed).spawn(int(n_positions) + 1)
    rng = np.random.default_rng(seeds[0])
    focus = draw_transforms(rng, (height, width), n, reference, breathing, max_rotation_deg, max_shift)
    # Content is rendered without motion on a larger view, then resampled
    # into each frame's geometry: the view must cover any moved frame.
    extra = max_shift + 4.0 * jitter + (disturbance if disturbed else 0.0)
    margin = geometry_margin((height, width), breathing, max_rotation_deg, extra)
    big = (height + 2 * margin, width + 2 * margin)
    crop = (slice(margin, margin + height), slice(margin, margin + width))
    positions = []
    for p in range(int(n_positions)):
        prng = np.random.default_rng(seeds[p + 1])
        still = make_stack(
            names[p % len(names)], shape=big, n_frames=n, seed=int(prng.integers(2**31)),
            max_blur=max_blur, breathing=0.0, max_rotation_deg=0.0, max_shift=0.0,
            gain_range=gain_range, noise=0.0,
        )
        moves = prng.normal(0.0, jitter, size=(n, 2))
        if p in disturbed:
            angle = prng.uniform(0.0, 2.0 * math.pi, size=n)
            moves += disturbance * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        transforms, frames = [], []
        for k in range(n):
            matrix = focus[k].copy()
            if k != reference:
                matrix[:2, 2] += moves[k]
            transforms.append(matrix)
            image = still.frames[k].astype(np.float32) / np.float32(255.0)
            image = warp_cubic(image, matrix, margin, (height, width))
            if noise > 0:
                image += np.float32(noise) * prng.standard_normal(image.shape, dtype=np.float32)
            frame = quantize(image, np.dtype(np.uint8), 255.0)
            if jpeg_quality is not None:
                frame = jpeg_round_trip(frame, jpeg_quality)
            frames.append(frame)
        still.frames = []
        positions.append(
            SyntheticStack(
                frames=frames,
                truth=np.ascontiguousarray(still.truth[crop]),
                depth_index=np.ascontiguousarray(still.depth_index[crop]),
                transforms=transforms,
                reference=reference,
                texture_mask=np.ascontiguousarray(still.texture_mask[crop]),
                depth=np.ascontiguousarray(still.depth[crop]),
                focus_positions=still.focus_positions,
                gains=still.gains,
                blur_per_frame=still.blur_per_frame,
            )
        )
    return TurntableScan(positions, focus, tuple(int(p) for p in disturbed), int(scan_index))


def save_turntable_scan(scan: TurntableScan, project: str | os.PathLike, quality: int = 95) -> list[list[Path]]:
    """Write a scan as the OpenScan3 firmware does: ``<project>/scanNN/scanNN_PPP_fsKK.jpg``.

    Parameters
    ----------
    scan : TurntableScan
    project : path-like
        The project folder; ``scanNN`` is created in it.
    quality : int
        JPEG quality.

    Returns
    -------
    list of list of Path
        The files of each position, in focus order (``fs00`` first).
    """
    from PIL import Image

    folder = Path(project) / f"scan{scan.scan_index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p, stack in enumerate(scan.positions):
        paths = []
        for k, frame in enumerate(stack.frames):  # the firmware counts fs from 0
            path = folder / f"scan{scan.scan_index:02d}_{p:03d}_fs{k:02d}.jpg"
            Image.fromarray(np.ascontiguousarray(frame)).save(path, quality=int(quality))
            paths.append(path)
        out.append(paths)
    return out
