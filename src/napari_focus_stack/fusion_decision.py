"""Which frame each pyramid coefficient comes from: the streaming decision of the pyramid method.

Three parts, each bounded in memory (running sums, never one array per frame):

Soft, scale-consistent selection (:func:`level_log_weights`, :class:`WeightedLevels`)
    At every pyramid level, a frame's coefficients are weighted by its local
    band energy (a small Gaussian window) raised to ``SHARPNESS``, times the
    energy of the next coarser level raised to ``SHARPNESS * PARENT``. Small
    windows keep the decision on the right side of an occlusion edge (a wide
    window lets a sharp edge win the blurred background beside it: the halo);
    the coarser level keeps the decision consistent across scales, so a thin
    near structure that is sharp at several scales keeps its frame; soft
    weights average frames whose focus is alike instead of keeping one at
    random. Weights are kept in the log domain against a running maximum, so
    any intensity range works.
Noise averaging (:class:`NoiseAverage`)
    Where the frames do not differ by focus (flat or noise-dominated areas),
    the finest band is the plain mean of the frames, whose noise falls as
    1/sqrt(n), instead of the selection, which keeps (and, by favouring the
    largest energy, seeks out) one frame's noise. The switch is the local
    coherence of the frames, ``|mean of bands|^2 / mean of |band|^2``: about
    ``1/n`` for independent noise, much higher where a sharp structure shows
    in neighbouring frames too. It is computed at the end from running sums.
Occlusion order (:class:`OcclusionOrder`)
    ``prefer="near"`` or ``"far"``: near an occlusion edge the defocused
    foreground spills a veil and ghost edges over the background in the
    frames focused behind it. With a preference, a frame loses weight where a
    frame on the preferred side of it showed a stronger structure within a
    few pixels (half the focus-measure radius). Frame 0 is taken as focused
    nearest.

References
----------
P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image
code", IEEE Trans. Commun. 31(4), 1983 (pyramid, selection by activity).
T. Mertens, J. Kautz and F. Van Reeth, "Exposure fusion", Pacific Graphics
2007 (normalised per-pixel weights blended level by level).
"""
from __future__ import annotations

from typing import Any

from . import pyramid
from ._backend import Backend
from .focus import quantile, smooth_measure
from .options import PREFER

__all__ = [
    "PARENT",
    "SHARPNESS",
    "NoiseAverage",
    "OcclusionOrder",
    "WeightedLevels",
    "level_log_weights",
    "level_valid",
]


# Exponent of the soft selection: a frame with twice the band energy of
# another gets 2**SHARPNESS its weight. Larger is sharper but keeps more noise
# (measured: docs/benchmarks.md, quality section).
SHARPNESS = 6.0
# Weight of the next coarser level's energy, relative to the level's own.
PARENT = 0.5
# Gaussian sigma (px of each level) of the energy window, per px of the
# focus-map smoothing (4 px by default: sigma 1).
WINDOW_PER_SMOOTHING = 0.25
# Floor of the band energy, far below any image's (its log must stay finite).
_TINY = 1e-20
# Log-weight of an uncovered pixel: finite, so that no NaN arises, yet never chosen.
_NEVER = -1e30
# Largest log-weight kept against the reference (WeightedLevels): e^70 times
# hundreds of frames and coefficients of float data stays inside float32.
_HEADROOM = 70.0

# Noise averaging: the coherence of the frames' finest bands, in units of
# that of independent noise (1/n), below which their mean is taken (first
# value) and above which the selection is kept (second); likewise the peak
# of one frame's floor-relative energy over the frames' mean ...
NOISE_COHERENCE = (1.5, 2.5)
NOISE_DOMINANCE = (2.5, 4.0)
# ... and the ratio of the strongest to the weakest frame's floor-relative
# energy: a frame far sharper than another (S >> N) is not noise.
NOISE_CONTRAST = (4.0, 16.0)
# With fewer frames, noise (coherence 1/n >= 1/4) and a structure sharp in
# one frame only are too much alike, and averaging gains at most 6 dB.
NOISE_MIN_FRAMES = 5
# Percentile of a frame's local energies taken as its noise floor (flat areas).
NOISE_FLOOR_PERCENTILE = 10
# Window (radius, sigma; px of the half-resolution grid) of the coherence.
_COHERENCE_WINDOW = (1, 0.5)

