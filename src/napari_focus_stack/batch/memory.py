"""Memory checks: refuse a stack up front when the engine would not fit."""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import StackError

__all__ = ["available_memory", "check_memory", "estimate_peak_memory"]


def estimate_peak_memory(
    shape: Sequence[int], scale_factor: int = 1, in_flight: int = 2, tile_size: int | None = None
) -> int:
    """Bytes the engine needs at its peak for frames of ``shape``; see :meth:`FocusStacker.estimate_memory`.

    Examples
    --------
    >>> estimate_peak_memory((3000, 4000, 3)) / 2**30 > 1
    True
    """
    from ..stacker import FocusStacker

    stacker = FocusStacker(scale_factor=scale_factor, workers=max(1, int(in_flight) - 1), tile_size=tile_size)
    return stacker.estimate_memory(shape)


def available_memory() -> int | None:
    """Bytes of host memory available to new work (None: unknown)."""
    from .._backend import host_available_memory

    return host_available_memory()


def check_memory(
    shape: Sequence[int],
    scale_factor: int,
    engine_threads: int,
    *,
    tile_size: int | None = None,
    share: int = 1,
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
    what : str
        Named in the message.

    Raises
    ------
    StackError
        With the memory needed, the memory available and what to change.
    """
    avail = available_memory()
    if avail is None:
        return
    budget = avail / max(1, share)
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
    tiles = [t for t in (4096, 2048, 1024, 512) if t < max(h, w) * scale_factor]
    fits = [t for t in tiles if estimate_peak_memory(shape, scale_factor, in_flight, t) <= budget]
    if fits and (not tile_size or fits[0] < tile_size):
        tips.append(f"smaller tiles: --tile-size {fits[0]} (tile_size={fits[0]})")
    elif not fits:
        tips.append("split the frames into smaller images")
    raise StackError(
        f"{what}: {w}x{h}-pixel frames at scale_factor {scale_factor} need about {need / gib:.1f} GiB "
        f"of memory, but only {budget / gib:.1f} GiB is available{per}. Use " + ", or ".join(tips) + "."
    )
