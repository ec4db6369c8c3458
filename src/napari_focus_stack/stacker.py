"""FocusStacker: read -> align -> fuse, one frame at a time.

Two streaming passes over the frames:

1. alignment: every frame is decoded, reduced to a gray pyramid and a small
   colour thumbnail, and registered to its neighbour on the reference side
   (chaining outward from the reference frame, so the most defocused frames
   are still compared with a similar frame). Only the last good frame of
   each direction is kept.
2. fusion: every frame is read again (from a bounded cache of decoded
   frames, else decoded again), warped once into reference geometry (at
   ``scale_factor`` times the resolution), corrected for exposure, and
   folded into the streaming fusion state.

Peak memory is therefore the fusion state plus a few frames in flight,
whatever the number of frames. Images too large for the device are fused in
overlapping tiles (automatically after an out-of-memory error).
"""
from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import pyramid
from ._backend import Backend, get_backend
from ._runtime import default_threads
from .align import (
    describe_transform,
    estimate_transform,
    max_corner_shift,
    valid_region,
    warp_image,
)
from .channels import alignment_weights, channel_weights
from .errors import FocusStackError, FocusStackWarning, InputError, ParameterError, StackError
from .focus import block_mean, measure_reach
from .fusion import MAX_LEVELS, make_fusion
from .height import regularise_depth
from .io import FrameSource, ImageMeta, write_image
from .options import MIN_TILE, EngineOptions

__all__ = ["FocusStacker", "StackResult", "Cancelled"]

ALIGN_PIXELS = 1_000_000  # registration refines up to the first pyramid level at most this big
THUMB_SIDE = 256  # colour thumbnails for exposure matching are at most this big
# The focus measure's band-pass is 5 taps wide and registration keeps a 2-pixel
# border: a side of 5 leaves one interior row. Smaller frames have no focus to measure.
MIN_FRAME_SIDE = 5
# A frame whose transform moves no image corner further than this (px) is
# fused as it is: no interpolation blur for stacks that do not breathe.
UNWARPED_PX = 0.1


class Cancelled(FocusStackError):
    """Raised inside :meth:`FocusStacker.stack` when the cancel callback says so."""


@dataclass
class StackResult:
    """Everything one stack produced. Writing is a separate step.

    ``depth`` is the regularised depth map (see :mod:`napari_focus_stack.height`):
    confident pixels as measured, the others filled edge-aware from them. It
    is computed on first use; ``depth_raw`` is the map as measured.
    """

    image: np.ndarray  # fused image, dtype and channels of the input
    depth_raw: np.ndarray  # float32 fractional index of the sharpest frame, as measured
    confidence: np.ndarray  # float32 0..1
    transforms: list  # 3x3 reference->frame matrix per frame, None for excluded frames
    report: dict = field(default_factory=dict)
    meta: ImageMeta | None = None  # reference frame's metadata (EXIF, ICC)
    _depth: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def depth(self) -> np.ndarray:
        """float32 (H, W) fractional frame index, regularised (computed once, on first use)."""
        if self._depth is None:
            self._depth = _regularised_depth(self)
        return self._depth

    @depth.setter
    def depth(self, value: np.ndarray) -> None:
        self._depth = value

    def arrays(self, kinds: Iterable[str]) -> dict[str, np.ndarray]:
        """The arrays of the given output kinds ("image", "depth", "confidence").

        Only those asked for are computed: the regularised depth map costs a
        few tenths of a second that a run writing just the image need not pay.
        """
        return {kind: getattr(self, kind) for kind in kinds}


@dataclass
class _Alignment:
    """What the first pass found: the reference, per-frame transforms and the notes for the report."""

    ref: int
    mats: list  # 3x3 reference->frame matrix per frame, None for excluded frames
    quality: list
    reasons: list  # why each excluded frame is excluded
    thumbs: list  # (thumbnail, block size) per frame, for exposure matching
    missing: list  # non-finite pixels per frame
    reference_changed: dict | None = None  # {"from", "to", "reason"} when the reference was replaced
    notes: list = field(default_factory=list)  # one line per thing the user should know

    @property
    def connected(self) -> int:
        """Frames aligned to the reference, the reference included."""
        return sum(m is not None for m in self.mats)

    def describe(self, source: FrameSource) -> None:
        """Write the user-facing notes (a replaced reference, non-finite pixels)."""
        self.notes = []
        if self.reference_changed:
            old, new = self.reference_changed["from"], self.reference_changed["to"]
            self.notes.append(
                f"the reference {source.names[old]} {self.reference_changed['reason']}; "
                f"{source.names[new]} is the reference instead"
            )
        bad = [(source.names[i], k) for i, k in enumerate(self.missing) if k]
        if bad:
            listed = ", ".join(f"{name} ({k} px)" for name, k in bad)
            self.notes.append(
                f"{sum(k for _, k in bad)} non-finite pixels (NaN or inf) treated as missing data in "
                f"{len(bad)} frame{'s' if len(bad) > 1 else ''}: {listed}"
            )


def _warn(notes: list) -> None:
    for note in notes:
        # stacklevel 3: the caller of stack() / estimate_transforms()
        warnings.warn(note, FocusStackWarning, stacklevel=3)


def _mark_nonfinite(frame: np.ndarray) -> int:
    """Set inf in a float host frame to NaN (one marker for missing data); return the pixels missing."""
    if frame.dtype.kind != "f":
        return 0
    bad = ~np.isfinite(frame)
    if not bad.any():
        return 0
    frame[bad] = np.nan
    return int((bad.any(axis=2) if bad.ndim == 3 else bad).sum())


def _missing_pixels(xp, image: Any) -> Any | None:
    """Boolean (H, W) mask of pixels with a non-finite value in any channel, or None when there are none."""
    bad = ~xp.isfinite(image)
    if bad.ndim == 3:
        bad = bad.any(axis=2)
    return bad if bool(bad.any()) else None


