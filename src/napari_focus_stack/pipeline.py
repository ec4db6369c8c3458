"""One z-stack in, one :class:`StackResult` out: align -> exposure -> fuse -> depth.

The stages, each in its module, with explicit inputs and outputs:

1. alignment (:mod:`.align_stack`): every frame decoded, registered to the
   reference frame, and reduced to a thumbnail; only running state is kept;
2. exposure (:mod:`.exposure`): a gain per frame and channel from the
   thumbnails;
3. fusion (:mod:`.fuse_stack`): every frame read again, warped into
   reference geometry and folded into the streaming fusion
   (:mod:`.fusion`), in tiles when the device is short of memory;
4. depth (:mod:`.depth`): on request, the regularised depth map, guided by
   the fused image.

Peak memory is the fusion state plus a few frames in flight, whatever the
number of frames. Nothing here writes files: that is the job layer's work.
:class:`~napari_focus_stack.stacker.FocusStacker` is the public face of
these functions.
"""
from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import Backend, block_mean
from ._runtime import cancel_check, default_threads
from .align import describe_transform, valid_region, warp_image
from .align_stack import Alignment, align_stack, reuse_alignment
from .channels import alignment_weights, channel_weights
from .depth import regularise_depth
from .errors import FocusStackWarning, InputError, ParameterError, StackError
from .exposure import exposure_gains
from .focus import measure_reach
from .fuse_stack import fuse_stack, output_to_reference, prefetch_fusion, unwarped, warp_order
from .intensity import normalised_source
from .io import FrameSource
from .options import EngineOptions
from .pixels import cast_to, full_scale, to_unit_float
from .result import FrameReport, StackReport, StackResult, Timings
from .streaming import FrameCache, RunProgress

__all__ = [
    "MIN_FRAME_SIDE", "StackSettings", "estimate_memory", "estimate_transforms", "frame_source", "regularised_depth",
    "stack_frames", "warped_frames",
]

# The focus measure's band-pass is 5 taps wide and registration keeps a 2-pixel
# border: a side of 5 leaves one interior row. Smaller frames have no focus to measure.
MIN_FRAME_SIDE = 5


@dataclass(frozen=True)
class StackSettings:
    """How a z-stack is aligned and fused: the engine options and the resources of the run.

    Attributes
    ----------
    options : EngineOptions
        The user-facing options (method, radius, smoothing, ... tile size).
    workers : int
        Threads decoding ahead and aligning both halves of a stack at once.
    min_quality : float
        Frames whose alignment correlation falls below this are excluded.
    cache_bytes : int, optional
        Decoded frames kept between the two passes (default: none on the
        CPU, up to 512 MiB on a GPU).
    """

    options: EngineOptions = field(default_factory=EngineOptions)
    workers: int = field(default_factory=default_threads)
    min_quality: float = 0.5
    cache_bytes: int | None = None


def frame_source(inputs: Any) -> FrameSource:
    """A FrameSource of `inputs` (see :meth:`FrameSource.from_inputs`); a missing frame in a list is named."""
    if isinstance(inputs, FrameSource):
        return inputs
    if isinstance(inputs, (list, tuple)):
        missing = [i for i, x in enumerate(inputs) if x is None]
        if missing:
            raise InputError(
                f"frame {missing[0]} of the {len(inputs)} inputs is None; give an image array or a file path "
                "for every frame"
            )
    return FrameSource.from_inputs(inputs)


def _opened(inputs: Any, opts: EngineOptions, progress, cancel) -> tuple[FrameSource, Any, int, RunProgress]:
    """The frames of a stack, checked and normalised (float data: about 0..1 inside, restored on output),
    the normalisation, the reference index and the run's progress."""
    source = frame_source(inputs)
    _check_frame_size(source)
    ref = _reference_index(opts.reference, len(source))
    source, intensity = normalised_source(source, ref)
    return source, intensity, ref, RunProgress(len(source), progress, cancel_check(cancel))


def _aligned(source: FrameSource, ref: int, settings: StackSettings, backend: Backend, cache: FrameCache,
             run: RunProgress, weights: Any) -> Alignment:
    """The alignment pass with the settings' model, quality bound and threads."""
    return align_stack(
        source, ref, model=settings.options.align, backend=backend, cache=cache, progress=run, weights=weights,
        min_quality=settings.min_quality, workers=settings.workers,
    )


