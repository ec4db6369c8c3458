"""Physically based synthetic focus stacks with ground truth.

A scene is a texture (a bundled scikit-image photograph or a procedural
pattern) painted on a relief: a sloped, bumpy background with one or two raised
objects whose outlines are sharp depth discontinuities. Each frame is focused
at a different depth. Defocus follows a thin-lens model (blur radius linear in
the distance to the focal plane, pillbox point spread function) and is
rendered by depth layers composited far to near, so the blur of a defocused
near object spills over the background behind it, as in a real lens.

Optionally, thin structures (hairs, bristles, wires) hang far in front of
the scene, where stackers leave halos.

Frames then get what a real camera adds: focus breathing (scale), small
rotations and shifts, per-channel exposure gain, noise (read noise and,
optionally, shot noise), quantisation and, optionally, JPEG compression. Everything the stacker should recover is kept
as ground truth: the all-in-focus image, the fractional in-focus frame index
of every pixel and the true frame transforms.

Examples
--------
>>> from napari_focus_stack.synthetic import make_stack
>>> stack = make_stack("pcb", shape=(96, 128), n_frames=5, seed=1)
>>> len(stack.frames), stack.frames[0].shape, stack.frames[0].dtype
(5, (96, 128, 3), dtype('uint8'))
>>> float(stack.depth_index.min()) >= 0.0 and float(stack.depth_index.max()) <= 4.0
True
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._runtime import default_threads

# SciPy is imported in the functions that use it: the command line imports this
# module for its scene names on every run, and scipy.signal alone takes 0.5 s.

__all__ = [
    "OCCLUDERS",
    "SCENES",
    "SyntheticHyperstack",
    "SyntheticStack",
    "make_hyperstack",
    "TurntableScan",
    "make_stack",
    "make_turntable_scan",
    "oracle_composite",
    "save_stack",
    "save_turntable_scan",
]

#: Names accepted by :func:`make_stack`. The first five are photographs that
#: ship inside scikit-image (no download); the others are procedural and
#: have detail at every scale, whatever the output size ("patches" also has
#: large untextured patches, where focus cannot be observed). "board" brings
#: its own relief: a circuit board seen at its edge, with bright pads and
#: white print on a weakly textured board, featureless raised chips and a
#: featureless far background (where depth cannot be observed, and the
#: defocused spill of bright edges imitates focus). "fine" is dense detail
#: at 2-6 px periods (facets like an insect's eye, fine grain) on a rough
#: relief, where softness shows.
SCENES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "coins",
    "camera",
    "rocks",
    "pcb",
    "checker",
    "patches",
    "board",
    "fine",
)

_PHOTOS = {"astronaut", "coffee", "chelsea", "coins", "camera"}

#: Thin structures :func:`make_stack` can hold in front of any scene (its
#: ``occluders`` argument): dark curly hairs, a tuft of pale bristles, or a
#: few thick insulated wires. They lie far in front of the background, where
#: the stackers' halos and ghost edges are worst.
OCCLUDERS: tuple[str, ...] = ("hairs", "bristles", "wires")

# Blur radius (px) per frame of defocus never drops below this, so that a
# point two frames away from its focal plane is blurred by >= 1.5 px.
_MIN_BLUR_PER_FRAME = 0.75
# Below this radius (px) a layer is not blurred at all.
_NO_BLUR_RADIUS = 0.3
# Standard deviation (px) of the best-focus blur given to procedural scenes.
_LENS_SIGMA = 0.6
# Side of the square tiles the renderer works on (px).
_TILE = 256

# Swaps (x, y, 1) <-> (row, col, 1) = (y, x, 1); it is its own inverse.
_SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class SyntheticStack:
    """A synthetic focus stack and its ground truth.

    Attributes
    ----------
    frames : list of ndarray
        The frames, each ``(H, W, 3)`` (or ``(H, W)`` when gray), of the
        requested integer dtype, in their own (moved) geometry.
    truth : ndarray
        All-in-focus image in reference geometry, same dtype and shape as a
        frame, without gain, noise or compression.
    depth_index : ndarray
        ``(H, W)`` float32, the fractional frame index at which each
        reference pixel is in focus, in ``[0, n - 1]``.
    transforms : list of ndarray
        One 3x3 float64 matrix per frame mapping reference pixel coordinates
        ``(x=col, y=row, 1)`` to that frame's pixel coordinates.
    reference : int
        Index of the reference frame (``n // 2``); its transform is the
        identity.
    texture_mask : ndarray
        ``(H, W)`` bool, pixels whose neighbourhood in ``truth`` has enough
        contrast for focus to be observable.
    depth : ndarray
        ``(H, W)`` float32 scene depth (distance from the camera, arbitrary
        units: the reference view spans ``[0, 1]``).
    focus_positions : ndarray
        ``(n,)`` float64 depth of each frame's focal plane, increasing.
    gains : ndarray
        ``(n, channels)`` float64 exposure gain applied to each frame.
    blur_per_frame : float
        Blur radius (px) per frame of defocus.
    """

    frames: list[np.ndarray]
    truth: np.ndarray
    depth_index: np.ndarray
    transforms: list[np.ndarray]
    reference: int
    texture_mask: np.ndarray
    depth: np.ndarray
    focus_positions: np.ndarray
    gains: np.ndarray
    blur_per_frame: float = field(default=0.0)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frames)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------


def make_stack(
    scene: str = "astronaut",
    shape: tuple[int, int] = (384, 512),
    n_frames: int = 8,
    *,
    seed: int = 0,
    gray: bool = False,
    dtype: np.dtype | type = np.uint8,
    max_blur: float = 6.0,
    breathing: float = 0.03,
    max_rotation_deg: float = 0.5,
    max_shift: float = 4.0,
    gain_range: float = 0.05,
    noise: float = 0.005,
    jpeg_quality: int | None = None,
    objects: bool = True,
    photons: float | None = None,
    occluders: str | None = None,
) -> SyntheticStack:
    """Render a synthetic focus stack with ground truth.

    Parameters
    ----------
    scene : str, optional
        One of :data:`SCENES`.
    shape : tuple of int, optional
        ``(height, width)`` of every frame, at least 16 x 16.
    n_frames : int, optional
        Number of frames, at least 2. Focal planes are evenly spaced from the
        nearest to the farthest point of the reference view; frame 0 is
        focused nearest.
    seed : int, optional
        Seed of the random generator: the same arguments give the same stack.
    gray : bool, optional
        Render a single-channel stack (frames of shape ``(H, W)``).
    dtype : {numpy.uint8, numpy.uint16}, optional
        Dtype of the frames and of ``truth``.
    max_blur : float, optional
        Blur radius (px) of the most defocused point, i.e. of the farthest
        point in the frame focused nearest. It is raised to
        ``0.75 * (n_frames - 1)`` when smaller, so that a point two frames
        away from focus is always blurred by at least 1.5 px.
    breathing : float, optional
        Relative change of magnification across the stack (focus
        breathing); it grows linearly with the frame index.
    max_rotation_deg : float, optional
        Rotations are drawn uniformly in ``+-max_rotation_deg`` degrees.
    max_shift : float, optional
        Shifts are drawn uniformly in ``+-max_shift`` pixels on each axis.
    gain_range : float, optional
        Exposure gains are drawn uniformly in ``1 +- gain_range`` per frame
        and channel (the reference frame has gain 1).
    noise : float, optional
        Standard deviation of additive Gaussian noise (read noise), in units
        of the full intensity range.
    jpeg_quality : int or None, optional
        When given, every frame goes through an in-memory JPEG round trip at
        this quality (uint8 only).
    objects : bool, optional
        Raise one or two objects with sharp outlines over the background;
        False leaves a smooth surface (a sloped, bumpy relief). In the
        "board" scene the chips are raised or, with False, flat on the board.
    photons : float or None, optional
        Shot noise: when given, a pixel of intensity ``v`` (0..1) counts
        ``Poisson(v * photons) / photons``, i.e. ``photons`` is the expected
        photon (electron) count at full scale. A phone at high ISO collects a
        few thousand, a dim microscope a few hundred.
    occluders : {"hairs", "bristles", "wires"} or None, optional
        Thin structures (see :data:`OCCLUDERS`) in front of the scene: they
        are the nearest points (frame 0 focuses on them), several frames in
        front of the background.

    Returns
    -------
    SyntheticStack
        The frames and their ground truth.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    The scene is rendered on a canvas larger than the frames, so that moved
    frames show real scene content at their edges. Per frame, the canvas is
    split into depth layers (a fraction of a frame thick, at most ~25); each
    layer (colour premultiplied by its mask, and the mask) is blurred with the
    pillbox of its defocus radius, and the layers are composited far to near
    with the "over" operator. The result is normalised by the accumulated
    coverage, then resampled (cubic spline) into the frame's geometry.

    Examples
    --------
    >>> stack = make_stack("checker", shape=(64, 80), n_frames=4, seed=3, gray=True)
    >>> stack.frames[0].shape, stack.reference
    ((64, 80), 2)
    >>> bool(np.allclose(stack.transforms[stack.reference], np.eye(3)))
    True
    """
    height, width = _check_args(scene, shape, n_frames, dtype, max_blur, breathing,
                                max_rotation_deg, max_shift, gain_range, noise, jpeg_quality)
    if photons is not None and not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number or None, got {photons}")
    if occluders is not None and occluders not in OCCLUDERS:
        raise ValueError(f"unknown occluders {occluders!r}; choose one of {', '.join(OCCLUDERS)} or None")
    dtype = np.dtype(dtype)
    n = int(n_frames)
    rng = np.random.default_rng(seed)
    reference = n // 2
    channels = 1 if gray else 3

    transforms = _draw_transforms(rng, (height, width), n, reference, breathing,
                                  max_rotation_deg, max_shift)
    gains = rng.uniform(1.0 - gain_range, 1.0 + gain_range, size=(n, channels))
    gains[reference] = 1.0

    blur_per_frame = max(float(max_blur) / (n - 1), _MIN_BLUR_PER_FRAME)
    max_radius = blur_per_frame * (n - 1)
    margin = _geometry_margin((height, width), breathing, max_rotation_deg, max_shift)
    pad = int(math.ceil(max_radius)) + 2
    off = margin + pad  # canvas index of reference pixel (0, 0)
    canvas_shape = (height + 2 * off, width + 2 * off)

    if scene in _RELIEF_SCENES:  # texture and relief drawn together
        texture, depth = _RELIEF_SCENES[scene](canvas_shape, (off, off, height, width), rng, objects)
        _lens_blur(texture)
    else:
        texture = _scene_texture(scene, canvas_shape, rng)
        depth = _depth_map(canvas_shape, (off, off, height, width), rng, objects)
        # Objects are painted a little differently from what lies behind them,
        # as a raised part usually is; it makes their outline visible.
        objects = depth < 0.0
        texture = _tint_objects(texture, objects, rng)
        del objects
    if occluders is not None:
        _add_occluders(occluders, texture, depth, (off, off, height, width), rng)
    if gray:
        texture = _to_gray(texture)[..., None]

    crop = (slice(off, off + height), slice(off, off + width))
    d_crop = depth[crop]
    d_lo, d_hi = float(d_crop.min()), float(d_crop.max())
    depth = (depth - d_lo) / max(d_hi - d_lo, 1e-12)
    focus_positions = np.linspace(0.0, 1.0, n)
    step = focus_positions[1] - focus_positions[0]
    canvas_index = np.clip(depth / step, 0.0, n - 1).astype(np.float32)

    # Depth is cut into layers 1/q of a frame thick (at most ~25 layers, at
    # least one per frame), centred so that each focal plane is a layer
    # centre: points in focus are rendered exactly sharp.
    q = max(1, 24 // (n - 1))
    labels = np.rint(canvas_index * q).astype(np.int16)
    n_layers = q * (n - 1) + 1
    del canvas_index
    depth_ref = np.ascontiguousarray(depth[crop], dtype=np.float32)
    del depth

    region = (pad, pad, height + 2 * margin, width + 2 * margin)
    renderer = _LayerRenderer(texture, labels, n_layers, region)
    maxval = float(np.iinfo(dtype).max)

    shape_out = (height, width, channels)
    # Shot noise has its own generator: the noise thread below uses ``rng``.
    shot_rng = None if photons is None else np.random.default_rng(rng.integers(2**63))
    frames: list[np.ndarray] = []
    # Each frame's noise is drawn, in frame order, on a helper thread (NumPy
    # releases the GIL there) while the frame is rendered and resampled.
    with ThreadPoolExecutor(1) as noise_pool:
        pending = None
        for k in range(n):
            if noise > 0 and pending is None:
                pending = noise_pool.submit(rng.standard_normal, shape_out, np.float32)
            radii = blur_per_frame * np.abs(np.arange(n_layers) / q - k)
            rendered = renderer.render(radii)
            if k == reference:
                image = rendered[margin:margin + height, margin:margin + width].copy()
            else:
                image = _warp_cubic(rendered, transforms[k], margin, (height, width))
            del rendered
            image *= gains[k].astype(np.float32)
            if shot_rng is not None:
                np.clip(image, 0.0, None, out=image)
                image = shot_rng.poisson(image * np.float32(photons)).astype(np.float32)
                image *= np.float32(1.0 / photons)
            if noise > 0:
                grain = pending.result()
                pending = None
                grain *= np.float32(noise)
                image += grain
                del grain
            frame = _quantize(image, dtype, maxval)
            del image
            if gray:
                frame = frame[..., 0]
            if jpeg_quality is not None:
                frame = _jpeg_round_trip(frame, jpeg_quality)
            frames.append(frame)
    del renderer, labels

    truth_f = texture[crop]
    truth = _quantize(truth_f, dtype, maxval, inplace=False)
    texture_mask = _texture_mask(truth_f)
    if gray:
        truth = truth[..., 0]
    depth_index = np.clip(depth_ref / step, 0.0, n - 1).astype(np.float32)

    return SyntheticStack(
        frames=frames,
        truth=truth,
        depth_index=depth_index,
        transforms=transforms,
        reference=reference,
        texture_mask=texture_mask,
        depth=depth_ref,
        focus_positions=focus_positions,
        gains=gains,
        blur_per_frame=blur_per_frame,
    )


def oracle_composite(
    stack: SyntheticStack,
    warp: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray],
) -> np.ndarray:
    """Fuse a synthetic stack knowing the true depth and transforms.

    This is the practical ceiling of any focus stacker on this stack: each
    output pixel interpolates linearly between the two frames that bracket
    its true depth index, after bringing every frame back to reference
    geometry with its true transform and dividing it by its true exposure
    gain. What remains is noise, compression, resampling and the veiling
    blur of defocused near objects over the background.

    Parameters
    ----------
    stack : SyntheticStack
        A stack from :func:`make_stack`.
    warp : callable
        ``warp(image, M, out_shape) -> ndarray``: resamples ``image``
        (float32, ``(H, W)`` or ``(H, W, C)``) into reference geometry, where
        ``M`` (3x3) maps reference ``(x, y, 1)`` to frame coordinates; returns
        float32 of shape ``out_shape`` (plus channels) with NaN where the
        frame does not cover the reference.

    Returns
    -------
    ndarray
        float32 image in reference geometry, values in ``[0, 1]``. Pixels
        whose bracketing frames are NaN there take the valid frame nearest
        to their depth index; pixels covered by no frame stay NaN.

    Notes
    -----
    Frames are warped one at a time; memory holds one warped frame and the
    accumulators.
    """
    di = stack.depth_index
    out_shape = di.shape
    maxval = float(np.iinfo(stack.frames[0].dtype).max)
    acc = fallback = None
    best = np.full(out_shape, np.inf, dtype=np.float32)  # |k - di| of the fallback
    broken = np.zeros(out_shape, dtype=bool)  # a bracketing frame is NaN there
    for k, (frame, matrix) in enumerate(zip(stack.frames, stack.transforms, strict=False)):
        # The true exposure gain is undone too: a stacker can estimate it.
        gain = np.asarray(stack.gains[k], dtype=np.float32)
        image = np.asarray(frame, dtype=np.float32) / np.float32(maxval)
        image /= gain if image.ndim == 3 else gain[0]
        warped = np.asarray(warp(image, np.asarray(matrix, dtype=np.float64), out_shape),
                            dtype=np.float32)
        del image
        per_pixel = (lambda a: a[..., None]) if warped.ndim == 3 else (lambda a: a)
        if acc is None:
            acc = np.zeros(warped.shape, dtype=np.float32)
            fallback = np.full(warped.shape, np.nan, dtype=np.float32)
        invalid = np.isnan(warped)
        if invalid.ndim == 3:
            invalid = invalid.any(axis=2)
        dist = np.abs(di - np.float32(k))
        weight = np.maximum(1.0 - dist, 0.0)
        broken |= (weight > 0) & invalid
        acc += per_pixel(weight) * np.where(per_pixel(invalid), 0.0, warped)
        closer = ~invalid & (dist < best)
        best[closer] = dist[closer]
        fallback[closer] = warped[closer]
        del warped
    result = np.where(per_pixel(broken), fallback, acc)
    return np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)


def save_stack(
    stack: SyntheticStack,
    folder: str | os.PathLike,
    fmt: str = "jpg",
    quality: int = 95,
    prefix: str = "frame",
) -> list[Path]:
    """Write the frames of a stack as numbered image files.

    Parameters
    ----------
    stack : SyntheticStack
        The stack to write.
    folder : str or path-like
        Destination folder, created when missing.
    fmt : {"jpg", "jpeg", "png", "tif", "tiff"}, optional
        File format. JPEG needs uint8 frames; 16-bit RGB needs TIFF.
    quality : int, optional
        JPEG quality (1-100).
    prefix : str, optional
        File names are ``{prefix}_001.{fmt}``, ``{prefix}_002.{fmt}``...

    Returns
    -------
    list of Path
        The written files, in frame order.

    Raises
    ------
    ValueError
        If the format is unknown or cannot hold the frames' dtype.
    """
    ext = fmt.lower().lstrip(".")
    if ext not in {"jpg", "jpeg", "png", "tif", "tiff"}:
        raise ValueError(f"unknown format {fmt!r}: use 'jpg', 'png' or 'tif'")
    dtype = stack.frames[0].dtype
    rgb = stack.frames[0].ndim == 3
    if ext in {"jpg", "jpeg"} and dtype != np.uint8:
        raise ValueError(f"JPEG holds 8-bit images only, frames are {dtype}: use fmt='tif'")
    if ext == "png" and dtype != np.uint8 and rgb:
        raise ValueError("Pillow cannot write 16-bit RGB PNG: use fmt='tif'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(stack.frames, start=1):
        path = folder / f"{prefix}_{i:03d}.{ext}"
        if ext in {"tif", "tiff"}:
            import tifffile

            tifffile.imwrite(path, frame, photometric="rgb" if rgb else "minisblack")
        else:
            from PIL import Image

            image = Image.fromarray(np.ascontiguousarray(frame))  # uint16 gray -> "I;16"
            if ext in {"jpg", "jpeg"}:
                image.save(path, quality=int(quality))
            else:
                image.save(path)
        paths.append(path)
    return paths


@dataclass
class SyntheticHyperstack:
    """A microscope-like ``(T, C, Z, Y, X)`` hyperstack and its ground truth.

    Attributes
    ----------
    data : ndarray
        ``(T, C, Z, Y, X)`` uint16.
    depth_index : ndarray
        ``(Y, X)`` float32 fractional z index at which each pixel is in
        focus (the same for every time point and channel).
    truth : ndarray
        ``(C, Y, X)`` uint16 all-in-focus image.
    texture_mask : ndarray
        ``(Y, X)`` bool, pixels where focus is observable.
    """

    data: np.ndarray
    depth_index: np.ndarray
    truth: np.ndarray
    texture_mask: np.ndarray

    axes = "TCZYX"


def make_hyperstack(
    scene: str = "patches",
    shape: tuple[int, int] = (128, 160),
    n_z: int = 8,
    n_t: int = 1,
    n_c: int = 2,
    *,
    seed: int = 0,
    objects: bool = True,
    noise: float = 0.005,
) -> SyntheticHyperstack:
    """Render a microscope-like hyperstack: no focus breathing, no exposure drift.

    The scene of :func:`make_stack` is rendered once in colour; channel
    ``c`` is its colour component ``c % 3`` (so channels differ in content
    but share the relief), and every time point adds its own noise.

    Parameters
    ----------
    scene, shape, seed, objects
        As for :func:`make_stack`.
    n_z, n_t, n_c : int
        Numbers of z planes, time points and channels.
    noise : float
        Standard deviation of the Gaussian noise of each time point, in
        units of the full range.

    Examples
    --------
    >>> hs = make_hyperstack(shape=(32, 40), n_z=4, n_t=2, n_c=2, seed=1)
    >>> hs.data.shape, hs.data.dtype, hs.axes
    ((2, 2, 4, 32, 40), dtype('uint16'), 'TCZYX')
    """
    st = make_stack(scene, shape=shape, n_frames=n_z, seed=seed, dtype=np.uint16, breathing=0.0,
                    max_rotation_deg=0.0, max_shift=0.0, gain_range=0.0, noise=0.0, objects=objects)
    frames = np.stack(st.frames)  # (Z, Y, X, 3)
    rng = np.random.default_rng(seed + 1)
    data = np.empty((n_t, n_c, n_z) + tuple(shape), np.uint16)
    for t in range(n_t):
        for c in range(n_c):
            plane = frames[..., c % 3].astype(np.float32)
            if noise > 0:
                plane += rng.standard_normal(plane.shape, dtype=np.float32) * np.float32(noise * 65535)
            data[t, c] = np.clip(np.rint(plane), 0, 65535).astype(np.uint16)
    truth = np.stack([st.truth[..., c % 3] for c in range(n_c)])
    return SyntheticHyperstack(data, st.depth_index, truth, st.texture_mask)


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
        _check_args(name, shape, n_frames, np.uint8, max_blur, breathing, max_rotation_deg,
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
    focus = _draw_transforms(rng, (height, width), n, reference, breathing, max_rotation_deg, max_shift)
    # Content is rendered without motion on a larger view, then resampled
    # into each frame's geometry: the view must cover any moved frame.
    extra = max_shift + 4.0 * jitter + (disturbance if disturbed else 0.0)
    margin = _geometry_margin((height, width), breathing, max_rotation_deg, extra)
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
            image = _warp_cubic(image, matrix, margin, (height, width))
            if noise > 0:
                image += np.float32(noise) * prng.standard_normal(image.shape, dtype=np.float32)
            frame = _quantize(image, np.dtype(np.uint8), 255.0)
            if jpeg_quality is not None:
                frame = _jpeg_round_trip(frame, jpeg_quality)
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


# --------------------------------------------------------------------------
# Arguments and geometry
# --------------------------------------------------------------------------


def _check_args(scene, shape, n_frames, dtype, max_blur, breathing, max_rotation_deg,
                max_shift, gain_range, noise, jpeg_quality) -> tuple[int, int]:
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
    if len(shape) != 2 or min(int(s) for s in shape) < 16:
        raise ValueError(f"shape must be (height, width) of at least 16 x 16, got {shape!r}")
    if int(n_frames) < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    if np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {np.dtype(dtype)}")
    for name, value in (("max_blur", max_blur), ("breathing", breathing),
                        ("max_rotation_deg", max_rotation_deg), ("max_shift", max_shift),
                        ("gain_range", gain_range), ("noise", noise)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if breathing >= 0.5 or gain_range >= 1 or max_rotation_deg > 45:
        raise ValueError("breathing must be < 0.5, gain_range < 1, max_rotation_deg <= 45")
    if jpeg_quality is not None:
        if np.dtype(dtype) != np.uint8:
            raise ValueError("jpeg_quality needs dtype=np.uint8")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    return int(shape[0]), int(shape[1])


def _draw_transforms(rng, shape, n, reference, breathing, max_rotation_deg, max_shift):
    """Similarity transforms about the image centre, reference -> frame."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ramp = 1.0 + breathing * (np.arange(n) / (n - 1) - 0.5)
    scales = ramp / ramp[reference]
    angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, size=n))
    shifts = rng.uniform(-max_shift, max_shift, size=(n, 2))
    transforms = []
    for k in range(n):
        if k == reference:
            transforms.append(np.eye(3))
            continue
        s, a = scales[k], angles[k]
        c, si = s * math.cos(a), s * math.sin(a)
        linear = np.array([[c, -si], [si, c]])
        centre = np.array([cx, cy])
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = centre + shifts[k] - linear @ centre
        transforms.append(matrix)
    return transforms


