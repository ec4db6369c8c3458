"""Streaming fusion of aligned frames.

A fusion object holds only running state (weighted sums of coefficients,
best focus, frame index), so memory does not grow with the number of frames. Each frame
goes through two steps:

* ``prepare(frame, valid)``: the heavy, per-frame work (pyramids, focus
  measures). It touches no shared state, so several frames can be prepared
  in parallel threads.
* ``merge(index, prepared)``: folds one prepared frame into the state; call
  it in increasing frame order.

Methods
-------
pyramid
    Laplacian pyramid; at each level every coefficient is a weighted mean of
    the frames' coefficients, weighted by their local band energy (small
    windows, consistent with the next coarser level), one decision for all
    colour channels; where the frames do not differ by focus, the finest
    band is their plain mean (noise averaging); the coarsest level is
    averaged. The decision is :mod:`.fusion_decision`.
depthmap
    Focus measure per frame, soft selection: every pixel is a weighted mean
    of the frames with weights ``measure ** SOFTNESS``, which keeps seams soft
    and interpolates between neighbouring frames.

Both keep a depth map and its confidence from the focus measure (box of
``radius``, Gaussian of ``smoothing``) and accept an occlusion order
(``prefer``).
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import pyramid
from ._backend import Backend, BufferPool, block_all
from .focus import DepthTracker, focus_measure, local_energy, measure_reach
from .fusion_decision import (
    NoiseAverage,
    OcclusionOrder,
    WeightedLevels,
    level_log_weights,
    level_valid,
)

__all__ = ["MAX_LEVELS", "METHODS", "FusionResult", "PyramidFusion", "DepthMapFusion", "make_fusion"]

# Deepest pyramid: the coarsest band is 1/32 of the image. Deeper levels only
# average very low frequencies, and a bounded depth keeps tiles seam-free.
MAX_LEVELS = 6

# Exponent of the soft selection in the depth-map method: a frame with twice
# the focus energy of another gets 2**SOFTNESS times its weight.
SOFTNESS = 4.0


@dataclass
class FusionResult:
    image: Any  # float32 (H, W[, C]) on the backend
    depth: Any  # float32 (H, W) fractional frame index
    confidence: Any  # float32 (H, W), 0..1


class _Fusion:
    def __init__(
        self, bk: Backend, shape: tuple[int, int], radius: float, smoothing: float, weights: Any | None = None,
        parallel: bool = False,
    ):
        self.bk = bk
        # a second thread for the independent halves of prepare and merge: their
        # array arithmetic runs on one core each (OpenCV's kernels use all cores)
        self._side = ThreadPoolExecutor(1) if parallel else None
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self.shape = tuple(shape)
        self.radius = float(radius)
        self.smoothing = float(smoothing)
        self.half_shape = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
        # the measure's reach, on its half-resolution grid
        self.tracker = DepthTracker(bk, self.half_shape, window=measure_reach(self.radius, self.smoothing) / 2)
        # frame-sized buffers of merged frames, for the next frames' warps and pyramids
        self.buffers = BufferPool(bk.xp)

    def _half_measures(self, band: Any, energy: Any, valid: Any | None) -> tuple[Any, Any, Any]:
        """The depth map's focus measure of ``band``, its coverage and the small-window energy (for the
        confidence), all on the half-resolution grid of ``energy`` (``band``'s 2x2 block energies)."""
        measure, half_valid = focus_measure(
            self.bk, band, self.radius / 2, self.smoothing / 2, downsample=1, energy=energy,
            valid=None if valid is None else block_all(self.bk.xp, valid, 2),
        )
        return measure, half_valid, local_energy(self.bk, energy)

    def _together(self, here: Callable[[], None], beside: Callable[[], None]) -> None:
        """Run two calls that touch disjoint state: at once with a side thread, else one after the other."""
        if self._side is None:
            here()
            beside()
            return
        fut = self._side.submit(beside)
        try:
            here()
        finally:
            fut.result()  # re-raises what went wrong there

    def close(self) -> None:
        """Stop the side thread (the result is computed without it)."""
        if self._side is not None:
            self._side.shutdown()
            self._side = None

    def _maps(self, kept: Any | None = None) -> tuple[Any, Any]:
        depth, confidence = self.tracker.result(kept)
        xp = self.bk.xp
        return (
            _upsample_smooth(self.bk, depth, self.shape),
            xp.clip(_upsample_smooth(self.bk, confidence, self.shape), 0, 1),
        )


def _upsample_smooth(bk: Backend, a: Any, shape: tuple[int, int]) -> Any:
    """Bilinear upsampling of a half-resolution block grid to ``shape``."""
    return bk.resize(a, shape)


class PyramidFusion(_Fusion):
    """Laplacian-pyramid fusion with soft, halo-aware, noise-averaging decisions (see module docstring)."""

    def __init__(
        self,
        bk: Backend,
        shape: tuple[int, int],
        radius: float,
        smoothing: float,
        weights: Any | None = None,
        min_size: int = 16,
        prefer: str = "auto",
        noise_average: bool = True,
        parallel: bool = False,
    ):
        super().__init__(bk, shape, radius, smoothing, weights, parallel)
        # one band and a base is the least the method needs: tiny frames get just that
        self.levels = max(2, pyramid.n_levels(shape, min_size=min_size, max_levels=MAX_LEVELS))
        self.weighted = WeightedLevels(bk)
        self.noise = NoiseAverage(bk, self.shape, self.weights) if noise_average else None
        self.order = OcclusionOrder(bk, prefer, radius)
        # pyramid level whose grid each band's weights are on: the finest band's are 2x coarser
        self._order_grids = (1, *range(1, self.levels - 1))
        self.base_sum = None
        self.base_count = None

    def prepare(self, frame: Any, valid: Any | None = None) -> dict:
        """Pyramid and decision maps of one frame; ``frame`` is consumed (its buffer reused)."""
        bk = self.bk
        lap = pyramid.laplacian_pyramid(bk, frame, self.levels, overwrite=True, pool=self.buffers)
        energy_half = bk.block_energy(lap[0], 2, self.weights)
        masks = level_valid(bk, valid, self.levels)
        prep = {"lap": lap, "mask0": masks[0], "base_valid": masks[-1]}

        def measures() -> None:  # the depth map's measure, from the same 2x2 block means
            prep["measure"], prep["half_valid"], prep["local"] = self._half_measures(lap[0], energy_half, valid)
            if self.noise is not None:
                prep["noise"] = NoiseAverage.frame_statistics(bk, energy_half, masks[0])

        def weights() -> None:
            prep["log_weights"], energies = level_log_weights(
                bk, lap[:-1], masks[:-1], self.smoothing, channel_weights=self.weights, energy0_half=energy_half,
                keep_energies=self.order.active,
            )
            if self.order.active:
                prep["order"] = OcclusionOrder.frame_part(energies, prep["log_weights"])

        self._together(weights, measures)
        return prep

    def merge(self, index: int, prep: dict) -> None:
        xp = self.bk.xp
        lap = prep["lap"]
        if self.base_sum is None:
            self.base_sum = xp.zeros_like(lap[-1])
            self.base_count = xp.zeros(lap[-1].shape[:2], dtype=xp.float32)
        first = self.weighted.acc is None

        def depth_and_noise() -> None:
            self.tracker.update(index, prep["measure"], prep["half_valid"], prep["local"])
            if self.noise is not None:
                self.noise.add(lap[0], prep["noise"], prep["mask0"])

        def weighted() -> None:
            if self.order.active:
                self.order.apply(self.weighted.shift, prep["log_weights"], prep["order"], self._order_grids)
            self.weighted.add(lap[:-1], prep["log_weights"])
            base_valid = prep["base_valid"]
            weight = xp.ones(lap[-1].shape[:2], xp.float32) if base_valid is None else base_valid.astype(xp.float32)
            self.base_count += weight
            self.base_sum += lap[-1] * (weight[..., None] if lap[-1].ndim == 3 else weight)

        if first:  # the first frame's bands become the running sums in place: the noise sum copies them first
            depth_and_noise()
            weighted()
        else:  # disjoint state, and the bands are only read
            self._together(weighted, depth_and_noise)
        # the first frame's bands became the running sums; the others' buffers serve the next frames
        self.buffers.give_back(*(lap[-1:] if first else lap))

    def result(self) -> FusionResult:
        xp = self.bk.xp
        self.close()
        self.buffers.clear()
        count = xp.maximum(self.base_count, 1e-6)
        base = self.base_sum / (count[..., None] if self.base_sum.ndim == 3 else count)
        bands = self.weighted.bands()
        if self.noise is not None:
            bands[0] = self.noise.blend(bands[0])
        # the detail the fusion kept, measured as the frames' was: where it averaged noise, no depth was seen
        kept = local_energy(self.bk, self.bk.block_energy(bands[0], 2, self.weights))
        image = pyramid.collapse(self.bk, bands + [base], overwrite=True)  # the bands are ours
        depth, confidence = self._maps(kept)
        return FusionResult(image, depth, confidence)


class DepthMapFusion(_Fusion):
    """Focus-measure (depth map) fusion with soft, interpolating seams."""

    def __init__(
        self,
        bk: Backend,
        shape: tuple[int, int],
        radius: float,
        smoothing: float,
        weights: Any | None = None,
        prefer: str = "auto",
        parallel: bool = False,
    ):
        super().__init__(bk, shape, radius, smoothing, weights, parallel)
        self.acc = None
        self.weight = None
        self.log_max = None
        self.order = OcclusionOrder(bk, prefer, radius, SOFTNESS)

    def _shift(self, _level: int, log_factor: Any) -> None:
        self.log_max = self.log_max + log_factor

    def prepare(self, frame: Any, valid: Any | None = None) -> dict:
        bk = self.bk
        # weighted channels are measured one by one: their weighted mean could cancel
        gray = bk.to_gray(frame) if self.weights is None else frame
        band = gray - pyramid.expand(bk, pyramid.reduce(bk, gray), gray.shape)
        energy = bk.block_energy(band, 2, self.weights)
        measure, half_valid, local = self._half_measures(band, energy, valid)
        prep = {"frame": frame, "measure": measure, "half_valid": half_valid, "local": local}
        if self.order.active:
            prep["order"] = OcclusionOrder.frame_part([measure], [half_valid])
        return prep

    def merge(self, index: int, prep: dict) -> None:
        xp = self.bk.xp
        measure, valid = prep["measure"], prep["half_valid"]
        self.tracker.update(index, measure, valid, prep["local"])
        logw = SOFTNESS * xp.log(measure + 1e-12)
        if self.order.active:
            # logw adjusted in place; the measure is on the grid of pyramid level 1
            self.order.apply(self._shift, [logw], prep["order"], (1,))
        if valid is not None:
            logw = xp.where(valid, logw, -xp.inf)
        frame = prep["frame"]  # ours: scaled in place
        bk = self.bk
        if self.acc is None:
            self.log_max = logw
            w = xp.where(xp.isfinite(logw), 1.0, 0.0).astype(xp.float32)
            self.weight = w
            self.acc = bk.multiply_blocks(frame, w, 2)
            return
        new_max = xp.maximum(self.log_max, logw)
        finite = xp.isfinite(new_max)
        safe_max = xp.where(finite, new_max, 0)  # -inf - -inf would be NaN
        old_scale = xp.exp(xp.maximum(self.log_max, -1e30) - safe_max).astype(xp.float32)
        w = xp.exp(xp.maximum(logw, -1e30) - safe_max).astype(xp.float32)
        old_scale = xp.where(finite & xp.isfinite(self.log_max), old_scale, 0)
        w = xp.where(xp.isfinite(logw), w, 0)
        bk.multiply_blocks(self.acc, old_scale, 2)
        bk.multiply_blocks(frame, w, 2, acc=self.acc)
        self.buffers.give_back(frame)
        self.weight = self.weight * old_scale + w
        self.log_max = new_max

    def result(self) -> FusionResult:
        xp = self.bk.xp
        self.close()
        self.buffers.clear()
        image = self.bk.multiply_blocks(self.acc, 1.0 / xp.maximum(self.weight, 1e-30), 2)
        depth, confidence = self._maps()
        return FusionResult(image, depth, confidence)


METHODS = {"pyramid": PyramidFusion, "depthmap": DepthMapFusion}


def make_fusion(
    method: str,
    bk: Backend,
    shape: tuple[int, int],
    radius: float,
    smoothing: float,
    weights: Any | None = None,
    prefer: str = "auto",
    parallel: bool = False,
) -> _Fusion:
    """Create the streaming fusion state for ``method`` ("pyramid" or "depthmap").

    ``weights`` (one per channel) set each channel's say in the one focus
    decision all channels share (default: colour channels count alike; see
    :mod:`napari_focus_stack.channels`). ``prefer`` ("auto", "near" or
    "far") is the occlusion order, see
    :class:`~napari_focus_stack.fusion_decision.OcclusionOrder`. With
    ``parallel``, independent parts of each frame's work run on a second
    thread (for CPUs: on a GPU the kernels are asynchronous already).
    Call ``result()`` (or ``close()``) to stop that thread.
    """
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}") from None
    return cls(bk, shape, radius, smoothing, weights, prefer=prefer, parallel=parallel)