def stack_frames(
    inputs: Any,
    settings: StackSettings,
    backend: Backend,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    transforms: Sequence[np.ndarray | None] | None = None,
    channel_names: Sequence[str] | None = None,
    normalise_channels: bool = False,
    match_exposure: bool = True,
    depth: bool = True,
) -> StackResult:
    """Align and fuse one stack; see :meth:`FocusStacker.stack <napari_focus_stack.FocusStacker.stack>`."""
    opts = settings.options
    source, intensity, ref, run = _opened(inputs, opts, progress, cancel)
    n = len(source)
    cache = FrameCache(_cache_budget(settings, backend))
    t0 = time.perf_counter()
    weights, align_weights = _channel_weights(opts.channel, source, ref, channel_names, normalise_channels)
    if transforms is not None:
        alignment = reuse_alignment(
            list(transforms), source, ref, cache=cache, progress=run, read_frames=match_exposure
        )
    else:
        alignment = _aligned(source, ref, settings, backend, cache, run, align_weights)
    gains = [None] * n
    if match_exposure:
        gains = exposure_gains(alignment.thumbs, alignment.transforms, alignment.ref)
    _warn(alignment.notes)
    timings = Timings(align_s=time.perf_counter() - t0)
    # frames that hardly move are used as they are: no resampling blur
    fuse_transforms = [unwarped(m, source.shape[:2]) for m in alignment.transforms]
    t1 = time.perf_counter()
    fused = fuse_stack(
        source, fuse_transforms, gains, options=opts, backend=backend, cache=cache, progress=run, weights=weights,
        workers=settings.workers,
    )
    timings.fuse_s = time.perf_counter() - t1
    image, depth_raw, confidence = _finish(fused, opts, source.dtype, intensity)
    timings.total_s = time.perf_counter() - t0
    report = _report(source, alignment, gains, timings, opts, backend)
    for entry, m in zip(report.frames, fuse_transforms, strict=True):
        if m is not None:
            entry.warped = not np.array_equal(m, np.eye(3))  # unwarped() gives exactly the identity
    report.channel_weights = None if weights is None else [float(x) for x in weights]
    report.alignment_weights = None if align_weights is None else [float(x) for x in align_weights]
    report.exposure_matched = bool(match_exposure)
    report.tiles = fused.tiles
    report.cache_hits = cache.hits
    report.inputs = [str(p) for p in source.paths if p is not None]
    result = StackResult(image, depth_raw, confidence, alignment.transforms, report, source.meta(alignment.ref))
    if depth:
        result.depth = regularised_depth(result, backend)
    return result