def _geometry_margin(shape, breathing, max_rotation_deg, max_shift) -> int:
    """Pixels of scene needed around the reference view for any frame."""
    half_diagonal = 0.5 * math.hypot(*shape)
    s_min = 1.0 - breathing
    theta = math.radians(max_rotation_deg)
    spread = (1.0 / s_min - 1.0) + 2.0 * math.sin(theta / 2.0) / s_min
    return int(math.ceil(half_diagonal * spread + max_shift * math.sqrt(2) / s_min)) + 4


def _to_rc(matrix: np.ndarray) -> np.ndarray:
    """Express an (x, y) homogeneous matrix in (row, col) order."""
    return _SWAP @ matrix @ _SWAP


def _warp_cubic(rendered: np.ndarray, matrix: np.ndarray, margin: int,
                out_shape: tuple[int, int]) -> np.ndarray:
    """Sample a rendered canvas region into a frame's geometry (cubic spline)."""
    to_region = np.eye(3)
    to_region[:2, 2] = margin
    # frame pixel -> reference coordinates -> rendered region coordinates
    rc = _to_rc(to_region @ np.linalg.inv(matrix))
    out = np.empty(out_shape + (rendered.shape[2],), dtype=np.float32)

    def one(ch):
        import scipy.ndimage as ndi
        coeffs = ndi.spline_filter(rendered[..., ch], order=3, output=np.float32, mode="mirror")
        ndi.affine_transform(coeffs, rc[:2, :2], rc[:2, 2], output_shape=out_shape,
                             output=out[..., ch], order=3, mode="mirror", prefilter=False)

    if rendered.shape[2] == 1 or out.size < 1 << 20:
        for ch in range(rendered.shape[2]):
            one(ch)
    else:
        with ThreadPoolExecutor(min(default_threads(), rendered.shape[2])) as pool:
            list(pool.map(one, range(rendered.shape[2])))
    return out


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased pillbox of the given radius (px).

    Each weight is the fraction of the pixel's area inside the disk, found by
    supersampling. Below one pixel a Gaussian of the same second moment
    stands in, since a pillbox smaller than a pixel would not blur at all.
    """
    if radius < 1.0:
        sigma = radius / 2.0
        x = np.arange(-2, 3, dtype=np.float64)
        g = np.exp(-0.5 * (x / sigma) ** 2)
        kernel = np.outer(g, g)
    else:
        half = int(math.ceil(radius - 0.5))
        sub = 8
        offsets = (np.arange(sub) + 0.5) / sub - 0.5
        grid = np.arange(-half, half + 1, dtype=np.float64)
        fine = (grid[:, None] + offsets[None, :]).ravel()
        inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius * radius
        n = grid.size
        kernel = inside.reshape(n, sub, n, sub).mean(axis=(1, 3))
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


class _LayerRenderer:
    """Renders the canvas for a given blur radius per depth layer.

    The work is done tile by tile over the region frames sample from; a tile
    only visits the layers present within reach of its blur, found from a
    coarse grid of the per-block minimum and maximum layer label.
    """

    _BLOCK = 16

    def __init__(self, texture, labels, n_layers, region):
        self.texture = texture
        self.labels = labels
        self.n_layers = n_layers
        self.y0, self.x0, self.height, self.width = region
        b = self._BLOCK
        h, w = labels.shape
        hb, wb = -(-h // b), -(-w // b)
        padded = np.pad(labels, ((0, hb * b - h), (0, wb * b - w)), mode="edge")
        blocks = padded.reshape(hb, b, wb, b)
        self.block_min = blocks.min(axis=(1, 3))
        self.block_max = blocks.max(axis=(1, 3))
        self._kernels: dict[float, np.ndarray] = {}

    def _kernel(self, radius):
        key = round(float(radius), 6)
        if key not in self._kernels:
            self._kernels[key] = _disk_kernel(key)
        return self._kernels[key]

    def _present(self, j, y0, y1, x0, x1):
        b = self._BLOCK
        sl = (slice(max(y0, 0) // b, -(-y1 // b)), slice(max(x0, 0) // b, -(-x1 // b)))
        return bool(np.any((self.block_min[sl] <= j) & (self.block_max[sl] >= j)))

    def render(self, radii: np.ndarray) -> np.ndarray:
        channels = self.texture.shape[2]
        out = np.empty((self.height, self.width, channels), dtype=np.float32)
        halves = [0 if r < _NO_BLUR_RADIUS else (self._kernel(r).shape[0] // 2) for r in radii]
        tiles = [(ty, tx) for ty in range(0, self.height, _TILE)
                 for tx in range(0, self.width, _TILE)]

        def one(tile):
            from scipy.signal import fftconvolve
            ty, tx = tile
            th, tw = min(_TILE, self.height - ty), min(_TILE, self.width - tx)
            cy, cx = self.y0 + ty, self.x0 + tx  # canvas coordinates of the tile
            acc_c = np.zeros((th, tw, channels), dtype=np.float32)
            acc_a = np.zeros((th, tw), dtype=np.float32)
            for j in range(self.n_layers - 1, -1, -1):  # far to near
                h = halves[j]
                if not self._present(j, cy - h, cy + th + h, cx - h, cx + tw + h):
                    continue
                if h == 0:
                    mask = self.labels[cy:cy + th, cx:cx + tw] == j
                    if mask.any():
                        acc_c[mask] = self.texture[cy:cy + th, cx:cx + tw][mask]
                        acc_a[mask] = 1.0
                    continue
                mask = self.labels[cy - h:cy + th + h, cx - h:cx + tw + h] == j
                rows = np.flatnonzero(mask.any(axis=1))
                if rows.size == 0:
                    continue
                cols = np.flatnonzero(mask.any(axis=0))
                # Only outputs within reach of the layer's bounding box change.
                o0, o1 = max(rows[0] - 2 * h, 0), min(rows[-1] + 1, th)
                p0, p1 = max(cols[0] - 2 * h, 0), min(cols[-1] + 1, tw)
                mask = mask[o0:o1 + 2 * h, p0:p1 + 2 * h]
                sl = (slice(cy - h + o0, cy + h + o1), slice(cx - h + p0, cx + h + p1))
                stack = np.empty(mask.shape + (channels + 1,), dtype=np.float32)
                np.multiply(self.texture[sl], mask[..., None], out=stack[..., :channels])
                stack[..., channels] = mask
                kernel = self._kernel(radii[j])[..., None]
                blurred = fftconvolve(stack, kernel, mode="valid", axes=(0, 1))
                alpha = np.clip(blurred[..., channels], 0.0, 1.0)
                keep = 1.0 - alpha
                sub_c = acc_c[o0:o1, p0:p1]
                sub_a = acc_a[o0:o1, p0:p1]
                sub_c *= keep[..., None]
                sub_c += blurred[..., :channels]
                sub_a *= keep
                sub_a += alpha
            np.maximum(acc_a, 1e-6, out=acc_a)
            out[ty:ty + th, tx:tx + tw] = acc_c / acc_a[..., None]

        workers = default_threads()
        if workers == 1 or len(tiles) == 1:
            for tile in tiles:
                one(tile)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, tiles))
        np.clip(out, 0.0, 1.0, out=out)
        return out


# --------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------


def _quantize(image: np.ndarray, dtype: np.dtype, maxval: float, *,
              inplace: bool = True) -> np.ndarray:
    """Scale [0, 1] floats to the integer range (overwrites ``image`` if inplace)."""
    scaled = image if inplace else image.copy()
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(maxval)
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype, order="C")


def _jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("L" if frame.ndim == 2 else "RGB")).copy()


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return rgb @ weights


def _texture_mask(truth: np.ndarray, size: int = 9, threshold: float = 0.03) -> np.ndarray:
    import scipy.ndimage as ndi
    gray = _to_gray(truth) if truth.shape[-1] == 3 else truth[..., 0]
    gray = gray.astype(np.float32)
    mean = ndi.uniform_filter(gray, size, mode="reflect")
    mean_sq = ndi.uniform_filter(gray * gray, size, mode="reflect")
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return std > threshold


# --------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------


def _depth_map(canvas_shape, view, rng, objects: bool = True) -> np.ndarray:
    """Smooth background relief plus (with ``objects``) raised objects with sharp outlines.

    Returns depth (larger is farther) on the canvas; object pixels are
    negative and everything else is positive, which the caller uses to find
    the objects before normalising.
    """
    import scipy.ndimage as ndi
    oy, ox, height, width = view
    hc, wc = canvas_shape
    # The smooth background is evaluated on a coarse grid and interpolated.
    step = max(1, min(height, width) // 64)
    ys = (np.arange(0, hc + step, step, dtype=np.float64) - oy) / height
    xs = (np.arange(0, wc + step, step, dtype=np.float64) - ox) / width
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    phi = rng.uniform(0, 2 * np.pi)
    c, s = math.cos(phi), math.sin(phi)
    extent = 0.5 * (abs(c) + abs(s))
    ramp = 0.5 + ((xx - 0.5) * c + (yy - 0.5) * s) / (2 * extent)
    background = 0.40 + 0.60 * ramp
    for _ in range(rng.integers(3, 6)):
        by, bx = rng.uniform(0.0, 1.0, size=2)
        sigma = rng.uniform(0.08, 0.22)
        amp = rng.uniform(-0.12, 0.12)
        background += amp * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma**2))
    zoom = (hc / background.shape[0], wc / background.shape[1])
    depth = ndi.zoom(background.astype(np.float32), zoom, order=1, grid_mode=True,
                     mode="nearest", output=np.float32)[:hc, :wc]
    depth = np.maximum(depth, 0.30)

    # Raised objects: elliptic domes, nearest at their centre.
    yr = (np.arange(hc, dtype=np.float32) - oy)[:, None]
    xr = (np.arange(wc, dtype=np.float32) - ox)[None, :]
    short = min(height, width)
    for _ in range(int(rng.integers(1, 3)) if objects else 0):
        cy = rng.uniform(0.3, 0.7) * height
        cx = rng.uniform(0.3, 0.7) * width
        a = rng.uniform(0.14, 0.26) * short
        b = rng.uniform(0.10, 0.20) * short
        t = rng.uniform(0, np.pi)
        ct, st = np.float32(math.cos(t)), np.float32(math.sin(t))
        u = (xr - np.float32(cx)) * ct + (yr - np.float32(cy)) * st
        v = (yr - np.float32(cy)) * ct - (xr - np.float32(cx)) * st
        qf = (u / np.float32(a)) ** 2 + (v / np.float32(b)) ** 2
        tilt = np.float32(rng.uniform(-0.05, 0.05))
        dome = np.float32(-0.22) + np.float32(0.12) * qf + tilt * u / np.float32(a)
        inside = qf < 1.0
        np.copyto(depth, np.minimum(depth, dome), where=inside)
        del u, v, qf, dome, inside
    return depth


def _tint_objects(texture, objects, rng):
    """Shade raised objects a little darker, with a slight colour cast."""
    brightness = rng.uniform(0.72, 0.88)
    cast = 1.0 + rng.uniform(-0.06, 0.06, size=texture.shape[2])
    tint = (brightness * cast).astype(np.float32)
    texture[objects] = np.clip(texture[objects] * tint, 0.0, 1.0)
    return texture


def _occluder_curves(kind, view, rng):
    """Centre lines of the occluders: (points (m, 2) as (y, x) in view px, half width, colour) each."""
    oy, ox, height, width = view
    short = min(height, width)
    curves = []
    if kind == "hairs":
        count, length, half, bend = int(rng.integers(8, 15)), (0.6, 1.4), (0.0025, 0.005), 2.0
    elif kind == "bristles":
        count, length, half, bend = int(rng.integers(12, 25)), (0.45, 0.8), (0.004, 0.007), 0.4
    else:  # wires
        count, length, half, bend = int(rng.integers(2, 5)), (1.2, 1.6), (0.008, 0.015), 0.6
    # a tuft of bristles grows from one root, roughly in one direction
    root = rng.uniform(0.2, 0.8, size=2) * (height, width)
    tuft = rng.uniform(0, 2 * np.pi)
    for _ in range(count):
        if kind == "bristles":
            start = root + rng.normal(0.0, 0.04 * short, size=2)
            theta = tuft + rng.normal(0.0, 0.15)
        else:
            start = rng.uniform(0.1, 0.9, size=2) * (height, width)
            theta = rng.uniform(0, 2 * np.pi)
        n = max(8, int(rng.uniform(*length) * short / 0.5))
        # curvature (1/px) wanders smoothly along the strand
        kappa = rng.normal(0.0, bend / short) + np.cumsum(rng.normal(0.0, 0.02 * bend / short, size=n))
        angle = theta + np.cumsum(kappa * 0.5)
        points = 0.5 * np.cumsum(np.stack([np.sin(angle), np.cos(angle)], axis=1), axis=0)
        # bristles grow from their root; hairs and wires pass through their start point
        points += start - (0 if kind == "bristles" else points[n // 2])
        if kind == "hairs":
            colour = rng.uniform(0.03, 0.25) * np.array([1.0, 0.78, 0.55]) * rng.uniform(0.9, 1.1, size=3)
        elif kind == "bristles":
            colour = rng.uniform(0.75, 0.95) * np.array([1.0, 0.96, 0.85])
        else:
            colour = np.array([(0.85, 0.50, 0.28), (0.80, 0.12, 0.10), (0.15, 0.25, 0.75),
                               (0.10, 0.10, 0.10), (0.90, 0.85, 0.20)][int(rng.integers(5))])
        curves.append((points, rng.uniform(*half) * short, colour))
    return curves


def _add_occluders(kind, texture, depth, view, rng) -> None:
    """Paint thin near structures into ``texture`` and ``depth`` (both in place).

    Strands are rasterised at twice the resolution (distance to the nearest
    centre line) and averaged down, so their edges are anti-aliased in the
    texture; a pixel belongs to the strand's depth where it is at least half
    covered. Strands are shaded as cylinders with a highlight along the axis.
    """
    import scipy.ndimage as ndi

    oy, ox = view[:2]
    hc, wc = depth.shape
    fine = np.ones((2 * hc, 2 * wc), dtype=bool)  # False on centre lines
    owner = np.zeros((2 * hc, 2 * wc), dtype=np.int32)
    curves = _occluder_curves(kind, view, rng)
    for i, (points, _, _) in enumerate(curves):
        yy = np.rint(2 * (points[:, 0] + oy) + 0.5).astype(np.int64)
        xx = np.rint(2 * (points[:, 1] + ox) + 0.5).astype(np.int64)
        inside = (yy >= 0) & (yy < 2 * hc) & (xx >= 0) & (xx < 2 * wc)
        fine[yy[inside], xx[inside]] = False
        owner[yy[inside], xx[inside]] = i
    if fine.all():
        return
    dist, (iy, ix) = ndi.distance_transform_edt(fine, return_indices=True)
    del fine
    who = owner[iy, ix]
    del owner, iy, ix
    halves = np.array([2.0 * c[1] for c in curves], dtype=np.float32)[who]
    colours = np.array([c[2] for c in curves], dtype=np.float32)[who]
    t = np.clip(dist.astype(np.float32) / halves, 0.0, 1.0)
    cover = (dist <= halves).astype(np.float32)
    del dist, halves
    shade = 0.55 + 0.45 * np.sqrt(1.0 - t * t) + 0.25 * np.exp(-((t / 0.3) ** 2))
    colours *= (shade * cover)[..., None]
    del shade, t

    def down(a):  # 2x2 block mean back to canvas pixels
        return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])

    alpha = down(cover)
    paint = down(colours)
    del colours, cover
    texture *= (1.0 - alpha)[..., None]
    texture += paint
    np.clip(texture, 0.0, 1.0, out=texture)
    # far in front of the background (which starts at 0.3), a little apart per strand
    near = np.float32(-0.45) + np.float32(0.02) * rng.random(len(curves)).astype(np.float32)
    np.copyto(depth, near[down(who.astype(np.float32)).round().astype(np.int64)], where=alpha >= 0.5)


# --------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------


def _scene_texture(scene: str, shape, rng) -> np.ndarray:
    """(H, W, 3) float32 texture in [0, 1] of the canvas size."""
    if scene in _PHOTOS:
        return _photo(scene, shape, rng)
    scenes = {"rocks": _rocks, "pcb": _pcb, "checker": _checker, "patches": _patches}
    return _lens_blur(scenes[scene](shape, rng))


def _lens_blur(texture: np.ndarray) -> np.ndarray:
    """Band-limit a procedural texture in place, as a lens at best focus and the pixels do.

    Procedural edges are drawn pixel-sharp; without this, resampling a frame
    (as any aligner must) loses more than it would on a photograph.
    """
    import scipy.ndimage as ndi
    for c in range(texture.shape[2]):
        ndi.gaussian_filter(texture[..., c], _LENS_SIGMA, output=texture[..., c], mode="reflect")
    return texture


def _photo(name, shape, rng):
    import skimage.data
    from skimage.transform import resize

    image = getattr(skimage.data, name)()
    image = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        # Gray photographs get a warm tint so that colour paths are exercised.
        image = image[..., None] * np.array([1.0, 0.93, 0.80], dtype=np.float32)
    hc, wc = shape
    h, w = image.shape[:2]
    # Centre crop to the canvas aspect ratio, so nothing is stretched.
    if w / h > wc / hc:
        cw = max(1, int(round(h * wc / hc)))
        image = image[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = max(1, int(round(w * hc / wc)))
        image = image[(h - ch) // 2:(h - ch) // 2 + ch]
    h, w = image.shape[:2]
    factor = hc / h
    if factor <= 1.0:
        out = resize(image, (hc, wc), order=1, anti_aliasing=True, mode="reflect")
        out = out.astype(np.float32)
    else:
        out = np.empty((hc, wc, 3), dtype=np.float32)
        for c in range(3):
            out[..., c] = _upsample(image[..., c], (hc, wc))
    # Enlarged photographs lack fine detail; a surface grain restores some,
    # so that focus stays observable at every size.
    amount = 0.10 * min(1.0, max(0.0, (factor - 1.0) / 2.0))
    if amount > 0:
        grain = _fractal_noise(shape, rng, coarsest=16, persistence=0.8)
        out *= (1.0 + np.float32(amount) * grain)[..., None]
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _upsample(channel: np.ndarray, shape) -> np.ndarray:
    """Smooth enlargement: cubic to half size (cheap), then linear."""
    import scipy.ndimage as ndi
    h, w = channel.shape
    hc, wc = shape
    if hc > 4 * h:
        half = ((hc + 1) // 2, (wc + 1) // 2)
        channel = ndi.zoom(channel, (half[0] / h, half[1] / w), order=3, grid_mode=True,
                           mode="reflect", output=np.float32)
        h, w = channel.shape
        order = 1
    else:
        order = 3
    out = ndi.zoom(channel, (hc / h, wc / w), order=order, grid_mode=True, mode="reflect",
                   output=np.float32)
    return out[:hc, :wc]


def _fractal_noise(shape, rng, *, coarsest: float | None = None, persistence: float = 0.6,
                   finest_sigma: float = 0.7) -> np.ndarray:
    """Zero-mean, unit-std multi-octave noise of the given shape (float32).

    Octaves halve in size from ``coarsest`` pixels down to one pixel; each
    finer octave is ``persistence`` times weaker.
    """
    import scipy.ndimage as ndi
    hc, wc = shape
    if coarsest is None:
        coarsest = max(hc, wc) / 2
    levels = max(1, int(math.ceil(math.log2(max(coarsest, 2.0)))))
    cell = 2**levels
    field = rng.standard_normal((hc // cell + 2, wc // cell + 2), dtype=np.float32)
    amp = 1.0
    for level in range(levels - 1, -1, -1):
        cell = 2**level
        target = (-(-hc // cell) + 2, -(-wc // cell) + 2)
        field = ndi.zoom(field, (target[0] / field.shape[0], target[1] / field.shape[1]),
                         order=1, grid_mode=True, mode="nearest", output=np.float32)
        amp *= persistence
        field += np.float32(amp) * rng.standard_normal(target, dtype=np.float32)
    field = field[1:hc + 1, 1:wc + 1]
    if finest_sigma > 0:
        field = ndi.gaussian_filter(field, finest_sigma, output=np.float32, mode="reflect")
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    return field


def _smooth_noise(shape, rng, cell: float) -> np.ndarray:
    """Smooth blobs about ``cell`` pixels across, zero mean, unit std (float32)."""
    import scipy.ndimage as ndi
    hc, wc = shape
    cell = max(float(cell), 4.0)
    coarse = rng.standard_normal((int(hc / cell) + 3, int(wc / cell) + 3)).astype(np.float32)
    coarse = ndi.gaussian_filter(coarse, 0.7, mode="reflect")
    # Cubic on the small grid, linear for the final (large) enlargement.
    fine = ndi.zoom(coarse, 4, order=3, grid_mode=True, mode="reflect", output=np.float32)
    z = cell / 4.0
    out = ndi.zoom(fine, z, order=1, grid_mode=True, mode="reflect", output=np.float32)
    out = np.ascontiguousarray(out[:hc, :wc])
    out -= out.mean()
    out /= max(float(out.std()), 1e-6)
    return out


def _rocks(shape, rng):
    """Gravel: pebbles of varied colour on sand, with grain at every scale."""
    import scipy.ndimage as ndi
    hc, wc = shape
    short = min(hc, wc)
    blobs = _smooth_noise(shape, rng, cell=short / 40)
    level = 0.35
    labels, count = ndi.label(blobs > level)
    palette = np.empty((count + 1, 3), dtype=np.float32)
    palette[0] = (0.50, 0.43, 0.33)  # sand
    base = rng.uniform(0.2, 0.9, size=(count, 1))
    hue = rng.uniform(-0.15, 0.15, size=(count, 3))
    palette[1:] = np.clip(base + hue * np.array([1.0, 0.6, 0.2]), 0.05, 0.95)
    texture = palette[labels]
    del labels
    # Pebbles look rounded: darker towards their outline.
    height = np.clip((blobs - level) / 0.8, 0.0, 1.0)
    shade = np.where(blobs > level, 0.55 + 0.45 * np.sqrt(height), 1.0).astype(np.float32)
    del blobs, height
    grain = _fractal_noise(shape, rng, coarsest=short / 10, persistence=0.85)
    texture *= (shade * (1.0 + 0.22 * grain))[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _patches(shape, rng):
    """Speckled tissue with large flat patches: a third of the area has no texture."""
    hc, wc = shape
    short = min(hc, wc)
    base = rng.uniform(0.3, 0.7, size=3).astype(np.float32)
    tone = _fractal_noise(shape, rng, coarsest=max(4.0, short / 32), persistence=0.9)
    texture = base * (1.0 + 0.35 * tone)[..., None]
    del tone
    blobs = _smooth_noise(shape, rng, cell=short / 5)
    flat = blobs > np.quantile(blobs[::4, ::4], 0.67)
    del blobs
    texture[flat] = np.clip(base * rng.uniform(0.8, 1.2), 0.0, 1.0)
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _glyph(image, y, x, size, colour, rng):
    """A text-like mark: random strokes of a seven-segment cell."""
    w = max(1, int(round(size * 0.6)))
    t = max(1, int(round(size * 0.14)))
    h = int(round(size))
    half = h // 2
    segments = [
        (0, 0, t, w), (half - t // 2, 0, t, w), (h - t, 0, t, w),  # horizontals
        (0, 0, half, t), (half, 0, h - half, t),  # left verticals
        (0, w - t, half, t), (half, w - t, h - half, t),  # right verticals
    ]
    chosen = rng.random(len(segments)) < 0.55
    if not chosen.any():
        chosen[rng.integers(len(segments))] = True
    for (dy, dx, sh, sw), on in zip(segments, chosen, strict=False):
        if on:
            y0, x0 = max(0, y + dy), max(0, x + dx)
            image[y0:max(y0, y + dy + sh), x0:max(x0, x + dx + sw)] = colour
    return w


def _text(image, y, x, size, count, colour, rng):
    """A row of ``count`` glyphs starting at (y, x)."""
    for _ in range(count):
        width = _glyph(image, y, x, size, colour, rng)
        x += int(width + max(1, size * 0.3))
        if x >= image.shape[1]:
            break


def _checker(shape, rng):
    """Checkerboard whose squares carry rows of text-like marks."""
    hc, wc = shape
    square = max(8, int(min(hc, wc) / 6))
    light = np.array([0.92, 0.89, 0.80], dtype=np.float32)
    dark = np.array([0.16, 0.22, 0.38], dtype=np.float32)
    yy = (np.arange(hc) // square)[:, None]
    xx = (np.arange(wc) // square)[None, :]
    parity = ((yy + xx) % 2).astype(bool)
    texture = np.where(parity[..., None], dark, light).astype(np.float32)
    del parity
    glyph = max(3.0, square / 9)
    for by in range(-(-hc // square)):
        for bx in range(-(-wc // square)):
            colour = light * 0.95 if (by + bx) % 2 else dark * 1.1
            rows = int(rng.integers(2, 5))
            for r in range(rows):
                y = by * square + int(square * (0.12 + 0.22 * r))
                x = bx * square + int(square * rng.uniform(0.05, 0.2))
                count = int(rng.integers(3, 7))
                sub = texture[:, : (bx + 1) * square - int(square * 0.04)]
                _text(sub, y, x, glyph * rng.uniform(0.7, 1.3), count, colour, rng)
    grain = _fractal_noise(shape, rng, coarsest=square / 2, persistence=0.7)
    texture *= (1.0 + 0.05 * grain)[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _pcb(shape, rng):
    """Printed circuit board: woven substrate, traces, pads, vias, chips, labels."""
    hc, wc = shape
    short = min(hc, wc)
    texture = np.empty((hc, wc, 3), dtype=np.float32)
    texture[:] = (0.06, 0.30, 0.13)
    # Glass-fibre weave under the solder mask.
    period = max(4.0, short / 90)
    yy = np.arange(hc, dtype=np.float32)[:, None] * np.float32(2 * np.pi / period)
    xx = np.arange(wc, dtype=np.float32)[None, :] * np.float32(2 * np.pi / period)
    weave = np.sin(yy) * np.sin(xx)
    grain = _fractal_noise(shape, rng, coarsest=short / 4, persistence=0.75)
    texture *= (1.0 + 0.10 * weave + 0.10 * grain)[..., None]
    del weave, grain, yy, xx

    trace = np.array([0.20, 0.55, 0.22], dtype=np.float32)
    gold = np.array([0.86, 0.70, 0.36], dtype=np.float32)
    white = np.array([0.92, 0.93, 0.90], dtype=np.float32)
    black = np.array([0.08, 0.08, 0.09], dtype=np.float32)

    def box(y, x, h, w, colour):
        y0, x0 = int(max(0, y)), int(max(0, x))
        y1, x1 = int(min(hc, y + h)), int(min(wc, x + w))
        if y1 > y0 and x1 > x0:
            texture[y0:y1, x0:x1] = colour

    def disk(y, x, r, colour):
        r = max(1.0, r)
        y0, y1 = int(max(0, y - r - 1)), int(min(hc, y + r + 2))
        x0, x1 = int(max(0, x - r - 1)), int(min(wc, x + r + 2))
        if y1 <= y0 or x1 <= x0:
            return
        dy = np.arange(y0, y1)[:, None] - y
        dx = np.arange(x0, x1)[None, :] - x
        inside = dy * dy + dx * dx <= r * r
        texture[y0:y1, x0:x1][inside] = colour

    # Traces: Manhattan paths ending on round pads.
    for _ in range(int(rng.integers(45, 70))):
        width = max(2.0, short * rng.uniform(0.006, 0.014))
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        horizontal = bool(rng.integers(2))
        disk(y, x, width * 1.3, gold)
        for _ in range(int(rng.integers(2, 5))):
            length = short * rng.uniform(0.05, 0.35) * rng.choice([-1, 1])
            if horizontal:
                box(y - width / 2, min(x, x + length), width, abs(length) + width / 2, trace)
                x += length
            else:
                box(min(y, y + length), x - width / 2, abs(length) + width / 2, width, trace)
                y += length
            horizontal = not horizontal
        disk(y, x, width * 1.3, gold)
    # Vias: gold rings with a dark hole.
    for _ in range(int(rng.integers(30, 60))):
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        r = max(2.0, short * rng.uniform(0.006, 0.012))
        disk(y, x, r, gold)
        disk(y, x, r * 0.45, black)
    # Chips: black packages with gold pins and white markings.
    for _ in range(int(rng.integers(2, 5))):
        h = short * rng.uniform(0.10, 0.22)
        w = short * rng.uniform(0.10, 0.30)
        y, x = rng.uniform(0, hc - h), rng.uniform(0, wc - w)
        pin = max(2.0, short * 0.008)
        pitch = pin * 2.2
        n_pins = max(2, int(w / pitch) - 1)
        for i in range(n_pins):
            px = x + pitch * (i + 0.8)
            box(y - pin * 2.5, px, pin * 2.5, pin, gold)
            box(y + h, px, pin * 2.5, pin, gold)
        box(y, x, h, w, black)
        glyph = max(3.0, h / 6)
        _text(texture[:, : int(x + w)], int(y + h * 0.3), int(x + w * 0.1), glyph,
              int(rng.integers(3, 8)), white * 0.85, rng)
    # Silkscreen labels.
    for _ in range(int(rng.integers(15, 30))):
        glyph = max(3.0, short * rng.uniform(0.015, 0.03))
        _text(texture, int(rng.uniform(0, hc)), int(rng.uniform(0, wc)), glyph,
              int(rng.integers(2, 6)), white, rng)
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _fine(shape, rng):
    """Dense detail at 2-6 px periods: hexagonal facets (an insect's eye) beside fine grain.

    The two materials share the canvas in large patches; the facets' period
    (3.3-5 px), orientation and contrast, and the colours are drawn anew per
    seed. Whatever the output size, the detail stays at these periods.
    """
    import scipy.ndimage as ndi
    hc, wc = shape
    short = min(hc, wc)
    period = rng.uniform(3.3, 5.0)
    theta = rng.uniform(0, np.pi / 3)
    yy = np.arange(hc, dtype=np.float32)[:, None]
    xx = np.arange(wc, dtype=np.float32)[None, :]
    k = np.float32(2 * np.pi / (period * math.sqrt(3) / 2))  # rows of a hexagonal lattice of this spacing
    facets = np.zeros((hc, wc), np.float32)
    for a in (theta, theta + np.pi / 3, theta + 2 * np.pi / 3):
        facets += np.cos(k * (np.float32(math.cos(a)) * xx + np.float32(math.sin(a)) * yy))
    facets = (facets + 1.5) / 4.5  # 0..1, bright at the facets' centres
    contrast = 0.5 + 0.15 * _smooth_noise(shape, rng, cell=short / 8)
    facets = 1.0 + np.clip(contrast, 0.2, 0.8) * (facets - 0.5) * 2.0
    # grain: fine fractal noise and a speckle of pores 2-3 px across
    speckle = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.8)
    speckle = (speckle > np.quantile(speckle[::3, ::3], 0.7)).astype(np.float32) - np.float32(0.3)
    grain = _fractal_noise(shape, rng, coarsest=16.0, persistence=0.95, finest_sigma=0.0)
    grain = 1.0 + np.float32(0.12) * grain - np.float32(rng.uniform(0.5, 0.8)) * speckle
    del speckle
    blobs = _smooth_noise(shape, rng, cell=short / 4)
    patches = blobs > np.quantile(blobs[::4, ::4], rng.uniform(0.3, 0.7))  # both materials, whatever the size
    del blobs
    detail = np.where(patches, facets, grain).astype(np.float32)
    del facets, grain, contrast, yy, xx
    colours = rng.uniform(0.25, 0.85, size=(2, 3)).astype(np.float32)
    mix = np.clip(0.5 + 0.5 * _smooth_noise(shape, rng, cell=short / 6), 0.0, 1.0)[..., None]
    texture = (colours[0] * (1.0 - mix) + colours[1] * mix) * detail[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture.astype(np.float32, copy=False)


def _board(canvas_shape, view, rng, objects: bool = True):
    """A circuit board at its edge: (texture, depth) on the canvas, depth larger farther.

    The board (a weakly textured substrate with faint traces, bright pads in
    rows and white print) lies on a tilted plane in the middle of the depth
    range; one or two chips with featureless tops stand on it, nearest of
    all (flat on the board without ``objects``), their bright pins on the
    board beside them; past the board's edges (one or two of them cross the
    view) a featureless backdrop, farthest, with a few specks of dust.
    """
    hc, wc = canvas_shape
    oy, ox, height, width = view
    short = min(height, width)
    yy = (np.arange(hc, dtype=np.float32) - np.float32(oy + height / 2))[:, None]
    xx = (np.arange(wc, dtype=np.float32) - np.float32(ox + width / 2))[None, :]
    phi = rng.uniform(0, 2 * np.pi)  # the board's axes, about the view's centre
    cu, su = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    u = xx * cu + yy * su
    v = yy * cu - xx * su
    # two edges of the board: one crosses the view near its middle, the other may lie beyond it
    extent_u = 0.5 * (abs(width * cu) + abs(height * su))
    extent_v = 0.5 * (abs(width * su) + abs(height * cu))
    edge_u = np.float32(rng.uniform(0.05, 0.45) * extent_u)
    edge_v = np.float32(rng.uniform(0.5, 1.3) * extent_v)
    board = (u < edge_u) & (v < edge_v)

    def ramp():  # 0..1 across the view, along a random direction
        a = rng.uniform(0, 2 * np.pi)
        c, s = math.cos(a), math.sin(a)
        ext = 0.5 * (abs(width * c) + abs(height * s))
        return np.float32(0.5) + (xx * np.float32(c) + yy * np.float32(s)) / np.float32(2 * ext)

    depth = np.where(board, np.float32(0.45) + np.float32(rng.uniform(0.1, 0.2)) * ramp(),
                     np.float32(0.95) + np.float32(0.05) * ramp()).astype(np.float32)

    # the backdrop: one colour, a gentle shading, and sparse dust
    backdrop = rng.uniform(0.25, 0.8) * rng.uniform(0.8, 1.2, size=3)
    texture = np.empty((hc, wc, 3), np.float32)
    texture[:] = np.clip(backdrop, 0.0, 1.0).astype(np.float32)
    texture *= (0.94 + 0.12 * ramp())[..., None]
    for _ in range(int(rng.poisson(height * width / 3000.0))):
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        _disk_paint(texture, y, x, rng.uniform(0.7, 1.6), texture[int(y), int(x)] * rng.uniform(0.55, 0.8))

    # the substrate: weak grain and weave, faint traces
    base = np.array([(0.10, 0.42, 0.20), (0.12, 0.22, 0.50), (0.52, 0.38, 0.20)][int(rng.integers(3))],
                    np.float32) * np.float32(rng.uniform(0.9, 1.2))
    period = rng.uniform(5.0, 9.0)
    weave = np.sin(u * np.float32(2 * np.pi / period)) * np.sin(v * np.float32(2 * np.pi / period))
    grain = _fractal_noise((hc, wc), rng, coarsest=8.0, persistence=0.8)
    substrate = base * (1.0 + 0.12 * weave + 0.2 * grain)[..., None]
    del weave, grain

    def rect(u0, v0, du, dv, colour):
        substrate[(u >= u0) & (u < u0 + du) & (v >= v0) & (v < v0 + dv)] = colour

    # faint traces (a shade lighter than the board)
    for _ in range(int(rng.integers(15, 30))):
        w = max(1.5, short * rng.uniform(0.004, 0.01))
        u0, v0 = rng.uniform(-0.7, 0.7, size=2) * (extent_u, extent_v)
        length = short * rng.uniform(0.1, 0.5)
        if rng.integers(2):
            rect(u0, v0, length, w, base * 1.25)
        else:
            rect(u0, v0, w, length, base * 1.25)
    # bright pads in rows (tin or gold), round pads
    metals = [np.array((0.93, 0.93, 0.90), np.float32), np.array((0.95, 0.80, 0.45), np.float32)]
    for _ in range(int(rng.integers(12, 24))):
        metal = metals[int(rng.integers(2))]
        pu, pv = max(2.0, short * rng.uniform(0.008, 0.025)), max(2.0, short * rng.uniform(0.008, 0.025))
        count = int(rng.integers(1, 7))
        pitch = pu * rng.uniform(1.6, 2.4)
        u0, v0 = rng.uniform(-0.8, 0.8, size=2) * (extent_u, extent_v)
        for i in range(count):
            rect(u0 + i * pitch, v0, pu, pv, metal)
    for _ in range(int(rng.integers(10, 25))):
        r = max(1.5, short * rng.uniform(0.005, 0.015))
        cu0, cv0 = rng.uniform(-0.8, 0.8, size=2) * (extent_u, extent_v)
        ring = (u - np.float32(cu0)) ** 2 + (v - np.float32(cv0)) ** 2
        substrate[ring <= r * r] = metals[int(rng.integers(2))]
        substrate[ring <= (0.4 * r) ** 2] = base * 0.3
    # white print: text in board coordinates, drawn on an axis-aligned patch and mapped
    ui = np.floor(u - u.min()).astype(np.int32)
    vi = np.floor(v - v.min()).astype(np.int32)
    sheet = np.zeros((int(vi.max()) + 1, int(ui.max()) + 1), bool)
    for _ in range(int(rng.integers(6, 14))):
        glyph = max(3.0, short * rng.uniform(0.02, 0.035))
        _text(sheet, int(rng.uniform(0, sheet.shape[0])), int(rng.uniform(0, sheet.shape[1])), glyph,
              int(rng.integers(2, 6)), True, rng)
    substrate[sheet[vi, ui]] = np.float32(rng.uniform(0.88, 0.95))
    del sheet, ui, vi

    # chips: featureless tops, pins on the board along two sides
    placed = []
    for _ in range(int(rng.integers(1, 3))):
        du = short * rng.uniform(0.14, 0.24)
        dv = short * rng.uniform(0.14, 0.3)
        pin = max(1.5, short * 0.012)
        for _try in range(50):  # on the board, in the view, clear of the other chips and their pins
            u0 = rng.uniform(-0.7 * extent_u, edge_u - du - 0.05 * short)
            v0 = rng.uniform(-0.7 * extent_v, min(edge_v, 0.7 * extent_v) - dv - 0.05 * short)
            if all(u0 > a + da + 3 * pin or a > u0 + du + 3 * pin or v0 > b + db + 3 * pin
                   or b > v0 + dv + 3 * pin for a, b, da, db in placed):
                break
        else:
            continue
        placed.append((u0, v0, du, dv))
        pitch = pin * rng.uniform(2.0, 2.6)
        for i in range(max(2, int(du / pitch) - 1)):
            for side in (v0 - 2.2 * pin, v0 + dv):
                rect(u0 + pitch * (i + 0.6), side, pin, 2.2 * pin, metals[0])
        top = (u >= u0) & (u < u0 + du) & (v >= v0) & (v < v0 + dv)
        if rng.integers(2):
            colour = rng.uniform(0.06, 0.14) * np.array((1.0, 1.0, 1.08))  # black epoxy
        else:
            colour = rng.uniform(0.7, 0.85) * np.array((1.0, 0.94, 0.82))  # ceramic
        substrate[top] = colour.astype(np.float32)
        if objects:
            tilt = ((u - np.float32(u0)) / np.float32(du)) * np.float32(rng.uniform(-0.03, 0.03))
            np.copyto(depth, np.float32(rng.uniform(0.0, 0.06)) + tilt, where=top)
    texture[board] = substrate[board]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture, depth


def _disk_paint(image, y, x, r, colour):
    """Paint a disk of radius ``r`` (px) centred at (y, x) into ``image`` (in place)."""
    hc, wc = image.shape[:2]
    y0, y1 = int(max(0, y - r - 1)), int(min(hc, y + r + 2))
    x0, x1 = int(max(0, x - r - 1)), int(min(wc, x + r + 2))
    if y1 <= y0 or x1 <= x0:
        return
    dy = np.arange(y0, y1)[:, None] - y
    dx = np.arange(x0, x1)[None, :] - x
    image[y0:y1, x0:x1][dy * dy + dx * dx <= r * r] = colour


def _fine_scene(canvas_shape, view, rng, objects: bool = True):
    """:func:`_fine` on a rough relief: (texture, depth) on the canvas.

    The usual relief (:func:`_depth_map`) gets a random roughness of about
    a frame (at 8 frames) that varies over tens of pixels, so that frames in
    focus at neighbouring pixels differ: a fusion that averages frames whose
    focus is alike, but not equal, blurs there.
    """
    short = min(view[2], view[3])
    texture = _fine(canvas_shape, rng)
    depth = _depth_map(canvas_shape, view, rng, objects)
    texture = _tint_objects(texture, depth < 0.0, rng)
    depth += np.float32(0.12) * _smooth_noise(canvas_shape, rng, cell=short / 12)
    return texture, depth


#: scenes that draw their own relief: name -> fn(canvas_shape, view, rng, objects) -> (texture, depth)
_RELIEF_SCENES = {"board": _board, "fine": _fine_scene}
