"""Compute backends: the one place where the CPU and the GPU differ.

A :class:`Backend` is an array module ``bk.xp`` (NumPy or CuPy) for plain
array arithmetic, plus a small set of image kernels for the heavy work:

========================  ====================================================
``warp_affine``           affine resampling (bilinear, bicubic or sharper), edges replicated
``warp_frame``            the same from a frame as stored (any dtype), exposure applied
``pyr_down``, ``pyr_up``  binomial (1 4 6 4 1)/16 pyramid steps, symmetric borders
``pyr_up_add``            ``a += scale * pyr_up(small)`` in place (Laplacian bands)
``gaussian_filter``       Gaussian blur, edges replicated
``box_filter``            mean over a square window, edges replicated
``max_filter``            maximum over a square window (2D), edges replicated
``resize``                bilinear resize on pixel areas, edges replicated
``to_gray``               weighted sum of the colour channels
``block_energy``          squares summed over channels, averaged over f x f blocks
``copy_where``            ``dst[mask] = src[mask]`` in place, one 2D mask for all channels
``scale_channels``        ``a * gain`` in place, a gain per channel
``multiply_blocks``       ``a *= w`` or ``acc += a * w``, ``w`` one value per f x f block for all channels
``sample_bilinear``       values at scattered sub-pixel points, NaN outside
========================  ====================================================

Every kernel takes and returns arrays of ``bk.xp``, 2D ``(H, W)`` or with
channels last ``(H, W, C)``; float32 in, float32 out.

* :class:`OpenCVBackend` (the CPU): OpenCV's SIMD kernels, spread over the
  cores by OpenCV's own threads (its default: one per core). They release
  the GIL, so frames keep decoding on other threads meanwhile.
* :class:`NdimageBackend`: the kernels written with ``xp`` and a
  ``scipy.ndimage``-compatible module. On the GPU that is CuPy with
  ``cupyx.scipy.ndimage``; on NumPy with SciPy it is the reference that the
  OpenCV kernels are tested against. (cuCIM is not used: the warps and
  filters it offers are these same ``cupyx`` kernels underneath.)

CuPy and OpenCV are imported only when their backend is created.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendError
from .options import DEVICES

__all__ = ["Backend", "BufferPool", "OpenCVBackend", "NdimageBackend", "get_backend", "gpu_status", "DEVICES"]

# Luma weights (ITU-R BT.601) for RGB; any other channel count is averaged.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Backend:
    """An array module and the image kernels that run on it (see the module docstring)."""

    xp: ModuleType
    name: str  # "cpu" or "gpu"
    device_name: str = "CPU"
    reason: str = ""
    _to_numpy: Callable[[Any], np.ndarray] = field(default=np.asarray, repr=False)
    _to_device: Callable[[Any], Any] = field(default=np.asarray, repr=False)
    # errors that mean "the device is out of memory": the stacker retries in tiles
    oom_errors: tuple = (MemoryError,)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Download an array to host memory (no copy on the CPU backend)."""
        return self._to_numpy(a)

    def asarray(self, a: Any) -> Any:
        """Upload a host array to this backend (no copy on the CPU backend)."""
        return self._to_device(a)

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    @property
    def ndi(self) -> ModuleType:
        """``scipy.ndimage`` (or its CuPy twin) for the rare operation outside the kernel set.

        Prefer the kernels: they are the fast path, and the only one tested
        against both devices.
        """
        import scipy.ndimage

        return scipy.ndimage

    def available_memory(self) -> int:
        """Free memory (bytes) of the device arrays live on."""
        if self.is_gpu:
            free, _ = self.xp.cuda.runtime.memGetInfo()
            return int(free + self.xp.get_default_memory_pool().free_bytes())
        return host_available_memory() or 1 << 34

    def release_memory(self) -> None:
        """Give cached device blocks back (after an out-of-memory error)."""
        if self.is_gpu:
            self.xp.get_default_memory_pool().free_all_blocks()
            self.xp.get_default_pinned_memory_pool().free_all_blocks()

    # ------------------------------------------------------------- kernels
    def warp_affine(self, image: Any, m: np.ndarray, out_shape: tuple[int, int], order: int = 1) -> Any:
        """Sample ``image`` at ``m @ (x, y, 1)`` for every output pixel ``(x, y)``.

        Parameters
        ----------
        image : array (H, W[, C])
        m : 3x3 array
            Output pixel coordinates (x = column, y = row) to input ones.
        out_shape : (rows, cols)
        order : {0, 1, 2, 3}
            0 nearest, 1 bilinear, 2 cubic convolution (Keys' bicubic: as
            fast as bilinear on the CPU, and keeps most of the detail that
            bilinear loses below 6 px periods; the CPU prefilters it to be
            as sharp as Lanczos-4 on average, see :func:`cubic_prefilter`),
            3 the most accurate the backend has (Lanczos-4 on the CPU, a
            cubic spline with ndimage). With ndimage, 2 is the cubic spline
            too. Positions outside the image take the nearest edge value.
        """
        raise NotImplementedError

    def warp_frame(
        self, frame: Any, m: np.ndarray, out_shape: tuple[int, int], order: int = 1,
        gain: Any = 1.0, out: Any | None = None,
    ) -> Any:
        """:meth:`warp_affine` of ``frame * gain`` as a float32 array.

        ``frame`` is as stored (any dtype, on this backend); ``gain`` is a
        number or one per channel. Exposure commutes with the
        warp's interpolation, so it is applied to the input, which is never
        larger than the output at scale factor 1. ``out`` (float32, the
        output's shape) may be written into and returned instead of a new
        array (the CPU kernel does).
        """
        a = self.scale_channels(frame.astype(self.xp.float32), gain)
        if np.allclose(m, np.eye(3), atol=1e-9) and tuple(out_shape) == tuple(a.shape[:2]):
            return _into(out, a)
        return _into(out, self.warp_affine(a, m, out_shape, order))

    def pyr_down(self, a: Any, out: Any | None = None) -> Any:
        """Blur with the binomial kernel (1 4 6 4 1)/16 and keep the even rows and columns.

        ``out``, an array of the result's shape and dtype, may be written
        into and returned instead of a new array (the CPU kernel does).

        Output pixel ``j`` sits on input pixel ``2j``; borders are reflected
        symmetrically (``a[-1] = a[0]``). The output has ``ceil(n / 2)`` rows
        and columns.
        """
        raise NotImplementedError

    def pyr_up(self, a: Any, shape: tuple[int, int]) -> Any:
        """Upsample by two to ``shape`` (rows, cols): the interpolating partner of :meth:`pyr_down`.

        Even outputs are ``(a[j-1] + 6 a[j] + a[j+1]) / 8``, odd outputs
        ``(a[j] + a[j+1]) / 2``, borders reflected symmetrically. ``shape``
        may be one smaller than twice ``a``'s (odd sizes).
        """
        raise NotImplementedError

    def pyr_up_add(self, a: Any, small: Any, scale: float = 1.0) -> Any:
        """``a += scale * pyr_up(small, a.shape)`` in place; returns ``a``.

        With ``scale=-1`` this turns a Gaussian level into its Laplacian band
        without a full-size temporary on the CPU.
        """
        up = self.pyr_up(small, a.shape[:2])
        if scale == 1.0:
            a += up
        elif scale == -1.0:
            a -= up
        else:
            up *= scale
            a += up
        return a

    def gaussian_filter(self, a: Any, sigma: float, truncate: float = 3.0) -> Any:
        """Gaussian blur of each channel, window ``truncate * sigma`` either side, edges replicated."""
        raise NotImplementedError

    def box_filter(self, a: Any, size: int) -> Any:
        """Mean over a ``size x size`` window (odd ``size``) of each channel, edges replicated."""
        raise NotImplementedError

    def max_filter(self, a: Any, size: int) -> Any:
        """Maximum over a ``size x size`` window (odd ``size``) of a 2D float32 or float64 array, edges replicated."""
        raise NotImplementedError

    def resize(self, a: Any, shape: tuple[int, int]) -> Any:
        """Bilinear resize to ``shape``, pixels as areas.

        Output pixel ``u`` samples input position ``(u + 0.5) * n_in / n_out - 0.5``;
        positions beyond the outermost centres take the edge value.
        """
        raise NotImplementedError

    def to_gray(self, frame: Any, weights: Sequence[float] | None = None) -> Any:
        """One float32 gray image of a (H, W[, C]) frame.

        With ``weights`` (one per channel) the weighted mean of the channels;
        else the luma of an RGB frame, the mean of any other channels, or the
        frame itself when it is gray.
        """
        xp = self.xp
        if frame.ndim == 2:
            return frame.astype(xp.float32, copy=False)
        c = frame.shape[2]
        if weights is None:
            weights = LUMA if c == 3 else (1.0,) * c
        if len(weights) != c:
            raise ValueError(f"{len(weights)} channel weights given for a frame of {c} channels")
        total = float(sum(weights))
        return self._channel_sum(frame, tuple(float(w) / total for w in weights))

    def block_energy(self, band: Any, f: int = 1, weights: Sequence[float] | None = None) -> Any:
        """``sum_c (w_c * band_c) ** 2``, averaged over ``f x f`` blocks: float32 (ceil(H / f), ceil(W / f)).

        Blocks at the bottom and right edges that the image does not fill
        are completed with the edge values (the mean of what is there).
        """
        xp = self.xp
        if band.ndim == 2:
            energy = band * band if weights is None else band * band * xp.float32(weights[0] ** 2)
        else:
            energy = None
            for c in range(band.shape[2]):
                w = 1.0 if weights is None else float(weights[c])
                if w == 0:
                    continue
                part = band[..., c] * band[..., c]
                if w != 1.0:
                    part *= xp.float32(w * w)
                energy = part if energy is None else energy.__iadd__(part)
            if energy is None:
                energy = xp.zeros(band.shape[:2], xp.float32)
        return block_mean(xp, energy, f).astype(xp.float32, copy=False)

    def _channel_sum(self, frame: Any, weights: tuple[float, ...]) -> Any:
        xp = self.xp
        gray = None
        for c, w in enumerate(weights):
            if w == 0:
                continue
            part = frame[..., c] * xp.float32(w)
            gray = part if gray is None else gray.__iadd__(part)
        if gray is None:
            return xp.zeros(frame.shape[:2], xp.float32)
        return gray.astype(xp.float32, copy=False)

    def copy_where(self, dst: Any, src: Any, mask: Any) -> None:
        """``dst[mask] = src[mask]`` in place; a 2D ``mask`` applies to every channel."""
        self.xp.copyto(dst, src, where=mask[..., None] if dst.ndim == 3 else mask)

    def scale_channels(self, a: Any, gain: Any) -> Any:
        """``a * gain`` computed in place and returned.

        ``gain`` is a number or one per channel (host values).
        """
        xp = self.xp
        a *= xp.asarray(np.asarray(gain, dtype=np.float32))
        return a

    def multiply_blocks(self, a: Any, w: Any, f: int = 1, acc: Any | None = None) -> Any:
        """``a *= w`` in place, or with ``acc`` given ``acc += a * w`` (``a`` unchanged); returns what changed.

        ``w`` is a 2D float32 map on a grid ``f`` times coarser than ``a``'s:
        each of its values covers an ``f x f`` block of pixels (the blocks
        of the last row and column may be cut off) and every channel.
        """
        up = upsample_blocks(self.xp, w, f, a.shape[:2])
        if a.ndim == 3:
            up = up[..., None]
        if acc is None:
            a *= up
            return a
        acc += a * up
        return acc

    def sample_bilinear(self, image: Any, ys: Any, xs: Any) -> Any:
        """Bilinear values of a 2D ``image`` at the points ``(ys, xs)`` (1D arrays).

        Points outside the pixel centres, ``[0, n - 1]``, are NaN. Points
        exactly on the last row or column are NaN on the CPU (OpenCV blends
        in the outside with weight zero) and valid on the GPU.
        """
        raise NotImplementedError


