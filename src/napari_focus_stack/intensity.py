"""Float data at any intensity scale: mapped onto about 0..1 for the engine, mapped back on output.

Integer frames have a known range (0..255, 0..65535) and are divided by it.
Float frames may hold anything: reflectance in 0..1, photon counts in the
thousands, a camera's raw values times 1e15, calibrated values around -200.
The engine's measures (band energies raised to a power, noise floors,
convergence thresholds, exposure ratios) expect about 0..1, so such frames
would fuse wrongly, overflow to inf or fail to align. :func:`normalised_source`
maps a stack's float frames with one affine map ``(x - offset) / scale``,
taken from a robust range of the data, and :meth:`Intensity.restore` maps
the fused image back: the result does not depend on the scale or offset of
float data. NaN and inf stay what they are (missing data).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .io import FrameSource

__all__ = ["Intensity", "float_range", "normalised_source"]

#: Pixels sampled for the range: every k-th, about this many.
_SAMPLES = 1 << 20
#: The range is that of the data between these percentiles, so that a few hot or dead pixels do not set it.
_PERCENTILES = (0.1, 99.9)


@dataclass(frozen=True)
class Intensity:
    """The affine map ``y = (x - offset) / scale`` of float data onto about 0..1, and back.

    Examples
    --------
    >>> m = Intensity(offset=-200.0, scale=4.0)
    >>> m.normalise(np.array([-200.0, -196.0], np.float32)).tolist(), m.restore(np.array([0.5], np.float32)).tolist()
    ([0.0, 1.0], [-198.0])
    """

    offset: float = 0.0
    scale: float = 1.0

    def normalise(self, frame: np.ndarray) -> np.ndarray:
        """`frame` mapped onto about 0..1, as float32 (in place when it is a float32 array)."""
        a = frame if frame.dtype == np.float32 else frame.astype(np.float32)
        gain, shift = np.float32(1.0 / self.scale), np.float32(self.offset / self.scale)
        if np.isfinite(gain) and np.isfinite(shift):
            # x / scale first: (x - offset) could overflow float32 where x / scale cannot
            np.multiply(a, gain, out=a)
            np.subtract(a, shift, out=a)
            return a
        return ((frame.astype(np.float64) - self.offset) / self.scale).astype(np.float32)

    def restore(self, image: np.ndarray) -> np.ndarray:
        """A normalised (float32) image mapped back to the data's intensities, in place."""
        with np.errstate(over="ignore"):  # float32 data cannot hold more than its own range, NaN stays NaN
            np.multiply(image, np.float32(self.scale), out=image)
            np.add(image, np.float32(self.offset), out=image)
        return image


def float_range(frame: np.ndarray) -> tuple[float, float] | None:
    """A robust (low, high) of a frame's finite values: the 0.1 and 99.9 percentiles, else the extremes;
    None when it holds fewer than two distinct finite values.

    >>> a = np.linspace(0, 1e15, 10_000, dtype=np.float32); a[7] = np.inf; a[9] = 1e30
    >>> lo, hi = float_range(a); round(lo / 1e15, 3), round(hi / 1e15, 3)
    (0.001, 0.999)
    """
    a = np.asarray(frame).ravel()
    step = max(1, a.size // _SAMPLES)
    sample = a[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    lo, hi = (float(v) for v in np.percentile(sample, _PERCENTILES))
    if not hi > lo:
        finite = a[np.isfinite(a)]
        lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else None


def normalised_source(source: FrameSource, ref: int) -> tuple[FrameSource, Intensity | None]:
    """A float stack's frames mapped onto about 0..1 (see :mod:`.intensity`), and the map; integer stacks as they are.

    The range is that of the reference frame, else (a blank reference) of
    the first frame, counted outward from it, that has one.
    """
    if np.dtype(source.dtype).kind != "f":
        return source, None
    n = len(source)
    order = [ref] + [k for d in range(1, n) for k in (ref - d, ref + d) if 0 <= k < n]
    found = None
    for k in order:
        found = float_range(source.read(k))
        if found is not None:
            break
    lo, hi = found or (0.0, 1.0)
    intensity = Intensity(lo, hi - lo)
    loaders = [lambda k=k: intensity.normalise(source.read(k)) for k in range(n)]
    return FrameSource(loaders, [source.meta(k) for k in range(n)], source.names), intensity