# Occlusion order: neighbourhood radius (px of level 0, halved per level)
# per px of the focus-measure radius (8 px by default: 4 px), and how many of
# the finest levels it applies to.
PREFER_PER_RADIUS = 0.5
PREFER_LEVELS = 3


def level_valid(bk: Backend, valid: Any | None, levels: int) -> list:
    """Coverage masks of the bands' weights and of the base (``None``s when the frame covers everything).

    A coefficient is trusted only where its whole filter support is covered
    (:func:`~napari_focus_stack.pyramid.coverage_pyramid`). The finest
    band's mask is on its weights' grid, the next level's (its band also
    reads that level). Returns ``levels`` masks: one per band, then the base's.
    """
    if valid is None:
        return [None] * levels
    cover = pyramid.coverage_pyramid(bk.xp, valid, levels)
    return [cover[1]] + cover[1:]


def level_log_weights(bk: Backend, bands: list, masks: list, smoothing: float = 4.0,
                      channel_weights: Any | None = None, sharpness: float | None = None,
                      parent: float | None = None, energy0_half: Any | None = None,
                      keep_energies: bool = True) -> tuple[list, list | None]:
    """Log-weights of one frame's bands, finest first.

    The finest band's weights are computed on a grid twice as coarse (2x2
    block means of its energy, which is also the next level's grid): a
    quarter of the work and memory for the largest arrays, for 0.1 dB less
    in the band around depth steps (docs/benchmarks.md). Each stands for a
    2x2 block of coefficients (:class:`WeightedLevels`).

    Parameters
    ----------
    bands : list of arrays
        The band-pass levels of a Laplacian pyramid (not the base).
    masks : list of bool arrays or None
        Coverage per band (:func:`level_valid`), the first on the grid of the second band.
    smoothing : float
        The focus-map smoothing (px); the energy window of every level is a
        Gaussian of ``WINDOW_PER_SMOOTHING * smoothing`` px of that level.
    channel_weights : sequence of float, optional
        Each channel's say in the energy (see :meth:`Backend.block_energy`).
    sharpness, parent : float, optional
        Exponent of the band's own energy and, relative to it, of the next
        coarser band's energy (default: ``SHARPNESS``, ``PARENT``).
    energy0_half : array, optional
        ``bk.block_energy(bands[0], 2, channel_weights)`` when the
        caller has it already.
    keep_energies : bool
        Return the smoothed energies too; without them the log-weights are
        computed in their buffers (less memory per frame).

    Returns
    -------
    log_weights : list of float32 arrays, one per band
        ``_NEVER`` where the band is not covered; the first on the grid of
        the second band.
    energies : list of float32 arrays, or None
        The smoothed band energies (activities) on the same grids, for
        :class:`OcclusionOrder` (None unless ``keep_energies``).
    """
    xp = bk.xp
    sharpness = SHARPNESS if sharpness is None else sharpness
    parent = PARENT if parent is None else parent
    sigma = WINDOW_PER_SMOOTHING * smoothing
    if energy0_half is None:
        energy0_half = bk.block_energy(bands[0], 2, channel_weights)
    energies = [smooth_measure(bk, energy0_half, 0, sigma / 2)]
    energies += [smooth_measure(bk, bk.block_energy(b, 1, channel_weights), 0, sigma) for b in bands[1:]]
    if keep_energies:
        logs = [xp.log(e + _TINY) for e in energies]
    else:  # the smoothed energies are ours: their logs can take their place
        if energies[0] is energy0_half:  # no smoothing at all: that one is the caller's
            energies[0] = energy0_half.copy()
        logs = []
        for e in energies:
            e += _TINY
            logs.append(xp.log(e, out=e))
    # finest first, each level's log-weights written over its logs (they are its
    # parent's input only, which comes before it)
    for level, lg in enumerate(logs):
        if parent and level + 1 < len(logs):
            coarse = logs[level + 1] if level == 0 else pyramid.expand(bk, logs[level + 1], lg.shape)
            lg *= xp.float32(1.0 / parent)
            lg += coarse
            lg *= xp.float32(sharpness * parent)  # = sharpness * log + sharpness * parent * coarse log
            del coarse
        else:
            lg *= xp.float32(sharpness)
        if masks[level] is not None:
            xp.copyto(lg, _NEVER, where=~masks[level])
    return [lg.astype(xp.float32, copy=False) for lg in logs], energies if keep_energies else None