# Rows per strip of the strip-wise CPU kernels: a few MB of float32, cache-sized.
_STRIP_ROWS = 64


# OpenCV's bicubic (Keys' cubic convolution, a = -0.75) keeps a period's
# amplitude exactly at whole-pixel offsets and loses up to half of a 2.5 px
# period's at half-pixel ones: 0.75 of it on average over offsets, where
# Lanczos-4 keeps 0.90 (and 0.93 against 1.01 at 3.3 px). The CPU backend's
# order 2 therefore prefilters what it warps with a 5-tap kernel per axis,
# fitted so that over the sub-pixel offsets the warp samples its mean
# response matches Lanczos-4's at periods of 2.2 px and up: as sharp as
# Lanczos-4 on average, at a quarter of its cost. A warp that scales or
# rotates runs through all offsets; a shift has one per axis (none: no
# kernel). The kernel depends on the transform alone, not on the output
# window, so that tiles and retouched windows resample a frame alike.
_PREFILTER_FREQUENCIES = np.linspace(1 / 24, 1 / 2.2, 24)  # cycles/px, fitted alike


def _keys(x: np.ndarray) -> np.ndarray:
    """OpenCV's bicubic kernel: Keys' cubic convolution with a = -0.75."""
    a, x = -0.75, np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _lanczos4(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 4, np.sinc(x) * np.sinc(x / 4), 0.0)


