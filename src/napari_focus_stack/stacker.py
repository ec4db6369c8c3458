"""FocusStacker: read -> align -> fuse, one frame at a time.

Two streaming passes over the frames:

1. alignment: every frame is decoded, reduced to a gray pyramid and a small
   colour thumbnail, and registered to its neighbour on the reference side
   (chaining outward from the reference frame, so the most defocused frames
   are still compared with a similar frame). Only the last good frame of
   each direction is kept.
2. fusion: every frame is decoded again, warped once into reference
   geometry (at ``scale_factor`` times the resolution), corrected for
   exposure, and folded into the streaming fusion state.

Peak memory is therefore the fusion state plus a few frames in flight,
whatever the number of frames.
"""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import pyramid
from ._backend import Backend, get_backend
from .align import (
    MODELS,
    describe_transform,
    estimate_transform,
    to_gray,
    valid_region,
    warp_image,
)
from .errors import FocusStackError, StackError
from .focus import block_mean
from .fusion import METHODS, make_fusion
from .io import FrameSource, ImageMeta, write_image

__all__ = ["FocusStacker", "StackResult", "Cancelled", "PARAMETER_RANGES"]

PARAMETER_RANGES = {"radius": (1, 20), "smoothing": (1, 10), "scale_factor": (1, 4)}
ALIGN_PIXELS = 1_000_000  # registration refines up to the first pyramid level at most this big
THUMB_SIDE = 256  # colour thumbnails for exposure matching are at most this big


class Cancelled(FocusStackError):
    """Raised inside :meth:`FocusStacker.stack` when the cancel callback says so."""


@dataclass
class StackResult:
    """Everything one stack produced. Writing is a separate step."""

    image: np.ndarray  # fused image, dtype and channels of the input
    depth: np.ndarray  # float32 fractional index of the sharpest frame
    confidence: np.ndarray  # float32 0..1
    transforms: list  # 3x3 reference->frame matrix per frame, None for excluded frames
    report: dict = field(default_factory=dict)
    meta: ImageMeta | None = None  # reference frame's metadata (EXIF, ICC)