def _per_pixel(a: Any, like: Any) -> Any:
    """A 2D map broadcast over the colour channels of ``like``."""
    return a[..., None] if like.ndim == 3 else a


def _factor(grid: Any, band: Any) -> int:
    """1 when ``grid`` is on ``band``'s own grid, 2 when on the twice coarser one."""
    return 1 if grid.shape == band.shape[:2] else 2


class WeightedLevels:
    """Running weighted mean of band coefficients, weights given as logs.

    The state holds ``sum(w * band) / exp(r)`` and ``sum(w) / exp(r)`` per
    level, with a per-pixel reference log-weight ``r`` (the first frame's),
    so weights spanning any range stay representable in float32. ``r`` is
    raised, and what is accumulated rescaled, only where a frame's
    log-weight exceeds it by more than ``_HEADROOM``: most frames cost no
    rescaling pass. Log-weights on a grid twice as coarse as their band stay
    on it; each of their values stands for a 2x2 block of coefficients.
    """

    def __init__(self, bk: Backend):
        self.bk = bk
        self.xp = bk.xp
        self.acc: list | None = None
        self.wsum: list = []
        self.ref: list = []

    def add(self, bands: list, log_weights: list) -> None:
        """Fold one frame in; ``bands`` may be overwritten, ``log_weights`` are kept by the first frame."""
        bk, xp = self.bk, self.xp
        first = self.acc is None
        if first:
            self.acc, self.wsum, self.ref = [], [], []
        for k, (band, lw) in enumerate(zip(bands, log_weights, strict=True)):
            if first:
                w = (lw > _NEVER / 2).astype(xp.float32)  # weight 1 against its own log-weight
                self.ref.append(lw)
                self.wsum.append(w)
                self.acc.append(bk.multiply_blocks(band, w, _factor(w, band)))
                continue
            ref = self.ref[k]
            # pixels no frame covered so far hold nothing yet: this frame sets their reference
            xp.copyto(ref, lw, where=ref < _NEVER / 2)
            d = lw - ref  # log of the weight against the reference
            over = d > _HEADROOM
            if bool(over.any()):  # raise the reference there to this frame's log-weight
                old = xp.exp(xp.where(over, ref - lw, 0.0))
                xp.copyto(ref, lw, where=over)
                bk.multiply_blocks(self.acc[k], old, _factor(old, band))
                self.wsum[k] *= old
                d[over] = 0.0
            w = xp.exp(d, out=d)
            self.wsum[k] += w
            bk.multiply_blocks(band, w, _factor(w, band), acc=self.acc[k])

    def shift(self, level: int, log_factor: Any) -> None:
        """Multiply the weights accumulated so far at ``level`` by ``exp(log_factor)`` (<= 1).

        ``log_factor`` is on the grid of that level's log-weights.
        """
        self.ref[level] = self.ref[level] + log_factor

    def bands(self) -> list:
        """The weighted mean of every level (computed in place: call once, at the end)."""
        return [
            self.bk.multiply_blocks(a, 1.0 / self.xp.maximum(w, 1e-30), _factor(w, a))
            for a, w in zip(self.acc, self.wsum, strict=True)
        ]