def estimate_transforms(
    inputs: Any,
    settings: StackSettings,
    backend: Backend,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> tuple[list, StackReport]:
    """The alignment pass only: ``(transforms, report)``; see :meth:`FocusStacker.estimate_transforms`."""
    opts = settings.options
    source, _, ref, run = _opened(inputs, opts, progress, cancel)
    t0 = time.perf_counter()
    _, align_weights = _channel_weights(opts.channel, source, ref, None, False)
    alignment = _aligned(source, ref, settings, backend, FrameCache(0), run, align_weights)
    gains = exposure_gains(alignment.thumbs, alignment.transforms, alignment.ref)
    _warn(alignment.notes)
    elapsed = time.perf_counter() - t0
    timings = Timings(align_s=elapsed, total_s=elapsed)
    return alignment.transforms, _report(source, alignment, gains, timings, opts, backend)


def warped_frames(
    source: FrameSource, transforms: Sequence, options: EngineOptions, backend: Backend
) -> Iterator[np.ndarray | None]:
    """Every frame in the geometry of the fused image, one at a time; see :meth:`FocusStacker.warp_to_reference`."""
    xp = backend.xp
    s = options.scale_factor if options.upscale_output else 1
    h, w = source.shape[:2]
    shape = (h * s, w * s)
    to_frame = output_to_reference(s)
    order = warp_order(s)  # as the fusion resamples
    dtype = np.dtype(source.dtype)
    for i, m in enumerate(transforms):
        if m is None:
            yield None
            continue
        m = np.asarray(m, dtype=float) @ to_frame
        frame = source.read(i)
        warped = warp_image(backend, to_unit_float(backend, frame, 1.0), m, shape, order)
        valid = valid_region(xp, m, shape, frame.shape[:2])
        warped = warped * (valid if warped.ndim == 2 else valid[..., None])
        yield cast_to(backend.to_numpy(warped), dtype)


def estimate_memory(shape: Sequence[int], settings: StackSettings) -> int:
    """Peak bytes :func:`stack_frames` needs for frames of ``shape`` ((H, W) or (H, W, C)).

    Measured on the CPU backend, whole process less the interpreter and
    its libraries (about 60 MiB): the pcb stack (7 x 3.1 MP) 330 MiB, a
    10 x 12 MP stack 900-940 MiB. About 6.5 float32 copies of the
    frame at working resolution: the fusion state (the fused pyramid,
    the noise average, the weights, the depth tracker) and the frame
    being prepared (its pyramid and maps), plus 1.8 copies for a small
    frame prepared ahead (see ``PREFETCH_MAX_FRAME_BYTES``), two decoded
    8-bit frames, some 40 MiB of fixed costs, and the full-size result
    when tiled.
    """
    opts = settings.options
    h, w = int(shape[0]), int(shape[1])
    c = int(shape[2]) if len(shape) > 2 else 1
    frame = h * w * c * 4
    work = frame * opts.scale_factor**2
    fixed = 40 << 20
    decoded = 2 * frame // 4
    tiled = bool(opts.tile_size) and opts.tile_size < max(h, w) * opts.scale_factor
    window = min(work, (opts.tile_size + 2 * 192) ** 2 * c * 4) if tiled else work  # a tile and its overlap
    ahead = 1.8 * window if settings.workers > 1 and prefetch_fusion(window) else 0
    result = work * (c + 2) / c if tiled else 0  # image, depth and confidence assembled on the host
    return int(6.5 * window + ahead + result + decoded + fixed)


def regularised_depth(result: StackResult, backend: Backend) -> np.ndarray:
    """The regularised depth map of a result, guided by its fused image (see :mod:`.depth`)."""
    params = result.report.parameters
    guide = backend.asarray(result.image).astype(backend.xp.float32)  # colour: an edge may be of hue only
    radius, smoothing = int(params["radius"]), float(params["smoothing"])
    depth = regularise_depth(
        backend, backend.asarray(result.depth_raw), backend.asarray(result.confidence), guide, 2 * radius,
        edge_reach=measure_reach(radius, smoothing),
    )
    return backend.to_numpy(depth).astype(np.float32, copy=False)


# ------------------------------------------------------------------ helpers
def _warn(notes: list) -> None:
    for note in notes:
        # stacklevel 4: the caller of FocusStacker.stack() / estimate_transforms()
        warnings.warn(note, FocusStackWarning, stacklevel=4)


def _check_frame_size(source: FrameSource) -> None:
    """Refuse frames too small to measure focus in (see :data:`MIN_FRAME_SIDE`)."""
    h, w = source.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE:
        raise StackError(
            f"{source.names[0]}: the frames are {w} x {h} pixels, too small to stack; "
            f"each side needs at least {MIN_FRAME_SIDE} pixels"
        )


def _reference_index(reference: int | None, n: int) -> int:
    ref = n // 2 if reference is None else int(reference)
    if not 0 <= ref < n:
        raise ParameterError(
            f"reference must be a frame index between 0 and {n - 1} (the stack has {n} frames), got {reference!r}"
        )
    return ref


def _channel_weights(channel, source: FrameSource, ref: int, names, normalise: bool) -> tuple:
    """Each channel's say in the focus decision and in alignment (None: the colour-photo default)."""
    if channel is None and not (normalise and len(source.shape) == 3):
        channel_weights(source.shape, channel, names=names)  # validates the channel
        return None, None
    frame = source.read(ref) if channel is None else None
    weights = channel_weights(source.shape, channel, names=names, frame=frame, peak=full_scale(source.dtype))
    return weights, alignment_weights(weights, frame)


def _cache_budget(settings: StackSettings, backend: Backend) -> int:
    if settings.cache_bytes is not None:
        return int(settings.cache_bytes)
    if not backend.is_gpu:
        return 0
    return min(512 << 20, backend.available_memory() // 4)


def _finish(fused, opts: EngineOptions, dtype, intensity=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fused arrays at the frames' resolution (unless ``upscale_output``), the image in the input's dtype."""
    image, depth, confidence = fused.image, fused.depth_raw, fused.confidence
    s = opts.scale_factor
    if s > 1 and not opts.upscale_output:
        image = block_mean(np, image, s)
        depth = block_mean(np, depth, s)
        confidence = block_mean(np, confidence, s)
    # in place: the float image is the fusion's and frame-sized
    image = cast_to(image, dtype, full_scale(dtype))
    if intensity is not None:  # float data: back to its own intensities
        image = intensity.restore(image)
    return image, depth.astype(np.float32, copy=False), confidence.astype(np.float32, copy=False)


def _report(
    source: FrameSource, alignment: Alignment, gains: list, timings: Timings, opts: EngineOptions, backend: Backend
) -> StackReport:
    frames = []
    for i in range(len(source)):
        m = alignment.transforms[i]
        entry = FrameReport(index=i, name=source.names[i], quality=alignment.quality[i], excluded=m is None,
                            reason=alignment.reasons[i] or None, nonfinite_pixels=alignment.missing[i])
        if m is not None:
            d = describe_transform(m, source.shape[:2])
            entry.scale, entry.rotation_deg, entry.shift_x, entry.shift_y = (
                d["scale"], d["rotation_deg"], d["shift_x"], d["shift_y"]
            )
        if gains[i] is not None:
            entry.gain = [float(x) for x in gains[i]]
        frames.append(entry)
    parameters = {
        "radius": opts.radius, "smoothing": opts.smoothing, "scale_factor": opts.scale_factor, "method": opts.method,
        "prefer": opts.prefer, "align": opts.align, "upscale_output": opts.upscale_output,
    }
    return StackReport(
        frames=frames, reference=alignment.ref, backend=backend.name, device=backend.device_name, parameters=parameters,
        timings=timings, reference_changed=alignment.reference_changed, warnings=list(alignment.notes),
    )