def _mean_response(kernel: Callable, reach: int, offsets: np.ndarray) -> np.ndarray:
    """An interpolator's in-phase gain at each of :data:`_PREFILTER_FREQUENCIES`, averaged over ``offsets``.

    At offset ``t`` (0..1 past a whole pixel) the value is sum_k w(k - t) s(k)
    over the taps ``k = 1 - reach .. reach``; for ``s(x) = exp(2 pi i f x)``
    its in-phase part relative to ``s(t)`` is the gain (OpenCV normalises
    Lanczos' weights, and so does this).
    """
    d = np.arange(1 - reach, reach + 1)[None, :] - offsets[:, None]  # (offsets, taps)
    w = kernel(d)
    w /= w.sum(axis=1, keepdims=True)
    phase = np.cos(2 * np.pi * _PREFILTER_FREQUENCIES[:, None, None] * d[None])  # (frequencies, offsets, taps)
    return (phase * w[None]).sum(axis=2).mean(axis=1)


@functools.lru_cache(maxsize=256)
def _prefilter_taps(offset: float | None) -> np.ndarray:
    """The kernel for one axis: at one sub-pixel ``offset``, or over all of them (None); [1] if none is needed."""
    offsets = np.linspace(0, 1, 64, endpoint=False) if offset is None else np.array([offset])
    cubic = _mean_response(_keys, 2, offsets)
    target = _mean_response(_lanczos4, 4, offsets)
    # a symmetric 5-tap kernel (c2, c1, 1 - 2 c1 - 2 c2, c1, c2) has the response
    # 1 + 2 c1 (cos w - 1) + 2 c2 (cos 2w - 1)
    cos_w = np.cos(2 * np.pi * _PREFILTER_FREQUENCIES)
    basis = np.stack([2 * (cos_w - 1), 2 * (2 * cos_w * cos_w - 2)], axis=1)
    c1, c2 = np.linalg.lstsq(basis * cubic[:, None], target - cubic, rcond=None)[0]
    if abs(c1) + abs(c2) < 1e-4:
        return np.ones(1, np.float32)
    return np.array([c2, c1, 1 - 2 * c1 - 2 * c2, c1, c2], np.float32)