class NoiseAverage:
    """Plain mean of the finest band, and the statistics that say where to use it.

    The mean replaces the selection where the frames are incoherent (their
    bands do not add up: noise) unless one frame's energy clearly stands
    out of the others' mean or is many times the weakest frame's (a
    structure only one frame resolves, as in a stack with wide focus steps,
    which a coherence test takes for noise). Energies are compared after dividing each frame's
    by its noise floor (a low percentile of its local energies), since frames
    differ in noise level: resampling during alignment smooths every frame
    but the reference.

    Parameters
    ----------
    bk : Backend
    shape : (int, int)
        Shape of the finest band.
    channel_weights : sequence of float, optional
        Each channel's say in the energies (see :meth:`Backend.block_energy`).
    """

    def __init__(self, bk: Backend, shape: tuple[int, int], channel_weights: Any | None = None):
        self.bk = bk
        self.shape = tuple(shape)
        self.channel_weights = channel_weights
        self.sum = None  # sum of bands
        self.energy = None  # sum of band energies, half resolution
        self.relative_sum = None  # sum, maximum and minimum of the floor-relative smoothed energies
        self.relative_peak = None
        self.relative_low = None
        self.count = None  # frames per pixel, only once a frame covers part of the image
        self.n = 0

    @staticmethod
    def frame_statistics(bk: Backend, energy_half: Any, mask: Any | None) -> dict:
        """Per-frame part (thread-safe), from the finest band's energy in 2x2 block means.

        ``mask`` is the coverage on that grid (:func:`level_valid`).
        """
        xp = bk.xp
        half = energy_half if mask is None else energy_half * mask
        local = smooth_measure(bk, half, *_COHERENCE_WINDOW)
        # the noise floor, from every other sample of each axis: plenty for a percentile
        sample = local[::2, ::2] if mask is None else local[::2, ::2][mask[::2, ::2]]
        typical = quantile(xp, sample.ravel(), NOISE_FLOOR_PERCENTILE) if sample.size else 0.0
        local /= typical + _TINY
        return {"energy_half": half, "relative": local}

    def add(self, band: Any, stats: dict, mask: Any | None) -> None:
        """Add one frame's finest band and its :meth:`frame_statistics`.

        ``mask`` is the coverage on the 2x coarser grid: the band counts only
        where it is True. ``band`` is not changed.
        """
        bk, xp = self.bk, self.bk.xp
        if mask is not None:
            if self.count is None:
                self.count = xp.full(mask.shape, self.n, xp.uint16)  # frames per 2x2 block
            self.count += mask
        elif self.count is not None:
            self.count += 1
        weight = None if mask is None else mask.astype(xp.float32)
        if self.sum is None:
            self.sum = band.copy() if weight is None else bk.multiply_blocks(band.copy(), weight, 2)
            self.energy = stats["energy_half"].copy()
            self.relative_sum = stats["relative"].copy()
            self.relative_peak = stats["relative"].copy()
            self.relative_low = stats["relative"].copy()
        else:
            xp.minimum(self.relative_low, stats["relative"], out=self.relative_low)
            if weight is None:
                self.sum += band
            else:
                bk.multiply_blocks(band, weight, 2, acc=self.sum)
            self.energy += stats["energy_half"]
            self.relative_sum += stats["relative"]
            xp.maximum(self.relative_peak, stats["relative"], out=self.relative_peak)
        self.n += 1

    def blend(self, selected: Any) -> Any:
        """``selected`` where the frames are coherent or one dominates, their mean elsewhere.

        Call once, at the end: ``selected`` is overwritten and the sums are released.
        """
        xp = self.bk.xp
        if self.sum is None:
            return selected
        mean = self.sum  # the sums are not needed after this: divided in place
        if self.count is None:
            mean *= 1.0 / self.n
            n_half = xp.full(self.energy.shape, float(self.n), xp.float32)
        else:
            n_half = xp.maximum(self.count, 1).astype(xp.float32)
            self.bk.multiply_blocks(mean, 1.0 / n_half, 2)
        self.sum = None
        mean_energy = smooth_measure(self.bk, self.energy / n_half, *_COHERENCE_WINDOW)
        coherent_energy = smooth_measure(
            self.bk, self.bk.block_energy(mean, 2, self.channel_weights), *_COHERENCE_WINDOW
        )
        # coherence in units of that of pure noise (1/n)
        coherence = coherent_energy / (mean_energy + _TINY) * n_half
        keep = xp.clip((coherence - NOISE_COHERENCE[0]) / (NOISE_COHERENCE[1] - NOISE_COHERENCE[0]), 0.0, 1.0)
        dominance = self.relative_peak / (self.relative_sum / n_half + _TINY)
        lo, hi = NOISE_DOMINANCE
        keep = xp.maximum(keep, xp.clip((dominance - lo) / (hi - lo), 0.0, 1.0))
        contrast = self.relative_peak / (self.relative_low + _TINY)
        lo, hi = NOISE_CONTRAST
        keep = xp.maximum(keep, xp.clip((contrast - lo) / (hi - lo), 0.0, 1.0))
        keep = xp.where(n_half >= NOISE_MIN_FRAMES, keep, 1.0).astype(xp.float32)
        keep = pyramid.expand(self.bk, keep, self.shape)
        selected -= mean  # selected is ours (WeightedLevels.bands): blended in place
        selected *= _per_pixel(keep, selected)
        selected += mean
        return selected