def _frame_source(inputs: Any) -> FrameSource:
    """A FrameSource of `inputs`; a missing frame in a list is named by its index."""
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


def _dtype_scale(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    return 1.0




class FocusStacker:
    """Align and fuse a focus stack.

    Parameters
    ----------
    radius : int, 1-20
        Window radius (px) of the focus measure.
    smoothing : float, 1-10
        Gaussian sigma (px) applied to the focus measure (spatial consistency).
    scale_factor : int, 1-4
        Frames are warped (bicubic when > 1), measured and fused at this
        multiple of their resolution, then brought back (unless
        ``upscale_output``). The default is 1: on the synthetic benchmark 2
        gained only 0.2-0.7 dB for four times the work (docs/benchmarks.md).
    method : {"pyramid", "depthmap"}
    prefer : {"auto", "near", "far"}
        Occlusion order: next to an occlusion edge (a near object in front of
        a far background), favour the frames focused on the nearer surface
        ("near") or on the farther one ("far"). Frames are taken in their
        order, frame 0 focused nearest; for a stack shot from far to near,
        "near" favours the background. "auto" (default): no preference, the
        sharper frame wins.
    align : {"similarity", "affine", "translation", "none"}
    reference : int, optional
        Index of the reference frame (default: the middle frame).
    device : {"auto", "cpu", "gpu"} or Backend
    upscale_output : bool
        Keep the ``scale_factor`` times larger result.
    min_quality : float
        Frames whose alignment correlation falls below this are excluded.
    workers : int, optional
        Threads decoding frames ahead of the computation, and aligning both
        halves of the stack at once (default: CPU count, max 4). The image
        kernels spread over the cores themselves (OpenCV's threads, or the GPU).
    tile_size : int, optional
        Fuse in overlapping tiles of this many output pixels a side (default:
        whole image; tiles are chosen automatically after an out-of-memory
        error on the device).
    cache_bytes : int, optional
        Decoded frames kept between the two passes, in bytes (default: none
        on the CPU, where decoding again is cheap and memory must not grow
        with the stack; up to 512 MiB on a GPU, so each frame is uploaded once).
    channel : int or str, optional
        The channel whose focus decides, for all channels, which frame is
        sharp (an index, or a name where the data names its channels).
        Default: colour photos weigh their channels alike (luma for
        alignment); with ``normalise_channels`` every channel counts after
        division by its intensity spread.

    Examples
    --------
    >>> from napari_focus_stack import FocusStacker
    >>> from napari_focus_stack.synthetic import make_stack
    >>> stack = make_stack("checker", shape=(96, 128), n_frames=4)
    >>> fused = FocusStacker(device="cpu").process_stack(stack.frames)
    >>> fused.shape, fused.dtype
    ((96, 128, 3), dtype('uint8'))
    """

    def __init__(
        self,
        radius: int = 8,
        smoothing: float = 4,
        scale_factor: int = 1,
        method: str = "pyramid",
        align: str = "similarity",
        prefer: str = "auto",
        reference: int | None = None,
        device: str = "auto",
        upscale_output: bool = False,
        min_quality: float = 0.5,
        workers: int | None = None,
        tile_size: int | None = None,
        cache_bytes: int | None = None,
        channel: int | str | None = None,
    ):
        # a ready Backend (tests, benchmarks) is taken as it is
        given_backend = device if isinstance(device, Backend) else None
        opts = EngineOptions(
            method=method, radius=radius, smoothing=smoothing, scale_factor=scale_factor, align=align,
            reference=reference, device=given_backend.name if given_backend else device,
            upscale_output=upscale_output, tile_size=tile_size, channel=channel, prefer=prefer,
        )
        self.options = opts
        self.radius = opts.radius
        self.smoothing = opts.smoothing
        self.scale_factor = opts.scale_factor
        self.method = opts.method
        self.prefer = opts.prefer
        self.align = opts.align
        self.reference = opts.reference
        self.device = opts.device
        self.upscale_output = opts.upscale_output
        self.tile_size = opts.tile_size
        if given_backend is not None:
            self.device = given_backend
        self.channel = opts.channel
        self.min_quality = min_quality
        self.workers = default_threads() if workers is None else workers
        self.cache_bytes = cache_bytes
        self._backend: Backend | None = None

    # ------------------------------------------------------------------ API
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = get_backend(self.device)
        return self._backend

    def process_stack(self, inputs: Any, **kwargs) -> np.ndarray:
        """Fuse a stack and return only the image (dtype of the input)."""
        return self.stack(inputs, **kwargs).image

    def stack(
        self,
        inputs: Any,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
        transforms: Sequence[np.ndarray | None] | None = None,
        channel_names: Sequence[str] | None = None,
        normalise_channels: bool = False,
        match_exposure: bool = True,
    ) -> StackResult:
        """Align and fuse one stack.

        Parameters
        ----------
        inputs
            A folder, a list of image files, a multi-page TIFF, a (Z, Y, X[, C])
            array or a list of 2D/3D arrays (see :class:`io.FrameSource`).
        progress : callable(done, total, stage), optional
            Called after every frame of each pass (``total`` is twice the
            number of frames; tiles report fractions of a frame).
        cancel : callable or threading.Event, optional
            Checked between frames; :class:`Cancelled` is raised when set.
        transforms : list of 3x3 arrays, optional
            Reuse known reference->frame transforms (e.g. from another stack
            shot with the same focus sequence) instead of estimating them.
        channel_names : sequence of str, optional
            Names of the frames' channels, so that ``channel`` can name one.
        normalise_channels : bool
            Without a deciding ``channel``, weigh every channel by the inverse
            of its intensity spread in the reference frame (independent
            channels, e.g. fluorescence), instead of alike (colour photos).
        match_exposure : bool
            Correct each frame's per-channel gain towards the reference
            frame (photos: exposure drift). Microscope intensities
            are measurements: pass False to keep them as recorded.

        Notes
        -----
        All channels share one alignment and one focus decision, so a
        channel that is ``a * other + b`` in every frame is so in the result.
        A frame whose transform moves no image corner by more than
        ``UNWARPED_PX`` is fused unwarped (``"warped": False`` in its report).
        """
        source = _frame_source(inputs)
        _check_frame_size(source)
        n = len(source)
        ref = self._reference_index(n)
        bk = self.backend
        run = _Run(n, progress, cancel_check(cancel))
        cache = _FrameCache(self._cache_budget(source))
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        weights, align_weights = self._channel_weights(source, ref, channel_names, normalise_channels)
        if transforms is not None:
            al = self._reused(transforms, source, ref, cache, run, read_frames=match_exposure)
        else:
            al = self._align_to_best_reference(source, ref, cache, run, align_weights)
        mats = al.mats
        gains = _exposure_gains(al.thumbs, mats, al.ref) if match_exposure else [None] * n
        _warn(al.notes)
        timings["align_s"] = time.perf_counter() - t0
        # frames that hardly move are used as they are: no resampling blur
        fuse_mats = [_unwarped(m, source.shape[:2]) for m in mats]

        t1 = time.perf_counter()
        h, w = source.shape[:2]
        out_shape = (h * self.scale_factor, w * self.scale_factor)
        tile = self.tile_size
        while True:
            try:
                image, depth, confidence, tiles = self._fuse(
                    source, fuse_mats, gains, cache, run, out_shape, tile, weights
                )
                break
            except bk.oom_errors:
                # the device ran out of memory: redo the fusion in smaller tiles
                cache.clear()
                bk.release_memory()
                tile = _next_tile_size(out_shape, tile)
                if tile is None:
                    raise
                run.restart_fusion()
        timings["fuse_s"] = time.perf_counter() - t1
        image, depth, confidence = self._finish(image, depth, confidence, source.dtype)
        timings["total_s"] = time.perf_counter() - t0
        report = self._report(source, al, gains, timings)
        for entry, m in zip(report["frames"], fuse_mats, strict=False):
            if m is not None:
                entry["warped"] = not _is_identity(m)
        report["unwarped"] = [f["name"] for f in report["frames"] if f.get("warped") is False]
        report["channel_weights"] = None if weights is None else list(weights)
        report["alignment_weights"] = None if align_weights is None else list(align_weights)
        report["exposure_matched"] = bool(match_exposure)
        report["tiles"] = tiles
        report["cache_hits"] = cache.hits
        report["inputs"] = [p for p in source.paths if p is not None]
        return StackResult(image, depth, confidence, mats, report, source.meta(al.ref))

    def stack_nd(
        self,
        data: Any,
        axes: str | None = None,
        *,
        z_step: float | None = None,
        calibration: Any | None = None,
        channel: int | str | None = None,
        reuse_alignment: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
        scheduler: Any | None = None,
    ) -> Any:
        """Fuse N-D data along Z for every time point (and position).

        Parameters
        ----------
        data : array-like or nd.Hyperstack
            NumPy, Dask or Zarr array with named ``axes`` (read one plane at
            a time), or a :class:`~napari_focus_stack.nd.Hyperstack`.
        axes : str, optional
            One letter per dimension: ``Z``, ``Y``, ``X`` required, ``C``
            channels, ``S`` RGB samples, ``T`` or any other letter looped
            over. Default for 3-D arrays: ``"ZYX"``.
        z_step : float, optional
            Distance between z planes; sets or overrides the calibration's.
            Heights are then ``z0 + index * z_step``, else frame indices.
        calibration : nd.Calibration, optional
            Pixel size, z step, units and channel names of an array.
        channel : int or str, optional
            The channel whose focus decides for all channels (index or
            name); default: this stacker's ``channel``, else all channels,
            each normalised by its intensity spread.
        reuse_alignment : bool
            Estimate the alignment on the first z-stack only and reuse it
            for the others (same focus sequence): one pass over each later
            z-stack instead of two.
        progress : callable(done, total, stage), optional
            Progress over all z-stacks; ``stage`` names the time point.
        cancel : callable or threading.Event, optional
        scheduler : str or distributed.Client, optional
            Run the time points in parallel on this Dask cluster (a
            scheduler's address, or a connected client, left open); each
            worker reads its own z-stack, and the results are those of the
            serial run (see :func:`napari_focus_stack.nd.stack_nd`).

        Returns
        -------
        nd.NDResult
            Fused images with axes (T, C, Y, X) (absent ones dropped),
            regularised and raw heights, confidence, the height unit and
            the calibration, one report per z-stack.

        Examples
        --------
        >>> import numpy as np
        >>> from napari_focus_stack.synthetic import make_stack
        >>> st = make_stack("checker", shape=(64, 80), n_frames=4, gray=True, dtype=np.uint16,
        ...                 breathing=0, max_rotation_deg=0, max_shift=0)
        >>> tzyx = np.stack([np.stack(st.frames)] * 2)  # two time points
        >>> res = FocusStacker(device="cpu").stack_nd(tzyx, "TZYX", z_step=0.5)
        >>> res.axes, res.image.shape, res.unit
        ('TYX', (2, 64, 80), 'µm')
        """
        from .nd import stack_nd

        return stack_nd(
            self, data, axes, z_step=z_step, calibration=calibration, channel=channel,
            reuse_alignment=reuse_alignment, progress=progress, cancel=cancel, scheduler=scheduler,
        )

    def estimate_transforms(
        self,
        inputs: Any,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
    ) -> tuple[list, dict]:
        """Estimate the transforms only (no fusion): ``(transforms, report)``.

        ``transforms`` can be given to :meth:`stack` of other stacks shot with
        the same focus sequence (``None`` marks an excluded frame).
        """
        source = _frame_source(inputs)
        _check_frame_size(source)
        ref = self._reference_index(len(source))
        run = _Run(len(source), progress, cancel_check(cancel))
        t0 = time.perf_counter()
        _, align_weights = self._channel_weights(source, ref, None, False)
        al = self._align_to_best_reference(source, ref, _FrameCache(0), run, align_weights)
        gains = _exposure_gains(al.thumbs, al.mats, al.ref)
        _warn(al.notes)
        report = self._report(source, al, gains, {"align_s": time.perf_counter() - t0})
        return al.mats, report

    def warp_to_reference(self, inputs: Any, transforms: Sequence[np.ndarray | None]) -> Iterator[np.ndarray | None]:
        """Yield every frame warped into the reference geometry, one at a time.

        The frames come out in the geometry of :attr:`StackResult.image`:
        at ``scale_factor`` times the frame size when ``upscale_output`` is
        set, else at the frame size, resampled as the fusion resamples them.
        Only geometry is applied (no exposure correction), so these are the
        aligned frames as shot, e.g. to check the alignment by scrolling.

        Parameters
        ----------
        inputs
            The stack the transforms belong to (anything :meth:`stack` takes).
        transforms : list of 3x3 arrays or None
            Reference->frame matrices, one per frame, as in
            :attr:`StackResult.transforms`; ``None`` marks an excluded frame.

        Yields
        ------
        numpy.ndarray or None
            Frame ``i`` in reference geometry, dtype and channels of the
            input; pixels the frame does not cover are 0. ``None`` for an
            excluded frame. Each frame is read when it is asked for, so
            memory does not grow with the number of frames.

        Raises
        ------
        StackError
            The number of transforms differs from the number of frames.

        Examples
        --------
        >>> from napari_focus_stack.synthetic import make_stack
        >>> stack = make_stack("checker", shape=(64, 80), n_frames=3)
        >>> stacker = FocusStacker(device="cpu")
        >>> result = stacker.stack(stack.frames)
        >>> aligned = list(stacker.warp_to_reference(stack.frames, result.transforms))
        >>> [a.shape for a in aligned] == [result.image.shape] * 3
        True
        """
        source = inputs if isinstance(inputs, FrameSource) else FrameSource.from_inputs(inputs)
        n = len(source)
        if len(transforms) != n:
            raise StackError(
                f"{len(transforms)} transforms were given for a stack of {n} frames; they must match one to one"
            )
        return self._warped_frames(source, transforms)

    def _warped_frames(self, source: FrameSource, transforms: Sequence) -> Iterator[np.ndarray | None]:
        bk, xp = self.backend, self.backend.xp
        s = self.scale_factor if self.upscale_output else 1
        h, w = source.shape[:2]
        shape = (h * s, w * s)
        up = _output_to_reference(s)
        order = 2 if s == 1 else 3  # as the fusion resamples
        dtype = np.dtype(source.dtype)
        for i, m in enumerate(transforms):
            if m is None:
                yield None
                continue
            m = np.asarray(m, dtype=float) @ up
            frame = source.read(i)
            warped = warp_image(bk, self._to_float(frame, 1.0), m, shape, order)
            valid = valid_region(xp, m, shape, frame.shape[:2])
            warped = warped * (valid if warped.ndim == 2 else valid[..., None])
            out = bk.to_numpy(warped)
            if dtype.kind in "ui":
                info = np.iinfo(dtype)
                out = np.clip(np.rint(out), info.min, info.max)
            yield out.astype(dtype, copy=False)

    def estimate_memory(self, shape: Sequence[int]) -> int:
        """Peak bytes :meth:`stack` needs for frames of ``shape`` ((H, W) or (H, W, C)).

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
        h, w = int(shape[0]), int(shape[1])
        c = int(shape[2]) if len(shape) > 2 else 1
        frame = h * w * c * 4
        work = frame * self.scale_factor**2
        fixed = 40 << 20
        decoded = 2 * frame // 4
        tiled = bool(self.tile_size) and self.tile_size < max(h, w) * self.scale_factor
        window = min(work, (self.tile_size + 2 * 192) ** 2 * c * 4) if tiled else work  # a tile and its overlap
        ahead = 1.8 * window if self.workers > 1 and _prefetch_fusion(window) else 0
        result = work * (c + 2) / c if tiled else 0  # image, depth and confidence assembled on the host
        return int(6.5 * window + ahead + result + decoded + fixed)

    def save_image(
        self,
        image: np.ndarray | StackResult,
        path,
        quality: int = 95,
        exif: bytes | None = None,
        icc: bytes | None = None,
        protect: Sequence = (),
    ):
        """Write an image atomically, format by extension (.jpg, .png, .tif).

        Given a :class:`StackResult`, its fused image is written with the
        reference frame's EXIF and ICC profile unless others are passed, and
        its input files are protected from being overwritten.
        """
        if isinstance(image, StackResult):
            meta = image.meta
            exif = exif if exif is not None else getattr(meta, "exif", None)
            icc = icc if icc is not None else getattr(meta, "icc", None)
            protect = list(protect) + list(image.report.get("inputs", []))
            image = image.image
        return write_image(path, image, quality=quality, exif=exif, icc=icc, protect=protect)

    @staticmethod
    def split_into_stacks(paths: Sequence, stack_size: int | None = None) -> list[list]:
        """Group files into stacks (OpenScan names, or natural order in chunks)."""
        from .grouping import split_into_stacks

        return split_into_stacks(paths, stack_size=stack_size)

    # ------------------------------------------------------------ internals
    def _reference_index(self, n: int) -> int:
        ref = n // 2 if self.reference is None else int(self.reference)
        if not 0 <= ref < n:
            raise ParameterError(
                f"reference must be a frame index between 0 and {n - 1} (the stack has {n} frames), "
                f"got {self.reference!r}"
            )
        return ref

    def _channel_weights(self, source: FrameSource, ref: int, names, normalise: bool) -> tuple:
        """Each channel's say in the focus decision and in alignment (None: the colour-photo default)."""
        if self.channel is None and not (normalise and len(source.shape) == 3):
            channel_weights(source.shape, self.channel, names=names)  # validates the channel
            return None, None
        frame = source.read(ref) if self.channel is None else None
        peak = _dtype_scale(source.dtype)
        weights = channel_weights(source.shape, self.channel, names=names, frame=frame, peak=peak)
        return weights, alignment_weights(weights, frame)

    def _cache_budget(self, source: FrameSource) -> int:
        if self.cache_bytes is not None:
            return int(self.cache_bytes)
        if not self.backend.is_gpu:
            return 0
        return min(512 << 20, self.backend.available_memory() // 4)

    def _reused(
        self, transforms: Sequence, source: FrameSource, ref: int, cache: _FrameCache, run: _Run,
        read_frames: bool = True,
    ) -> _Alignment:
        """The alignment from given transforms; ``read_frames`` reads every frame for exposure
        thumbnails and missing-pixel counts (without it, the frames are read once, to be fused)."""
        n = len(source)
        if len(transforms) != n:
            raise StackError(
                f"{len(transforms)} transforms were given for a stack of {n} frames; they must match one to one"
            )
        mats = [None if m is None else np.asarray(m, dtype=float) for m in transforms]
        changed = None
        if mats[ref] is None:
            # the reused alignment replaced this reference: take the frame it used instead
            own = [i for i, m in enumerate(mats) if m is not None and np.allclose(m, np.eye(3))]
            if not own:
                raise StackError(f"the reused alignment excludes the reference frame {source.names[ref]}")
            changed = {"from": ref, "to": own[0], "reason": "is excluded in the reused alignment"}
            ref = own[0]
        # express the reused transforms relative to this stack's reference frame
        to_ref = np.linalg.inv(mats[ref])
        mats = [None if m is None else m @ to_ref for m in mats]
        quality = [float("nan") if m is not None else None for m in mats]
        reasons = [None if m is not None else "excluded in the reused alignment" for m in mats]
        thumbs, missing = [None] * n, [0] * n
        for i in range(n) if read_frames else ():
            host = self._read(source, cache, i)
            missing[i] = _mark_nonfinite(host)
            thumbs[i] = _thumbnail(host, source)
            run.tick("align")
        if not read_frames:
            run.tick("align", n)
        al = _Alignment(ref, mats, quality, reasons, thumbs, missing, reference_changed=changed)
        al.describe(source)
        return al

    def _read(self, source: FrameSource, cache: _FrameCache, i: int) -> Any:
        """Frame ``i`` as stored: from the cache (maybe on the device) or decoded on the host."""
        frame = cache.get(i)
        return source.read(i) if frame is None else frame

    def _to_float(self, frame: Any, scale: float) -> Any:
        """Upload (once, as stored) and convert to float32 in [0, 1]."""
        xp = self.backend.xp
        a = self.backend.asarray(frame).astype(xp.float32)
        if scale != 1.0:
            a *= xp.float32(1.0 / scale)
        return a

    def _align_to_best_reference(
        self, source: FrameSource, ref: int, cache: _FrameCache, run: _Run, weights=None
    ) -> _Alignment:
        """Align to ``ref``; when no other frame matches it, to the best-connected neighbour of it.

        A reference that matches no other frame is the odd one out (bumped,
        rotated, another scene): aligning to it would keep it alone.
        """
        al = self._align(source, ref, cache, run, weights)
        n = len(source)
        if n < 3 or al.connected > 1:
            al.describe(source)
            return al
        quiet = _Run(n, None, run.is_cancelled)  # progress was reported by the first pass
        best = al
        for cand in (ref + 1, ref - 1):
            if not 0 <= cand < n or best.connected >= n - 1:
                continue
            trial = self._align(source, cand, _FrameCache(0), quiet, weights)
            if trial.connected > best.connected:
                best = trial
        if best is not al:
            why = al.reasons[ref + 1 if ref + 1 < n else ref - 1]
            best.reference_changed = {"from": ref, "to": best.ref, "reason": f"matched no other frame: {why}"}
        best.describe(source)
        return best

    def _align(self, source: FrameSource, ref: int, cache: _FrameCache, run: _Run, weights=None) -> _Alignment:
        n = len(source)
        h, w = source.shape[:2]
        scale = _dtype_scale(source.dtype)
        levels = pyramid.n_levels((h, w), min_size=24)
        finest = 0
        while (h * w) / 4**finest > ALIGN_PIXELS and finest < levels - 1:
            finest += 1
        mats: list = [None] * n
        quality: list = [None] * n
        reasons: list = [None] * n
        thumbs: list = [None] * n
        missing: list = [0] * n
        mats[ref] = np.eye(3)
        quality[ref] = 1.0
        bk = self.backend

        # Registration of big frames stops at half resolution anyway, so with no
        # frame cache to fill, decode them at half size where that is cheap
        # (JPEG). A half-size pixel j covers full pixels 2j and 2j + 1.
        halve = finest >= 1 and cache.budget == 0
        half_to_full = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
        if halve:
            finest -= 1
            levels -= 1

        def load(i: int) -> list | None:
            host = source.read_reduced(i) if halve else None
            if host is None:
                host = source.read(i)
                missing[i] = _mark_nonfinite(host)  # counted at full size
                if halve:
                    host = block_mean(np, host, 2)
            thumb, f = _thumbnail(host, source)
            thumbs[i] = (thumb, 2 * f) if halve else (thumb, f)
            device = self.backend.asarray(host)
            cache.put(i, device)
            if self.align == "none":
                return None
            return pyramid.gaussian_pyramid(bk, bk.to_gray(self._to_float(device, scale), weights), levels)

        ref_pyr = load(ref)
        run.tick("align")
        lock = threading.Lock()

        def walk(order: list[int]) -> None:
            # chain outward from the reference; a failed frame is skipped and
            # the next one is registered to the last good one
            last, last_m = ref_pyr, np.eye(3)
            for i in order:
                cur = load(i)
                if self.align == "none":
                    mats[i], quality[i] = np.eye(3), float("nan")
                else:
                    reg = estimate_transform(
                        last[0], cur[0], self.align, backend=self.backend, template_pyramid=last,
                        moving_pyramid=cur, finest_level=finest,
                    )
                    if halve:
                        reg.matrix = half_to_full @ reg.matrix @ np.linalg.inv(half_to_full)
                    why = _implausible(reg.matrix, reg.quality, self.min_quality, (h, w))
                    quality[i] = reg.quality
                    if why:
                        reasons[i] = why
                    else:
                        mats[i] = reg.matrix @ last_m
                        last, last_m = cur, mats[i]
                with lock:
                    run.tick("align")

        up, down = list(range(ref + 1, n)), list(range(ref - 1, -1, -1))
        if self.workers > 1 and up and down and not self.backend.is_gpu:
            with ThreadPoolExecutor(2) as pool:
                for fut in [pool.submit(walk, up), pool.submit(walk, down)]:
                    fut.result()
        else:
            walk(up)
            walk(down)
        return _Alignment(ref, mats, quality, reasons, thumbs, missing)

    def _tiles(self, out_shape: tuple[int, int], tile: int | None) -> list[tuple]:
        """Output windows ``(y0, y1, x0, x1)`` with the inner part each one owns."""
        h, w = out_shape
        if tile is None or (tile >= h and tile >= w):
            return [((0, h, 0, w), (0, h, 0, w))]
        s = self.scale_factor
        grid = 2 ** (MAX_LEVELS - 1)  # windows start on the coarsest pyramid grid
        overlap = 4 * grid + 2 * int(math.ceil((self.radius + 3 * self.smoothing) * s))
        overlap = int(math.ceil(overlap / grid) * grid)
        step = max(grid, (tile // grid) * grid)
        tiles = []
        for y in range(0, h, step):
            for x in range(0, w, step):
                inner = (y, min(h, y + step), x, min(w, x + step))
                outer = (
                    max(0, y - overlap), min(h, y + step + overlap), max(0, x - overlap), min(w, x + step + overlap)
                )
                tiles.append((outer, inner))
        return tiles

    def _fuse(self, source, mats, gains, cache, run, out_shape, tile, weights=None) -> tuple:
        """Fuse all windows; returns host arrays at the working resolution."""
        tiles = self._tiles(out_shape, tile)
        bk = self.backend
        if len(tiles) == 1:
            res = self._fuse_window(source, mats, gains, cache, run, tiles[0][0], 1.0, weights)
            return bk.to_numpy(res.image), bk.to_numpy(res.depth), bk.to_numpy(res.confidence), 1
        image = np.empty(tuple(out_shape) + tuple(source.shape[2:]), np.float32)
        depth = np.empty(out_shape, np.float32)
        confidence = np.empty(out_shape, np.float32)
        for outer, inner in tiles:
            res = self._fuse_window(source, mats, gains, cache, run, outer, 1.0 / len(tiles), weights)
            y0, y1, x0, x1 = inner
            oy, ox = y0 - outer[0], x0 - outer[2]
            inner_rows = slice(oy, oy + y1 - y0)
            inner_cols = slice(ox, ox + x1 - x0)
            image[y0:y1, x0:x1] = bk.to_numpy(res.image[inner_rows, inner_cols])
            depth[y0:y1, x0:x1] = bk.to_numpy(res.depth[inner_rows, inner_cols])
            confidence[y0:y1, x0:x1] = bk.to_numpy(res.confidence[inner_rows, inner_cols])
            del res
        return image, depth, confidence, len(tiles)

    def _fuse_window(self, source, mats, gains, cache, run, window, share: float, weights=None):
        bk, xp = self.backend, self.backend.xp
        h, w = source.shape[:2]
        s = self.scale_factor
        y0, y1, x0, x1 = window
        shape = (y1 - y0, x1 - x0)
        scale = _dtype_scale(source.dtype)
        floating = np.dtype(source.dtype).kind == "f"  # only float data can hold NaN or inf
        up = _output_to_reference(s, x0, y0)
        parallel = self.workers > 1 and not bk.is_gpu
        fusion = make_fusion(
            self.method, bk, shape, self.radius * s, self.smoothing * s, weights, prefer=self.prefer, parallel=parallel
        )
        frames = [i for i, m in enumerate(mats) if m is not None]
        # bicubic: bilinear loses much of the detail below 6 px periods (docs/benchmarks.md, quality)
        order = 2 if s == 1 else 3

        def prepare(i: int, frame: Any) -> dict:
            m = mats[i] @ up
            frame, m = _crop_footprint(frame, m, shape)
            covered = frame.shape[:2]
            frame = bk.asarray(frame)
            gain = (1.0 if gains[i] is None else np.asarray(gains[i], np.float64)) / scale
            holes = _missing_pixels(xp, frame) if floating else None
            if holes is None:
                # conversion, exposure and warp in one go (by strips of rows on the CPU)
                warped = bk.warp_frame(
                    frame, m, shape, order, gain, out=fusion.buffers.empty(tuple(shape) + frame.shape[2:])
                )
            else:
                # exposure first: it commutes with hole filling and the warp (weighted means);
                # smooth stand-ins keep the band-pass quiet around holes, the mask keeps them out
                image = bk.scale_channels(frame.astype(xp.float32), gain)
                warped = warp_image(bk, pyramid.fill_holes(bk, image, holes), m, shape, order)
            del frame  # free the decoded frame before the pyramid is built
            valid = valid_region(xp, m, shape, covered)
            if holes is not None:
                valid &= warp_image(bk, holes.astype(xp.float32), m, shape, 1) < 1e-3
            if bool(valid.all()):
                valid = None
            return fusion.prepare(warped, valid)

        read = lambda i: self._read(source, cache, i)  # noqa: E731
        # Decode the next frame on a thread (one is enough: decoding takes a
        # fraction of a frame's fusion, and each decoded frame waiting is
        # memory). Prepare and merge run their kernels and independent halves
        # in parallel; small frames are also prepared one ahead (see
        # _prefetch_fusion).
        frames_in = _prefetched(read, frames, 1 if self.workers > 1 else 0)
        window_bytes = shape[0] * shape[1] * int(np.prod(source.shape[2:], dtype=int)) * 4  # float32
        ahead = 1 if parallel and _prefetch_fusion(window_bytes) else 0
        prepared = _prefetched(lambda i: prepare(i, next(frames_in)), frames, ahead)
        try:
            for i in frames:
                # no zip(): it would keep the previous frame's pyramid alive one step longer
                prep = next(prepared)
                fusion.merge(i, prep)
                del prep
                run.tick("fuse", share)
            run.tick("fuse", share * (len(mats) - len(frames)))
            return fusion.result()
        finally:
            fusion.close()  # cancelled or failed: stop its thread now

    def _finish(self, image, depth, confidence, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.scale_factor
        if s > 1 and not self.upscale_output:
            image = block_mean(np, image, s)
            depth = block_mean(np, depth, s)
            confidence = block_mean(np, confidence, s)
        dtype = np.dtype(dtype)
        if dtype.kind in "ui":
            peak = _dtype_scale(dtype)
            # in place: the float image is ours (the fusion's result) and frame-sized
            image *= np.float32(peak)
            np.rint(image, out=image)
            np.clip(image, 0, peak, out=image)
            image = image.astype(dtype)
        else:
            image = image.astype(dtype, copy=False)
        return image, depth.astype(np.float32, copy=False), confidence.astype(np.float32, copy=False)

    def _report(self, source, al: _Alignment, gains, timings) -> dict:
        frames = []
        mats = al.mats
        for i in range(len(source)):
            entry = {"index": i, "name": source.names[i], "quality": al.quality[i], "excluded": mats[i] is None}
            if mats[i] is not None:
                entry.update(describe_transform(mats[i], source.shape[:2]))
            if al.reasons[i]:
                entry["reason"] = al.reasons[i]
            if gains[i] is not None:
                entry["gain"] = [float(x) for x in gains[i]]
            if al.missing[i]:
                entry["nonfinite_pixels"] = al.missing[i]
            frames.append(entry)
        return {
            "frames": frames,
            "reference": al.ref,
            "reference_changed": al.reference_changed,
            "warnings": list(al.notes),
            "excluded": [f["name"] for f in frames if f["excluded"]],
            "backend": self.backend.name,
            "device": self.backend.device_name,
            "parameters": {
                "radius": self.radius,
                "smoothing": self.smoothing,
                "scale_factor": self.scale_factor,
                "method": self.method,
                "prefer": self.prefer,
                "align": self.align,
                "upscale_output": self.upscale_output,
            },
            "timings": timings,
        }


class _Run:
    """Progress and cancellation for one stack: ``total`` is two passes of ``n`` frames."""

    def __init__(self, n: int, progress, is_cancelled):
        self.n, self.progress, self.is_cancelled = n, progress, is_cancelled
        self.done = 0.0
        self.reported = 0
        self.cancelled = False

    def tick(self, stage: str, amount: float = 1.0) -> None:
        self.done += amount
        whole = int(self.done + 1e-6)  # tiles add fractions of a frame
        if self.progress is not None and whole > self.reported:
            self.reported = whole
            self.progress(whole, 2 * self.n, stage)
        if self.cancelled or self.is_cancelled():
            self.cancelled = True
            raise Cancelled("cancelled by the user")

    def restart_fusion(self) -> None:
        self.done = float(self.n)


class _FrameCache:
    """Decoded frames kept between the passes, up to a byte budget."""

    def __init__(self, budget: int):
        self.budget, self.used, self.frames, self.hits = budget, 0, {}, 0
        self.lock = threading.Lock()

    def put(self, i: int, frame: Any) -> None:
        with self.lock:
            if self.used + frame.nbytes <= self.budget:
                self.frames[i] = frame
                self.used += frame.nbytes

    def get(self, i: int) -> Any | None:
        with self.lock:
            frame = self.frames.get(i)
            self.hits += frame is not None
            return frame

    def clear(self) -> None:
        with self.lock:
            self.frames.clear()
            self.used = 0


#: Largest float32 working frame (bytes) whose fusion prepares the next frame
#: while merging this one. Measured, 2 cores, whole process: 7 x 3.1 MP (36 MiB
#: frames) 8 % faster for 60 MiB more peak; 10 x 12 MP (137 MiB frames) no
#: faster, memory bandwidth being the limit, for 250 MiB more (over a 1 GiB
#: budget). Each frame ahead holds about 1.8 working frames (pyramid, maps).
PREFETCH_MAX_FRAME_BYTES = 64 << 20


def _prefetch_fusion(window_bytes: float) -> bool:
    """Whether a fusion window of ``window_bytes`` of float32 prepares the next frame ahead.

    See :data:`PREFETCH_MAX_FRAME_BYTES`.
    """
    return window_bytes <= PREFETCH_MAX_FRAME_BYTES


def _prefetched(fn: Callable, items: list, ahead: int) -> Iterator:
    """``map(fn, items)`` in order, the next ``ahead`` items computed on one background thread.

    While the consumer works on result ``k``, result ``k + 1`` is being
    computed: at most ``ahead + 1`` results are alive. ``fn`` runs on one
    thread at a time, in order, so it may consume an iterator.
    """
    if ahead <= 0:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = [pool.submit(fn, item) for item in items[:ahead]]
        try:
            for k in range(len(items)):
                if k + ahead < len(items):  # queued now, it starts as soon as the one before is done
                    pending.append(pool.submit(fn, items[k + ahead]))
                # no name for the result (nor its future) here: the consumer alone decides when it dies
                yield pending.pop(0).result()
        finally:
            for fut in pending:
                fut.cancel()


def _output_to_reference(s: int, x0: int = 0, y0: int = 0) -> np.ndarray:
    """Matrix from output pixels (``s`` times the reference resolution, window at ``(x0, y0)``)
    to reference pixels: output pixel u covers reference pixel ``(u + 0.5) / s - 0.5``."""
    return np.array([[1 / s, 0, 0.5 / s - 0.5 + x0 / s], [0, 1 / s, 0.5 / s - 0.5 + y0 / s], [0, 0, 1.0]])


def _crop_footprint(frame: Any, m: np.ndarray, out_shape: tuple[int, int], margin: int = 3) -> tuple[Any, np.ndarray]:
    """Crop a frame to the part a window samples, so only that part is uploaded and warped."""
    h, w = out_shape
    corners = m @ np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], dtype=float)
    fh, fw = frame.shape[:2]
    xa = max(0, int(math.floor(corners[0].min())) - margin)
    xb = min(fw, int(math.ceil(corners[0].max())) + margin + 1)
    ya = max(0, int(math.floor(corners[1].min())) - margin)
    yb = min(fh, int(math.ceil(corners[1].max())) + margin + 1)
    if xa == 0 and ya == 0 and xb == fw and yb == fh:
        return frame, m
    if xb <= xa or yb <= ya:  # the window lies wholly outside this frame
        xa, xb, ya, yb = 0, min(fw, 2), 0, min(fh, 2)
    # the crop's edges are not the frame's edges: only clip where the frame really ends
    shift = np.array([[1, 0, -xa], [0, 1, -ya], [0, 0, 1.0]])
    return frame[ya:yb, xa:xb], shift @ m


def _check_frame_size(source: FrameSource) -> None:
    """Refuse frames too small to measure focus in (see :data:`MIN_FRAME_SIDE`)."""
    h, w = source.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE:
        raise StackError(
            f"{source.names[0]}: the frames are {w} x {h} pixels, too small to stack; "
            f"each side needs at least {MIN_FRAME_SIDE} pixels"
        )


def _thumbnail(frame: np.ndarray, source: FrameSource) -> tuple[np.ndarray, int]:
    """Small float colour thumbnail of a host frame (block means), for exposure matching.

    Returns the thumbnail and its block size ``f`` in frame pixels. Only every
    second (or fourth) pixel enters the means: plenty for exposure statistics
    and a fraction of the memory traffic.
    """
    h, w = frame.shape[:2]
    f = max(1, 2 ** math.ceil(math.log2(max(h, w) / THUMB_SIDE))) if max(h, w) > THUMB_SIDE else 1
    step = min(4, f)
    sub = np.asarray(frame[::step, ::step], dtype=np.float32)
    thumb = block_mean(np, sub, f // step) * np.float32(1.0 / _dtype_scale(source.dtype))
    return thumb, f


def _exposure_gains(thumbs: list, mats: list, ref: int) -> list:
    """Per-frame, per-channel gains that map each frame onto the reference's exposure.

    A gain is the ratio of the mean values over the part of the scene both
    frames show. Defocus spreads light but keeps its mean, so the ratio sees
    exposure and not blur (a gain-and-offset fit would take the contrast a
    blurred frame lost for a lower exposure).
    """
    from ._backend import get_backend

    cpu = get_backend("cpu")
    ref_thumb, f = thumbs[ref]
    c = (f - 1) / 2.0
    to_full = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
    gains: list = [None] * len(mats)
    for i, (thumb, _) in enumerate(thumbs):
        if i == ref or mats[i] is None:
            continue
        m = np.linalg.inv(to_full) @ mats[i] @ to_full
        warped = warp_image(cpu, thumb, m, ref_thumb.shape[:2])
        ok = valid_region(np, m, ref_thumb.shape[:2], thumb.shape[:2])
        for t in (warped, ref_thumb):  # missing (NaN) pixels take no part
            ok &= np.isfinite(t).all(axis=2) if t.ndim == 3 else np.isfinite(t)
        channels = 1 if warped.ndim == 2 else warped.shape[2]
        a = warped[ok].reshape(-1, channels)
        b = ref_thumb[ok].reshape(-1, channels)
        if a.shape[0] < 16:
            continue
        g = np.clip(b.mean(axis=0) / np.maximum(a.mean(axis=0), 1e-6), 0.5, 2.0)
        gains[i] = g.astype(np.float32)
    return gains


def _unwarped(m: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The identity for a transform that moves no corner by more than ``UNWARPED_PX``, else ``m``."""
    if m is None or max_corner_shift(m, shape) > UNWARPED_PX:
        return m
    return np.eye(3)


def _is_identity(m: np.ndarray) -> bool:
    return bool(np.array_equal(m, np.eye(3)))


def _regularised_depth(result: StackResult) -> np.ndarray:
    """The regularised depth of a result, on the backend that made it, guided by its fused image."""
    from ._backend import get_backend

    report = result.report
    try:
        bk = get_backend(report.get("backend", "cpu"))
    except FocusStackError:  # the result travelled to a machine without that device
        bk = get_backend("cpu")
    guide = bk.asarray(result.image).astype(bk.xp.float32)  # colour: an edge may be of hue only
    params = report.get("parameters", {})
    radius, smoothing = int(params.get("radius", 8)), float(params.get("smoothing", 4))
    depth = regularise_depth(bk, bk.asarray(result.depth_raw), bk.asarray(result.confidence), guide, 2 * radius,
                             edge_reach=measure_reach(radius, smoothing))
    return bk.to_numpy(depth).astype(np.float32, copy=False)


def _next_tile_size(out_shape: tuple[int, int], tile: int | None) -> int | None:
    """Halve the tile side after an out-of-memory error; None when already minimal."""
    current = tile or max(out_shape)
    nxt = current // 2
    return nxt if nxt >= MIN_TILE else None


def _implausible(m: np.ndarray, quality: float, min_quality: float, shape: tuple[int, int]) -> str | None:
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


def cancel_check(cancel) -> Callable[[], bool]:
    """A ``() -> bool`` from None, a :class:`threading.Event` or a callable."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel
