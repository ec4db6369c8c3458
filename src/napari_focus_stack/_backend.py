"""Compute backends: one place where NumPy and CuPy differ.

Every algorithm takes a :class:`Backend` and uses ``bk.xp`` (array module),
``bk.ndi`` (scipy.ndimage or cupyx.scipy.ndimage) and ``bk.ski``
(skimage or cucim.skimage). CuPy is imported only when the GPU is chosen.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

import numpy as np

from .errors import BackendError

__all__ = ["Backend", "get_backend", "gpu_status", "DEVICES"]

DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    """The array module triple an algorithm runs on."""

    xp: ModuleType
    ndi: ModuleType
    ski: ModuleType | None
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

    def warp_affine(self, image: Any, m: np.ndarray, out_shape: tuple[int, int], order: int = 1) -> Any:
        """Sample a 2D ``image`` at ``m @ (x, y, 1)`` for every output pixel, edges replicated.

        On the CPU scikit-image's ``warp`` is used: about twice as fast as
        ``scipy.ndimage.affine_transform``. On the GPU ``cupyx``'s
        ``affine_transform`` is one elementwise kernel.
        """
        if self.ski is not None and not self.is_gpu:
            return self.ski.transform.warp(
                image, self.xp.asarray(m), output_shape=tuple(out_shape), order=order, mode="edge",
                preserve_range=True,
            ).astype(image.dtype, copy=False)
        # ndimage works in (row, col) order: swap x and y
        rc = np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]], [0, 0, 1.0]])
        return self.ndi.affine_transform(
            image, self.xp.asarray(rc), output_shape=tuple(out_shape), order=order, mode="nearest"
        )


def host_available_memory() -> int | None:
    """Bytes of host memory available to new work (psutil, else /proc/meminfo), or None."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no permission
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_backend(reason: str) -> Backend:
    import scipy.ndimage as ndi
    import skimage
    import skimage.transform  # noqa: F401  (warp_affine)

    return Backend(xp=np, ndi=ndi, ski=skimage, name="cpu", device_name="CPU", reason=reason)


def gpu_status() -> tuple[bool, str]:
    """Tell whether a usable CUDA device exists, without failing.

    Returns ``(available, why)``; ``why`` is a one-line human explanation.
    """
    if os.environ.get("NAPARI_FOCUS_STACK_NO_GPU"):
        return False, "NAPARI_FOCUS_STACK_NO_GPU is set"
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, f"cupy is not installed ({type(exc).__name__}); pip install 'napari-focus-stack[gpu]'"
    try:
        if not cupy.is_available():
            return False, "cupy is installed but no usable CUDA device was found"
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception as exc:
        return False, f"CUDA device not usable: {exc}"
    return True, name


def _gpu_backend(reason: str) -> Backend:
    import cupy
    import cupyx.scipy.ndimage as cndi

    try:
        import cucim.skimage as cski
    except Exception:  # cuCIM is optional: only a few helpers need it
        cski = None
    ok, name = gpu_status()
    return Backend(
        xp=cupy,
        ndi=cndi,
        ski=cski,
        name="gpu",
        device_name=name if ok else "CUDA",
        reason=reason + ("" if cski is not None else " (cuCIM missing: CuPy-only path)"),
        _to_numpy=cupy.asnumpy,
        _to_device=cupy.asarray,
        oom_errors=(cupy.cuda.memory.OutOfMemoryError, MemoryError),
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