def cubic_prefilter(m: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The kernels (along x, along y) that make OpenCV's bicubic warp by ``m`` as sharp as Lanczos-4 on average.

    ``m`` maps output pixels (x, y) to input ones, as :meth:`Backend.warp_affine`
    takes it. Along an axis whose input coordinate moves by whole pixels from
    one output pixel to the next (a shift) every pixel has the same sub-pixel
    offset; otherwise the warp runs through all of them. None when no axis
    needs a kernel (whole-pixel shifts).
    """
    m = np.asarray(m, dtype=np.float64)
    taps = []
    for a, b, c in m[:2]:
        shift = abs(a - round(a)) < 1e-9 and abs(b - round(b)) < 1e-9
        # one offset, rounded to OpenCV's 1/32 px position steps (and kept in the cache)
        taps.append(_prefilter_taps(round(c - math.floor(c), 5) % 1.0 if shift else None))
    return None if all(t.size == 1 for t in taps) else (taps[0], taps[1])


def _check_order(order: int) -> None:
    if order not in (0, 1, 2, 3):
        raise ValueError(f"interpolation order must be 0, 1, 2 or 3, got {order!r}")


def block_mean(xp, a: Any, f: int) -> Any:
    """Mean over ``f x f`` blocks of ``a`` (edge-padded to a multiple of ``f``), with any ``xp``."""
    if f == 1:
        return a
    h, w = a.shape[:2]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
        a = xp.pad(a, pad, mode="edge")
    # strided slices are several times faster than reshape(...).mean(axis=(1, 3))
    out = None
    for dy in range(f):
        for dx in range(f):
            part = a[dy::f, dx::f]
            out = part.astype(xp.float32, copy=True) if out is None else out.__iadd__(part)
    out *= 1.0 / (f * f)
    return out


def block_all(xp, mask: Any, f: int) -> Any:
    """True where every pixel of an ``f x f`` block of the bool ``mask`` is True, with any ``xp``.

    Blocks at the bottom and right edges that the mask does not fill count
    the pixels that are there. Equal to ``block_mean(mask) == 1`` without a
    float copy of the mask.
    """
    if f == 1:
        return mask
    h, w = mask.shape[:2]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        mask = xp.pad(mask, [(0, ph), (0, pw)], mode="edge")
    out = mask[::f, ::f].copy()
    for dy in range(f):
        for dx in range(f):
            if dy or dx:
                out &= mask[dy::f, dx::f]
    return out


def upsample_blocks(xp, a: Any, f: int, shape: tuple[int, int]) -> Any:
    """Repeat every element into an ``f x f`` block and crop to ``shape``, with any ``xp``."""
    if f == 1:
        return a
    out = xp.repeat(xp.repeat(a, f, axis=0), f, axis=1)
    return out[: shape[0], : shape[1]]


class BufferPool:
    """Arrays handed out again once given back, so that frame-sized buffers are touched once per run.

    A fresh frame-sized array is mapped by the allocator and page-faulted on
    first write, every frame; the pool keeps the buffers of a merged frame
    for the next one instead. It holds only what was given back, and
    :meth:`clear` releases that. Thread-safe.
    """

    def __init__(self, xp: ModuleType):
        self.xp = xp
        self._free: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def empty(self, shape: Sequence[int], dtype: Any = np.float32) -> Any:
        """An uninitialised array: a given-back one of that shape and dtype, else a new one."""
        key = (tuple(int(n) for n in shape), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return self.xp.empty(key[0], dtype=dtype)

    def give_back(self, *arrays: Any) -> None:
        """Offer arrays for reuse; views and arrays that do not own their data are ignored."""
        with self._lock:
            for a in arrays:
                if a is None or a.base is not None or not a.flags.c_contiguous:
                    continue
                self._free.setdefault((a.shape, a.dtype.str), []).append(a)

    def clear(self) -> None:
        """Drop every buffer held."""
        with self._lock:
            self._free.clear()


def _into(out: Any | None, result: Any) -> Any:
    """``result``, copied into ``out`` when one is given (kernels that cannot write in place)."""
    if out is None or out is result:
        return result
    out[...] = result
    return out


def _with_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV returns (H, W) for a one-channel (H, W, 1) input: put the axis back."""
    return out[..., None] if like.ndim == 3 and out.ndim == 2 else out


@dataclass(frozen=True)
class OpenCVBackend(Backend):
    """The CPU backend: NumPy arrays and OpenCV kernels."""

    cv2: Any = field(default=None, repr=False)

    def warp_affine(self, image, m, out_shape, order=1):
        _check_order(order)
        taps = cubic_prefilter(m) if order == 2 else None
        if taps is not None:
            image = self._prefilter(image, taps)
        return self._warp(image, m, out_shape, order)

    def _prefilter(self, image, taps, ddepth=-1):
        """``image`` filtered with :func:`cubic_prefilter`'s kernels, edges replicated (a new array)."""
        cv2 = self.cv2
        if image.ndim == 3 and image.shape[2] > 4:  # OpenCV filters at most 4 channels at once
            return np.concatenate([self._prefilter(image[..., c: c + 4], taps, ddepth)
                                   for c in range(0, image.shape[2], 4)], axis=2)
        out = cv2.sepFilter2D(image, ddepth, taps[0], taps[1], borderType=cv2.BORDER_REPLICATE)
        return _with_channels(out, image)

    def _warp(self, image, m, out_shape, order, out=None):
        """:meth:`warp_affine` of an image already prefiltered, written into ``out`` when given."""
        cv2 = self.cv2
        flags = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 2: cv2.INTER_CUBIC, 3: cv2.INTER_LANCZOS4}[order]
        flags |= cv2.WARP_INVERSE_MAP
        m2 = np.asarray(m, dtype=np.float64)[:2]
        size = (int(out_shape[1]), int(out_shape[0]))
        if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
            # OpenCV's exact float bilinear (and its bicubic) take 1, 3 or 4 channels:
            # warp the others in groups of those
            if out is None:
                out = np.empty(tuple(out_shape) + image.shape[2:], dtype=image.dtype)
            c, n = 0, image.shape[2]
            while c < n:
                k = 4 if n - c >= 4 else 3 if n - c == 3 else 1
                out[..., c: c + k] = self._warp(image[..., c: c + k], m, out_shape, order)
                c += k
            return out
        if out is not None:
            dst = out[..., 0] if out.ndim == 3 and out.shape[2] == 1 else out
            cv2.warpAffine(image, m2, size, dst=dst, flags=flags, borderMode=cv2.BORDER_REPLICATE)
            return out
        out = cv2.warpAffine(image, m2, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return _with_channels(out, image)

    def warp_frame(self, frame, m, out_shape, order=1, gain=1.0, out=None):
        c = 1 if frame.ndim == 2 else frame.shape[2]
        if c > 4:
            return super().warp_frame(frame, m, out_shape, order, gain)
        cv2 = self.cv2
        _check_order(order)
        gains = _four_gains(gain, c)
        identity = np.allclose(m, np.eye(3), atol=1e-9) and tuple(out_shape) == tuple(frame.shape[:2])
        taps = cubic_prefilter(m) if order == 2 else None  # None for the identity too

        def to_float(rows):
            if taps is not None:  # converted by the prefilter, then scaled
                f = self._prefilter(rows, taps, cv2.CV_32F)
                return f if gains[:c] == (1.0,) * c else self.scale_channels(f, gains[:c])
            if _read_as_scalar(rows):
                return Backend.scale_channels(self, rows.astype(np.float32), gains[:c])
            f = cv2.multiply(rows, gains, dtype=cv2.CV_32F)
            return _with_channels(f, rows)

        h, w = int(out_shape[0]), int(out_shape[1])
        if out is None:
            out = np.empty((h, w) + frame.shape[2:], np.float32)
        fh = frame.shape[0]
        m = np.asarray(m, dtype=np.float64)
        # Convert and warp a strip of output rows at a time: the float copy of
        # the input is never whole (a frame less per frame in flight) and the
        # strip stays in cache between conversion and warp. A strip reads the
        # input rows under its footprint plus the interpolation's reach.
        margin = 5
        reach = abs(m[1, 0]) * w + 2 * margin + 2
        strip = max(_STRIP_ROWS, int(2 * reach))  # rotated frames: keep the re-read input below half
        for r0 in range(0, h, strip):
            r1 = min(h, r0 + strip)
            if identity:
                out[r0:r1] = to_float(frame[r0:r1])
                continue
            ys = m[1, 0] * np.array([0, w - 1, 0, w - 1]) + m[1, 1] * np.array([r0, r0, r1 - 1, r1 - 1]) + m[1, 2]
            ya = min(max(math.floor(ys.min()) - margin, 0), fh - 1)
            yb = min(max(math.ceil(ys.max()) + margin + 1, ya + 1), fh)
            # source rows counted from the chunk, output rows from the strip
            ms = np.array([[1, 0, 0], [0, 1, -ya], [0, 0, 1.0]]) @ m @ np.array([[1, 0, 0], [0, 1, r0], [0, 0, 1.0]])
            self._warp(to_float(frame[ya:yb]), ms, (r1 - r0, w), order, out=out[r0:r1])
        return out

    def pyr_down(self, a, out=None):
        h, w = a.shape[:2]
        size = ((w + 1) // 2, (h + 1) // 2)
        if out is not None:
            dst = out[..., 0] if out.ndim == 3 and out.shape[2] == 1 else out
            self.cv2.pyrDown(a, dst=dst, dstsize=size, borderType=self.cv2.BORDER_REFLECT)
            return out
        out = self.cv2.pyrDown(a, dstsize=size, borderType=self.cv2.BORDER_REFLECT)
        return _with_channels(out, a)

    def pyr_up(self, a, shape):
        cv2 = self.cv2
        # OpenCV's pyrUp reflects borders about the edge pixel (1 0 1); a one-pixel
        # symmetric margin (0 0 1) first gives the documented borders exactly
        padded = cv2.copyMakeBorder(a, 1, 1, 1, 1, cv2.BORDER_REFLECT)
        h, w = padded.shape[:2]
        up = _with_channels(cv2.pyrUp(padded, dstsize=(2 * w, 2 * h)), a)
        return up[2: 2 + shape[0], 2: 2 + shape[1]]

    def pyr_up_add(self, a, small, scale=1.0):
        cv2 = self.cv2
        sh, sw = small.shape[:2]
        ph, pw = sh + 2, sw + 2  # small with a one-pixel symmetric margin (see pyr_up)
        h, w = a.shape[:2]
        # Padded row p is small row p - 1, so output row k is row k + 2 of the
        # whole padded pyrUp; rows 2i and 2i + 1 of that read padded rows i - 1 .. i + 1.
        # In strips, so that no full-size upsampled copy exists; each strip pads
        # only its own rows (the margin rows only at the image's top and bottom).
        for r0 in range(0, h, _STRIP_ROWS):
            r1 = min(h, r0 + _STRIP_ROWS)
            pa = r0 // 2
            pb = min(ph, (r1 + 1) // 2 + 2)
            lo, hi = max(pa - 1, 0), min(pb - 1, sh)  # the small rows inside padded rows pa .. pb - 1
            chunk = cv2.copyMakeBorder(small[lo:hi], int(pa == 0), int(pb == ph), 1, 1, cv2.BORDER_REFLECT)
            up = _with_channels(cv2.pyrUp(_with_channels(chunk, small), dstsize=(2 * pw, 2 * (pb - pa))), small)
            q = r0 + 2 - 2 * pa
            part = up[q: q + r1 - r0, 2: 2 + w]
            if scale == 1.0:
                a[r0:r1] += part
            elif scale == -1.0:
                a[r0:r1] -= part
            else:
                a[r0:r1] += scale * part
        return a

    def gaussian_filter(self, a, sigma, truncate=3.0):
        k = 2 * int(truncate * sigma + 0.5) + 1
        out = self.cv2.GaussianBlur(a, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=self.cv2.BORDER_REPLICATE)
        return _with_channels(out, a)

    def box_filter(self, a, size):
        out = self.cv2.blur(a, (int(size), int(size)), borderType=self.cv2.BORDER_REPLICATE)
        return _with_channels(out, a)

    def max_filter(self, a, size):
        # a rectangle is dilated row and column apart; outside the image counts for nothing
        return self.cv2.dilate(a, self.cv2.getStructuringElement(self.cv2.MORPH_RECT, (int(size), int(size))))

    def resize(self, a, shape):
        out = self.cv2.resize(a, (int(shape[1]), int(shape[0])), interpolation=self.cv2.INTER_LINEAR)
        return _with_channels(out, a)

    def sample_bilinear(self, image, ys, xs):
        # remap wants 2D maps of less than 32767 rows: lay the points out in rows of 1024
        n = int(xs.size)
        cols = 1024
        rows = max(1, -(-n // cols))
        maps = []
        for v in (xs, ys):
            flat = np.zeros(rows * cols, np.float32)
            flat[:n] = v
            maps.append(flat.reshape(rows, cols))
        out = self.cv2.remap(image, maps[0], maps[1], self.cv2.INTER_LINEAR,
                             borderMode=self.cv2.BORDER_CONSTANT, borderValue=float("nan"))
        return out.ravel()[:n]

    def scale_channels(self, a, gain):
        c = 1 if a.ndim == 2 else a.shape[2]
        if c > 4 or not a.flags.c_contiguous or _read_as_scalar(a):
            return super().scale_channels(a, gain)
        # NumPy broadcasting a per-channel vector is several times slower than OpenCV's per-channel scalars
        self.cv2.multiply(a, _four_gains(gain, c), dst=a)
        return a

    def multiply_blocks(self, a, w, f=1, acc=None):
        target = a if acc is None else acc
        if not (a.flags.c_contiguous and target.flags.c_contiguous) or target.shape != a.shape:
            return super().multiply_blocks(a, w, f, acc)
        cv2 = self.cv2
        c = 1 if a.ndim == 2 else a.shape[2]
        h, width = a.shape[:2]
        # channels last, seen as one channel of width * c: value (y, x) of w covers
        # rows f*y .. f*y+f-1 and columns c*f*x .. c*f*x+c*f-1, an exact nearest-neighbour
        # enlargement by (f, c*f) (tested against repeat)
        flat, flat_target = a.reshape(h, width * c), target.reshape(h, width * c)
        w = np.ascontiguousarray(w, dtype=np.float32)
        rows = f * -(-_STRIP_ROWS // f)
        # by strips of rows: the enlarged weights never exist at full size and stay in cache
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            part = w[r0 // f: -(-r1 // f)]
            if f * c > 1:
                part = cv2.resize(part, (f * c * part.shape[1], f * part.shape[0]), interpolation=cv2.INTER_NEAREST)
            part = part[: r1 - r0, : width * c]
            if acc is None:
                cv2.multiply(flat[r0:r1], part, dst=flat[r0:r1])
            else:
                cv2.accumulateProduct(flat[r0:r1], part, flat_target[r0:r1])
        return target

    def copy_where(self, dst, src, mask):
        if not dst.flags.c_contiguous:  # OpenCV writes into whole rows only
            return super().copy_where(dst, src, mask)
        # NumPy's copyto with a broadcast mask is 5x slower than OpenCV's masked copy
        self.cv2.copyTo(src, mask.view(np.uint8), dst)

    def block_energy(self, band, f=1, weights=None):
        cv2 = self.cv2
        c = 1 if band.ndim == 2 else band.shape[2]
        if c > 4:
            return super().block_energy(band, f, weights)
        squares = np.array([[1.0 if weights is None else float(weights[k]) ** 2 for k in range(c)]])
        h, w = band.shape[:2]
        out = np.empty((-(-h // f), -(-w // f)), np.float32)
        rows = f * -(-_STRIP_ROWS // f)
        # by strips of rows: the squares never exist at full size
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            strip = band[r0:r1]
            sq = cv2.multiply(strip, strip)
            if c > 1 or squares[0, 0] != 1.0:
                sq = cv2.transform(sq, squares) if c > 1 else sq * np.float32(squares[0, 0])
            if f > 1:
                pr, pc = (-(r1 - r0)) % f, (-w) % f
                if pr or pc:
                    sq = cv2.copyMakeBorder(sq, 0, pr, 0, pc, cv2.BORDER_REPLICATE)
                # an exact f-fold reduction: INTER_AREA is the plain block mean
                sq = cv2.resize(sq, (sq.shape[1] // f, sq.shape[0] // f), interpolation=cv2.INTER_AREA)
            out[r0 // f: r0 // f + sq.shape[0]] = sq.reshape(sq.shape[0], -1)
        return out

    def _channel_sum(self, frame, weights):
        if frame.shape[2] > 4:  # cv2.transform takes up to four channels
            return super()._channel_sum(frame, weights)
        gray = self.cv2.transform(frame, np.array([weights], dtype=np.float64))
        return gray.astype(np.float32, copy=False)


def _four_gains(gain: Any, c: int) -> tuple:
    """``gain`` (a number or one per channel) as the four values of an OpenCV Scalar for ``c`` channels:
    a bare number would reach the first channel only."""
    return tuple(np.broadcast_to(np.asarray(gain, np.float64), (c,))) + (0.0,) * (4 - c)


def _read_as_scalar(a: np.ndarray) -> bool:
    """Whether OpenCV's Python bindings may take the image ``a`` for a Scalar.

    OpenCV 5.1 reads a one-channel column of at most four values, shape
    ``(n, 1)`` or ``(n, 1, 1)`` with ``n <= 4``, as a Scalar when the other
    operand is a number or a tuple: ``multiply(a, gains, dst=a)`` then leaves
    ``a`` unwritten (1 x 1) or multiplies it element by element with the
    gains (4 x 1). Such images take the NumPy path.
    """
    return a.shape[0] <= 4 and a.shape[1] == 1 and (a.ndim == 2 or a.shape[2] == 1)


@dataclass(frozen=True)
class NdimageBackend(Backend):
    """Kernels from ``xp`` and a ``scipy.ndimage``-compatible module (CuPy + cupyx on the GPU)."""

    ndi_module: Any = field(default=None, repr=False)

    @property
    def ndi(self) -> ModuleType:
        return self.ndi_module

    def _per_channel(self, fn: Callable[[Any], Any], a: Any, shape: tuple[int, int] | None = None) -> Any:
        if a.ndim == 2:
            return fn(a)
        xp = self.xp
        out = xp.empty(tuple(shape or a.shape[:2]) + a.shape[2:], dtype=a.dtype)
        for c in range(a.shape[2]):
            out[..., c] = fn(a[..., c])
        return out

    def warp_affine(self, image, m, out_shape, order=1):
        _check_order(order)
        order = 3 if order == 2 else order  # no cubic convolution here: the (sharper) cubic spline
        # ndimage works in (row, col) order: swap x and y
        rc = self.xp.asarray(np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]], [0, 0, 1.0]]))
        shape = (int(out_shape[0]), int(out_shape[1]))
        return self._per_channel(
            lambda ch: self.ndi_module.affine_transform(ch, rc, output_shape=shape, order=order, mode="nearest"),
            image, shape,
        )

    def sample_bilinear(self, image, ys, xs):
        coords = self.xp.stack([ys, xs])
        return self.ndi_module.map_coordinates(image, coords, order=1, mode="constant", cval=np.nan)

    def pyr_down(self, a, out=None):
        return _into(out, _reduce_axis(self.xp, _reduce_axis(self.xp, a, 0), 1))

    def pyr_up(self, a, shape):
        return _expand_axis(self.xp, _expand_axis(self.xp, a, 0, shape[0]), 1, shape[1])

    def gaussian_filter(self, a, sigma, truncate=3.0):
        s = (sigma, sigma) + (0,) * (a.ndim - 2)
        return self.ndi_module.gaussian_filter(a, s, mode="nearest", truncate=truncate)

    def box_filter(self, a, size):
        return self.ndi_module.uniform_filter(a, size=(size, size) + (1,) * (a.ndim - 2), mode="nearest")

    def max_filter(self, a, size):
        return self.ndi_module.maximum_filter(a, size=int(size), mode="nearest")

    def resize(self, a, shape):
        zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1]) + (1,) * (a.ndim - 2)
        out = self.ndi_module.zoom(a, zoom, order=1, mode="nearest", grid_mode=True)
        return out[: shape[0], : shape[1]]


# ---------------------------------------------- pyramid steps by slicing (any xp)
_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def _take(a, axis: int, start: int, stop: int | None, step: int = 1):
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop, step)
    return a[tuple(index)]


def _reduce_axis(xp, a, axis: int):
    """Binomial blur and decimation along one axis, without a padded copy.

    Output ``j`` reads input samples ``2j-2 .. 2j+2``; the interior is five
    strided slices accumulated in place, the few border outputs use
    symmetric (half-sample) reflection.
    """
    n = a.shape[axis]
    out_n = (n + 1) // 2
    shape = list(a.shape)
    shape[axis] = out_n
    out = xp.empty(shape, dtype=a.dtype)
    last = (n - 3) // 2  # last j whose five samples are all inside
    if last >= 1:
        # accumulate straight into the output: one temporary, not five
        index = [slice(None)] * a.ndim
        index[axis] = slice(1, last + 1)
        dst = out[tuple(index)]
        xp.add(_take(a, axis, 0, 2 * last - 1, 2), _take(a, axis, 4, 2 * last + 3, 2), out=dst)
        tmp = _take(a, axis, 1, 2 * last, 2) + _take(a, axis, 3, 2 * last + 2, 2)
        tmp *= 4.0
        dst += tmp
        xp.multiply(_take(a, axis, 2, 2 * last + 1, 2), 6.0, out=tmp)
        dst += tmp
        del tmp
        dst *= 1.0 / 16.0
        borders = [0] + list(range(last + 1, out_n))
    else:
        borders = list(range(out_n))
    for j in borders:
        rows = []
        for k in range(5):
            i = 2 * j + k - 2
            if i < 0:
                i = -i - 1
            if i > n - 1:
                i = 2 * n - 1 - i
            rows.append(min(max(i, 0), n - 1))
        index = [slice(None)] * a.ndim
        total = None
        for w, i in zip(_TAPS, rows, strict=True):
            index[axis] = i
            part = a[tuple(index)] * (w / 16.0)
            total = part if total is None else total + part
        index[axis] = j
        out[tuple(index)] = total
    return out


def _expand_axis(xp, a, axis: int, size: int):
    """Upsample by two along one axis (binomial interpolation), written in place."""
    n = a.shape[axis]
    widths = [(0, 0)] * a.ndim
    widths[axis] = (1, 1)
    p = xp.pad(a, widths, mode="symmetric")
    left = _take(p, axis, 0, n)
    mid = _take(p, axis, 1, n + 1)
    right = _take(p, axis, 2, n + 2)
    shape = list(a.shape)
    shape[axis] = 2 * n
    out = xp.empty(shape, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, None, 2)
    even = out[tuple(index)]
    index[axis] = slice(1, None, 2)
    odd = out[tuple(index)]
    if axis == 0:
        # whole rows: computing straight into the interleaved output is fastest
        xp.add(left, right, out=even)
        xp.multiply(mid, 6.0, out=odd)  # odd is scratch until its own turn below
        even += odd
        even *= 1.0 / 8.0
        xp.add(mid, right, out=odd)
        odd *= 0.5
    else:
        # interleaved columns: element-strided arithmetic is slow, use one contiguous scratch
        tmp = left + right
        tmp += mid * 6.0
        tmp *= 1.0 / 8.0
        even[...] = tmp
        xp.add(mid, right, out=tmp)
        tmp *= 0.5
        odd[...] = tmp
    return _take(out, axis, 0, size)


# ------------------------------------------------------------------ creation
def host_available_memory() -> int | None:
    """Bytes of host memory available to new work (/proc/meminfo on Linux, else psutil), or None.

    /proc first: the same figure as psutil's, without importing psutil (a
    few hundredths of a second of every command's start-up).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001  (not installed, or no permission)
        return None


def _cpu_backend(reason: str) -> Backend:
    import cv2

    return OpenCVBackend(xp=np, name="cpu", device_name="CPU", reason=reason, cv2=cv2)


def reference_backend() -> NdimageBackend:
    """NumPy with SciPy's ndimage: the GPU's kernels, run on the host (for tests)."""
    import scipy.ndimage

    return NdimageBackend(xp=np, name="cpu", device_name="CPU", reason="reference kernels",
                          ndi_module=scipy.ndimage)


def _no_nvidia_driver() -> bool:
    """True where no NVIDIA driver can be present: skips importing CuPy (half a second) for nothing."""
    if not sys.platform.startswith("linux"):
        return False
    # native driver, or WSL2's GPU paravirtualisation
    return not any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg"))


def gpu_status() -> tuple[bool, str]:
    """Tell whether a usable CUDA device exists, without failing.

    Returns ``(available, why)``; ``why`` is a one-line human explanation.
    """
    if os.environ.get("NAPARI_FOCUS_STACK_NO_GPU"):
        return False, "NAPARI_FOCUS_STACK_NO_GPU is set"
    missing = "cupy is not installed ({}); pip install 'napari-focus-stack[gpu]'"
    try:
        if importlib.util.find_spec("cupy") is None:
            return False, missing.format("ModuleNotFoundError")
    except (ImportError, ValueError) as exc:  # a broken or blocked entry in sys.modules
        return False, missing.format(type(exc).__name__)
    if _no_nvidia_driver():
        return False, "cupy is installed but no NVIDIA driver was found"
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (ImportError, or a broken CUDA install: anything)
        return False, missing.format(type(exc).__name__)
    try:
        if not cupy.is_available():
            return False, "cupy is installed but no usable CUDA device was found"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception as exc:  # noqa: BLE001  (a driver or device fault: report it, never fail)
        return False, f"CUDA device not usable: {exc}"
    return True, name


def _gpu_backend(reason: str) -> Backend:
    import cupy
    import cupyx.scipy.ndimage as cndi

    ok, name = gpu_status()
    return NdimageBackend(
        xp=cupy,
        name="gpu",
        device_name=name if ok else "CUDA",
        reason=reason,
        _to_numpy=cupy.asnumpy,
        _to_device=cupy.asarray,
        oom_errors=(cupy.cuda.memory.OutOfMemoryError, MemoryError),
        ndi_module=cndi,
    )


def get_backend(device: str | Backend = "auto") -> Backend:
    """Resolve ``"auto" | "cpu" | "gpu"`` to a :class:`Backend`.

    ``"auto"`` picks the GPU only when cupy imports and a CUDA device is
    usable; ``"gpu"`` raises :class:`BackendError` when it is not.
    """
    if isinstance(device, Backend):
        return device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return _cpu_backend("device='cpu' requested")
    ok, why = gpu_status()
    if device == "gpu":
        if not ok:
            raise BackendError(f"device='gpu' requested but {why}. Use device='cpu' or 'auto'.")
        return _gpu_backend(f"device='gpu' requested: {why}")
    if ok:
        return _gpu_backend(f"auto: CUDA device found ({why})")
    return _cpu_backend(f"auto: {why}")
