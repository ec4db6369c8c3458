"""Synthetic focus stacks and hyperstacks with their ground truth.

:func:`make_stack` renders one stack (:class:`SyntheticStack`: frames, the
all-in-focus truth, the in-focus frame index of every pixel, the true
transforms and gains), :func:`make_hyperstack` a microscope-like (T, C, Z, Y, X)
one, :func:`oracle_composite` the best any stacker could do with the true
depth, and :func:`save_stack` writes the frames.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .render import (
    MIN_BLUR_PER_FRAME,
    LayerRenderer,
    check_args,
    draw_transforms,
    geometry_margin,
    jpeg_round_trip,
    quantize,
    texture_mask_of,
    to_gray,
    warp_cubic,
)
from .scenes import OCCLUDERS, RELIEF_SCENES, add_occluders, depth_map, lens_blur, scene_texture, tint_objects


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
    height, width = check_args(scene, shape, n_frames, dtype, max_blur, breathing,
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

    transforms = draw_transforms(rng, (height, width), n, reference, breathing,
                                  max_rotation_deg, max_shift)
    gains = rng.uniform(1.0 - gain_range, 1.0 + gain_range, size=(n, channels))
    gains[reference] = 1.0

    blur_per_frame = max(float(max_blur) / (n - 1), MIN_BLUR_PER_FRAME)
    max_radius = blur_per_frame * (n - 1)
    margin = geometry_margin((height, width), breathing, max_rotation_deg, max_shift)
    pad = int(math.ceil(max_radius)) + 2
    off = margin + pad  # canvas index of reference pixel (0, 0)
    canvas_shape = (height + 2 * off, width + 2 * off)

    if scene in RELIEF_SCENES:  # texture and relief drawn together
        texture, depth = RELIEF_SCENES[scene](canvas_shape, (off, off, height, width), rng, objects)
        lens_blur(texture)
    else:
        texture = scene_texture(scene, canvas_shape, rng)
        depth = depth_map(canvas_shape, (off, off, height, width), rng, objects)
        # Objects are painted a little differently from what lies behind them,
        # as a raised part usually is; it makes their outline visible.
        objects = depth < 0.0
        texture = tint_objects(texture, objects, rng)
        del objects
    if occluders is not None:
        add_occluders(occluders, texture, depth, (off, off, height, width), rng)
    if gray:
        texture = to_gray(texture)[..., None]

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
    renderer = LayerRenderer(texture, labels, n_layers, region)
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
                image = warp_cubic(rendered, transforms[k], margin, (height, width))
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
            frame = quantize(image, dtype, maxval)
            del image
            if gray:
                frame = frame[..., 0]
            if jpeg_quality is not None:
                frame = jpeg_round_trip(frame, jpeg_quality)
            frames.append(frame)
    del renderer, labels

    truth_f = texture[crop]
    truth = quantize(truth_f, dtype, maxval, inplace=False)
    texture_mask = texture_mask_of(truth_f)
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