def _check_range(name: str, value: float) -> None:
    lo, hi = PARAMETER_RANGES[name]
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value!r}")


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
        gave no better PSNR and cost four times the work (docs/benchmarks.md).
    method : {"pyramid", "depthmap"}
    align : {"similarity", "affine", "translation", "none"}
    reference : int, optional
        Index of the reference frame (default: the middle frame).
    device : {"auto", "cpu", "gpu"}
    upscale_output : bool
        Keep the ``scale_factor`` times larger result.
    min_quality : float
        Frames whose alignment correlation falls below this are excluded.
    workers : int, optional
        Threads for decoding and per-frame work (default: CPU count, max 4).

    Examples
    --------
    >>> from napari_focus_stack import FocusStacker
    >>> from napari_focus_stack.synthetic import make_stack
    >>> stack = make_stack("checker", shape=(96, 128), n_frames=4)
    >>> fused = FocusStacker(scale_factor=1, device="cpu").process_stack(stack.frames)
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
        reference: int | None = None,
        device: str = "auto",
        upscale_output: bool = False,
        min_quality: float = 0.5,
        workers: int | None = None,
    ):
        _check_range("radius", radius)
        _check_range("smoothing", smoothing)
        _check_range("scale_factor", scale_factor)
        if int(scale_factor) != scale_factor:
            raise ValueError(f"scale_factor must be a whole number between 1 and 4, got {scale_factor!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
        if align not in MODELS:
            raise ValueError(f"align must be one of {MODELS}, got {align!r}")
        self.radius = radius
        self.smoothing = smoothing
        self.scale_factor = int(scale_factor)
        self.method = method
        self.align = align
        self.reference = reference
        self.device = device
        self.upscale_output = upscale_output
        self.min_quality = min_quality
        if workers is None:
            import os

            workers = max(1, min(4, os.cpu_count() or 1))
        self.workers = workers
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
    ) -> StackResult:
        """Align and fuse one stack.

        Parameters
        ----------
        inputs
            A folder, a list of image files, a multi-page TIFF, a (Z, Y, X[, C])
            array or a list of 2D/3D arrays (see :class:`io.FrameSource`).
        progress : callable(done, total, stage), optional
            Called after every frame of each pass.
        cancel : callable or threading.Event, optional
            Checked between frames; :class:`Cancelled` is raised when set.
        transforms : list of 3x3 arrays, optional
            Reuse known reference->frame transforms (e.g. from another stack
            shot with the same focus sequence) instead of estimating them.
        """
        source = inputs if isinstance(inputs, FrameSource) else FrameSource.from_inputs(inputs)
        n = len(source)
        ref = self._reference_index(n)
        bk = self.backend
        is_cancelled = _cancel_check(cancel)
        total = 2 * n
        done = [0]

        def tick(stage: str) -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], total, stage)
            if is_cancelled():
                raise Cancelled("cancelled by the user")

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        scale = _dtype_scale(source.dtype)
        if transforms is not None:
            if len(transforms) != n:
                raise StackError(
                    f"{len(transforms)} transforms were given for a stack of {n} frames; they must match one to one"
                )
            mats = [None if m is None else np.asarray(m, dtype=float) for m in transforms]
            if mats[ref] is None:
                raise StackError(f"the reused alignment excludes the reference frame {source.names[ref]}")
            # express the reused transforms relative to this stack's reference frame
            to_ref = np.linalg.inv(mats[ref])
            mats = [None if m is None else m @ to_ref for m in mats]
            quality = [float("nan") if m is not None else None for m in mats]
            reasons = [None if m is not None else "excluded in the reused alignment" for m in mats]
            for _ in range(n):
                tick("align")
        else:
            mats, quality, reasons = self._align(source, ref, scale, tick)
        timings["align_s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        fused, gains = self._fuse(source, mats, ref, scale, tick)
        timings["fuse_s"] = time.perf_counter() - t1

        image, depth, confidence = self._finish(fused, source.dtype, scale)
        timings["total_s"] = time.perf_counter() - t0
        report = self._report(source, mats, quality, reasons, gains, ref, timings)
        return StackResult(image, depth, confidence, mats, report, source.meta(ref))

    def save_image(
        self,
        image: np.ndarray,
        path,
        quality: int = 95,
        exif: bytes | None = None,
        icc: bytes | None = None,
        protect: Sequence = (),
    ):
        """Write ``image`` atomically by extension (.jpg, .png, .tif)."""
        return write_image(path, image, quality=quality, exif=exif, icc=icc, protect=protect)

    @staticmethod
    def split_into_stacks(paths: Sequence, stack_size: int | None = None) -> list[list]:
        """Group files into stacks (OpenScan names, or natural order in chunks)."""
        from .grouping import split_into_stacks

        return split_into_stacks(paths, stack_size=stack_size)

    # ------------------------------------------------------------ internals
    def _reference_index(self, n: int) -> int:
        ref = n // 2 if self.reference is None else int(self.reference)
        if ref < 0:
            ref += n
        if not 0 <= ref < n:
            raise ValueError(f"reference must be a frame index between 0 and {n - 1}, got {self.reference!r}")
        return ref

    def _to_float(self, frame: np.ndarray, scale: float) -> Any:
        xp = self.backend.xp
        a = self.backend.asarray(frame)
        a = a.astype(xp.float32)
        if scale != 1.0:
            a *= xp.float32(1.0 / scale)
        return a

    def _gray_pyramid(self, source: FrameSource, i: int, scale: float, levels: int) -> list:
        xp = self.backend.xp
        return pyramid.gaussian_pyramid(xp, to_gray(xp, self._to_float(source.read(i), scale)), levels)

    def _align(self, source: FrameSource, ref: int, scale: float, tick) -> tuple:
        n = len(source)
        h, w = source.shape[:2]
        levels = pyramid.n_levels((h, w), min_size=24)
        finest = 0
        while (h * w) / 4**finest > ALIGN_PIXELS and finest < levels - 1:
            finest += 1
        mats: list = [None] * n
        quality: list = [None] * n
        reasons: list = [None] * n
        mats[ref] = np.eye(3)
        quality[ref] = 1.0
        if self.align == "none":
            for i in range(n):
                mats[i] = np.eye(3)
                tick("align")
            return mats, quality, reasons
        ref_pyr = self._gray_pyramid(source, ref, scale, levels)
        tick("align")
        lock = threading.Lock()

        def walk(order: list[int]) -> None:
            # chain outward from the reference; a failed frame is skipped and
            # the next one is registered to the last good one
            last, last_m = ref_pyr, np.eye(3)
            for i in order:
                cur = self._gray_pyramid(source, i, scale, levels)
                reg = estimate_transform(
                    last[0], cur[0], self.align, backend=self.backend, template_pyramid=last, moving_pyramid=cur,
                    finest_level=finest,
                )
                why = _implausible(reg.matrix, reg.quality, self.min_quality, (h, w))
                quality[i] = reg.quality
                if why:
                    reasons[i] = why
                else:
                    mats[i] = reg.matrix @ last_m
                    last, last_m = cur, mats[i]
                with lock:
                    tick("align")

        up, down = list(range(ref + 1, n)), list(range(ref - 1, -1, -1))
        if self.workers > 1 and up and down:
            with ThreadPoolExecutor(2) as pool:
                for fut in [pool.submit(walk, up), pool.submit(walk, down)]:
                    fut.result()
        else:
            walk(up)
            walk(down)
        return mats, quality, reasons

    def _fuse(self, source: FrameSource, mats: list, ref: int, scale: float, tick) -> tuple:
        bk, xp = self.backend, self.backend.xp
        h, w = source.shape[:2]
        s = self.scale_factor
        out_shape = (h * s, w * s)
        # output pixel u covers reference pixel (u + 0.5) / s - 0.5
        up = np.array([[1 / s, 0, 0.5 / s - 0.5], [0, 1 / s, 0.5 / s - 0.5], [0, 0, 1.0]])
        fusion = make_fusion(self.method, bk, out_shape, self.radius * s, self.smoothing * s)
        thumb_f = max(1, 2 ** math.ceil(math.log2(max(out_shape) / THUMB_SIDE)))
        ref_thumb = block_mean(xp, warp_image(bk, self._to_float(source.read(ref), scale), up, out_shape), thumb_f)
        frames = [i for i, m in enumerate(mats) if m is not None]
        gains: list = [None] * len(mats)

        order = 1 if s == 1 else 3  # upsampling wants bicubic; at 1x bilinear is as good and faster

        def prepare(i: int):
            m = mats[i] @ up
            warped = warp_image(bk, self._to_float(source.read(i), scale), m, out_shape, order)
            valid = valid_region(xp, m, out_shape, (h, w))
            if bool(valid.all()):
                valid = None
            if i != ref:
                gains[i] = _exposure_match(bk, block_mean(xp, warped, thumb_f), ref_thumb, valid, thumb_f)
                if gains[i] is not None:
                    g, off = gains[i]
                    warped *= xp.asarray(g)  # warped is always a fresh float array: safe in place
                    warped += xp.asarray(off)
            return fusion.prepare(warped, valid)

        if self.workers > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                # at most `workers` prepared frames alive: memory stays flat
                pending = [pool.submit(prepare, i) for i in frames[: self.workers]]
                for k, i in enumerate(frames):
                    prep = pending.pop(0).result()
                    fusion.merge(i, prep)
                    del prep
                    if k + self.workers < len(frames):
                        pending.append(pool.submit(prepare, frames[k + self.workers]))
                    tick("fuse")
        else:
            for i in frames:
                fusion.merge(i, prepare(i))
                tick("fuse")
        for _ in range(len(mats) - len(frames)):
            tick("fuse")
        return fusion.result(), gains

    def _finish(self, fused, dtype: np.dtype, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bk, xp = self.backend, self.backend.xp
        image, depth, confidence = fused.image, fused.depth, fused.confidence
        s = self.scale_factor
        if s > 1 and not self.upscale_output:
            image = block_mean(xp, image, s)
            depth = block_mean(xp, depth, s)
            confidence = block_mean(xp, confidence, s)
        image = bk.to_numpy(image)
        dtype = np.dtype(dtype)
        if dtype.kind in "ui":
            image = np.clip(np.rint(image * scale), 0, scale).astype(dtype)
        else:
            image = image.astype(dtype, copy=False)
        return image, bk.to_numpy(depth).astype(np.float32), bk.to_numpy(confidence).astype(np.float32)

    def _report(self, source, mats, quality, reasons, gains, ref, timings) -> dict:
        frames = []
        for i in range(len(source)):
            entry = {"index": i, "name": source.names[i], "quality": quality[i], "excluded": mats[i] is None}
            if mats[i] is not None:
                entry.update(describe_transform(mats[i], source.shape[:2]))
            if reasons[i]:
                entry["reason"] = reasons[i]
            if gains[i] is not None:
                entry["gain"] = [float(x) for x in gains[i][0]]
            frames.append(entry)
        return {
            "frames": frames,
            "reference": ref,
            "excluded": [f["name"] for f in frames if f["excluded"]],
            "backend": self.backend.name,
            "device": self.backend.device_name,
            "parameters": {
                "radius": self.radius,
                "smoothing": self.smoothing,
                "scale_factor": self.scale_factor,
                "method": self.method,
                "align": self.align,
                "upscale_output": self.upscale_output,
            },
            "timings": timings,
        }


def _exposure_match(bk: Backend, thumb: Any, ref_thumb: Any, valid: Any | None, f: int):
    """Per-channel gain and offset that map a warped frame's thumbnail onto the reference's.

    Thumbnails are block means at ``f`` times less resolution, where defocus
    hardly changes the values, so the fit sees exposure and not blur.
    """
    xp = bk.xp
    channels = 1 if thumb.ndim == 2 else thumb.shape[2]
    a = thumb.reshape(-1, channels)
    b = ref_thumb.reshape(-1, channels)
    if valid is not None:
        ok = (block_mean(xp, valid.astype(xp.float32), f) > 0.999).ravel()
        a, b = a[ok], b[ok]
    if a.shape[0] < 16:
        return None
    am, bm = a.mean(axis=0), b.mean(axis=0)
    var = ((a - am) ** 2).mean(axis=0)
    cov = ((a - am) * (b - bm)).mean(axis=0)
    g = xp.clip(cov / xp.maximum(var, 1e-12), 0.5, 2.0)
    off = bm - g * am
    return bk.to_numpy(g).astype(np.float32), bk.to_numpy(off).astype(np.float32)


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


def _cancel_check(cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel
