"""Memory checks: fuse in tiles when memory is short, refuse a stack up front when nothing fits.

The job layer asks :func:`fit_memory` for every job, whatever its front
end (the command line, each stack of a batch, the napari widgets) and its
kind of data (photos or microscope z-stacks), so that ``--max-memory`` and
the free memory are one rule.
"""
from __future__ import annotations

from collections.abc import Sequence

from .._backend import host_available_memory
from ..errors import StackError
from ..options import EngineOptions
from ..pipeline import StackSettings, estimate_memory

__all__ = ["TILE_SIZES", "available_memory", "check_memory", "estimate_peak_memory", "fit_memory", "memory_budget"]

#: Tile sizes tried, largest first, when a stack does not fit in memory whole.
TILE_SIZES = (4096, 2048, 1024, 512)


def estimate_peak_memory(
    shape: Sequence[int], scale_factor: int = 1, in_flight: int = 2, tile_size: int | None = None
) -> int:
    """Bytes the engine needs at its peak for frames of ``shape`` (see :func:`.pipeline.estimate_memory`).

    Examples
    --------
    >>> estimate_peak_memory((3000, 4000, 3)) / 2**30 < 1  # a 12 MP stack fits a Raspberry Pi budget
    True
    """
    options = EngineOptions(scale_factor=scale_factor, tile_size=tile_size)
    return estimate_memory(shape, StackSettings(options, workers=max(1, int(in_flight) - 1)))


def available_memory() -> int | None:
    """Bytes of host memory available to new work (None: unknown)."""
    return host_available_memory()


def memory_budget(share: int = 1, max_memory: float | None = None) -> int | None:
    """Bytes one stack may use: the available memory shared by `share` stacks, at most `max_memory` GiB.

    None when neither is known.
    """
    avail = available_memory()
    budget = None if avail is None else avail / max(1, share)
    if max_memory is not None:
        cap = float(max_memory) * 2.0**30
        budget = cap if budget is None else min(budget, cap)
    return None if budget is None else int(budget)


def fit_memory(
    shape: Sequence[int],
    scale_factor: int,
    engine_threads: int,
    *,
    tile_size: int | None = None,
    share: int = 1,
    max_memory: float | None = None,
    what: str = "this stack",
) -> int | None:
    """The tile size to fuse a stack with so that it fits in memory.

    Parameters
    ----------
    shape, scale_factor, engine_threads, tile_size, share, what
        As for :func:`check_memory`.
    max_memory : float, optional
        GiB the stack may use at most (a Raspberry Pi running three stacks
        at once: 1), besides its share of the available memory.

    Returns
    -------
    int or None
        `tile_size` when the stack fits with it (or the memory is unknown);
        when it does not and no tile size was chosen, the largest of
        :data:`TILE_SIZES` that fits.

    Raises
    ------
    StackError
        Nothing fits (see :func:`check_memory`), or the chosen `tile_size` does not.

    Examples
    --------
    >>> fit_memory((3000, 4000, 3), 1, 2, max_memory=1.0)  # 12 MP in 1 GiB: whole
    >>> fit_memory((3000, 4000, 3), 1, 2, max_memory=0.5) in TILE_SIZES  # in 0.5 GiB: tiles
    True
    """
    budget = memory_budget(share, max_memory)
    if budget is None:
        return tile_size
    in_flight = engine_threads + 1
    if estimate_peak_memory(shape, scale_factor, in_flight, tile_size) <= budget:
        return tile_size
    if tile_size is None:
        side = max(int(shape[0]), int(shape[1])) * scale_factor
        for tile in TILE_SIZES:
            if tile < side and estimate_peak_memory(shape, scale_factor, in_flight, tile) <= budget:
                return tile
    check_memory(
        shape, scale_factor, engine_threads, tile_size=tile_size, share=share, max_memory=max_memory, what=what
    )
    return tile_size  # the estimate fits after all (memory was freed meanwhile)


def check_memory(
    shape: Sequence[int],
    scale_factor: int,
    engine_threads: int,
    *,
    tile_size: int | None = None,
    share: int = 1,
    max_memory: float | None = None,
    what: str = "this stack",
) -> None:
    """Refuse a stack up front when the engine would not fit in memory.

    Parameters
    ----------
    shape : sequence of int
        Frame shape ``(H, W[, C])``.
    scale_factor : int
        Engine ``scale_factor``.
    engine_threads : int
        Engine threads (frames prepared at once).
    tile_size : int, optional
        Engine ``tile_size``.
    share : int
        Stacks running at once on this machine; each gets ``1/share`` of the
        available memory.
    max_memory : float, optional
        GiB one stack may use at most.
    what : str
        Named in the message.

    Raises
    ------
    StackError
        With the memory needed, the memory available and what to change.
    """
    budget = memory_budget(share, max_memory)
    if budget is None:
        return
    in_flight = engine_threads + 1
    need = estimate_peak_memory(shape, scale_factor, in_flight, tile_size)
    if need <= budget:
        return
    h, w = shape[:2]
    gib = 2.0**30
    per = f" per worker ({share} stacks at once)" if share > 1 else ""
    tips = []
    if scale_factor > 1:
        at_one = estimate_peak_memory(shape, 1, in_flight, tile_size) / gib
        tips.append(f"--scale-factor 1 (scale_factor=1: about {at_one:.1f} GiB)")
    if share > 1:
        tips.append("fewer --workers")
    if max_memory is not None:
        tips.append(f"a larger --max-memory than {float(max_memory):g} GiB")
    tiles = [t for t in TILE_SIZES if t < max(h, w) * scale_factor]
    fits = [t for t in tiles if estimate_peak_memory(shape, scale_factor, in_flight, t) <= budget]
    if fits and (not tile_size or fits[0] < tile_size):
        tips.append(f"smaller tiles: --tile-size {fits[0]} (tile_size={fits[0]})")
    elif not fits:
        tips.append("split the frames into smaller images")
    raise StackError(
        f"{what}: {w}x{h}-pixel frames at scale_factor {scale_factor} need about {need / gib:.1f} GiB "
        f"of memory, but only {budget / gib:.1f} GiB is available{per}. Use " + ", or ".join(tips) + "."
    )