class OcclusionOrder:
    """Favour the near (or far) frames next to occlusion edges.

    Frames must be merged in increasing index order; frame 0 is taken as
    focused nearest. At every pixel where the frames before frame ``k``
    (nearer) reached a larger band energy than frame ``k``, ``prefer="near"``
    takes the log of that ratio, spreads it over a neighbourhood of half the
    focus radius (the blur of a near structure spills about that far over
    what lies behind it), and lowers frame ``k``'s log-weight by it times
    ``SHARPNESS``. ``prefer="far"`` is the mirror image: where frame ``k``
    beats the frames before it, their accumulated weights are lowered the
    same way. The finest ``PREFER_LEVELS`` levels take part.
    """

    def __init__(self, bk: Backend, prefer: str = "auto", radius: float = 8.0, sharpness: float | None = None):
        if prefer not in PREFER:
            raise ValueError(f"prefer must be one of {PREFER}, got {prefer!r}")
        self.bk = bk
        self.prefer = prefer
        self.radius = PREFER_PER_RADIUS * float(radius)
        self.sharpness = float(SHARPNESS if sharpness is None else sharpness)
        self.before: list | None = None  # largest energy of the frames so far, per level

    @property
    def active(self) -> bool:
        return self.prefer != "auto"

    @staticmethod
    def frame_part(energies: list, covered: list) -> list:
        """What :meth:`apply` needs of one frame: its finest energies, zero where it does not cover.

        ``covered[k]`` is a bool mask, None (all covered) or the log-weights
        of :func:`level_log_weights` (uncovered where ``_NEVER``).
        """
        out = []
        for e, c in zip(energies[:PREFER_LEVELS], covered[:PREFER_LEVELS], strict=True):
            if c is not None and c.dtype != bool:
                c = c > _NEVER / 2
            out.append(e if c is None else e * c)
        return out

    def apply(self, shift, log_weights: list, energies: list, grid_levels: tuple) -> None:
        """Adjust this frame's log-weights (``near``) or the state (``far``), then remember its energies.

        ``energies`` come from :meth:`frame_part`, ``energies[k]`` on the grid
        of pyramid level ``grid_levels[k]`` and matching ``log_weights[k]``.
        ``shift(k, log_factor)`` multiplies the weights accumulated so far for
        ``log_weights[k]`` by ``exp(log_factor)`` (e.g. :meth:`WeightedLevels.shift`).
        """
        xp = self.bk.xp
        if self.before is None:
            self.before = [e.copy() for e in energies]
            return
        for k, (mine, before) in enumerate(zip(energies, self.before, strict=True)):
            gain = xp.log(mine + _TINY) - xp.log(before + _TINY)  # > 0 where this frame beats the earlier ones
            size = 2 * max(1, round(self.radius / 2 ** grid_levels[k])) + 1
            if self.prefer == "near":
                lost = xp.where(mine > 0, xp.maximum(-gain, 0.0), 0.0)  # not where this frame is uncovered
                log_weights[k] -= self.sharpness * self.bk.max_filter(lost, size)
            else:
                won = self.bk.max_filter(xp.maximum(gain, 0.0), size)
                shift(k, -self.sharpness * won)
            xp.maximum(before, mine, out=before)
