"""BatchOptions: everything that shapes a batch besides the list of stacks."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ParameterError
from ..executors import check_scheduler_address
from ..options import EngineOptions

__all__ = ["BatchOptions", "FORMATS", "NAMINGS"]

#: Output formats a batch writes.
FORMATS = ("jpg", "png", "tif")

#: Output naming: ``openscan`` puts OpenScan3 stacks where the firmware does
#: (``scanNN/stacked/stacked_scanNN_PPP.jpg``); ``plain`` names every output
#: after its stack (``<stack>.jpg``).
NAMINGS = ("openscan", "plain")

_ENGINE_FIELDS = frozenset(f.name for f in fields(EngineOptions))


@dataclass(frozen=True, init=False)
class BatchOptions:
    """Everything that shapes a batch besides the list of stacks (frozen, validated).

    Parameters
    ----------
    engine : EngineOptions, optional
        The engine options. Instead, their fields (``radius``, ``smoothing``,
        ``scale_factor``, ``method``, ``align``, ``reference``, ``device``,
        ``upscale_output``, ``tile_size``) may be given as keywords.
    format : {"jpg", "png", "tif"}, optional
        Output format; default: that of the stacks' frames (BMP/WebP -> PNG).
    bit_depth : {8, 16}, optional
        Output sample depth (16 needs PNG or TIFF); default: the frames'.
    quality : int
        JPEG quality, 1-100.
    depth_maps, confidence_maps : bool
        Also write ``<stack>_depth.tif`` / ``<stack>_confidence.tif`` (float32).
    naming : {"openscan", "plain"}
        ``openscan``: stacks of OpenScan3 photos (``scanNN_PPP_fsKK``) are
        written as ``scanNN/stacked/stacked_scanNN_PPP.<ext>`` inside the
        output folder taken as the project folder, or as
        ``stacked/stacked_scanNN_PPP.<ext>`` when the output folder is that
        scan's own ``scanNN`` folder; other stacks as ``plain``.
        ``plain``: ``<stack>.<ext>`` in the output folder.
    reuse_alignment : bool
        Estimate the alignment on a few stacks and apply it to every stack
        with the same number of frames (turntable scans repeat one focus
        sequence); each reusing stack is checked first (see `reuse_tolerance`).
    calibration_positions : int
        Stacks the reused alignment is estimated on: evenly spaced over the
        scan (first and last included), combined by the element-wise median
        of their transforms, so that one stack that moved does not spoil it.
    reuse_tolerance : float
        Pixels. Before a stack reuses the alignment, its end frames are
        registered to its reference frame starting from the reused
        transforms; if they move by more than this, the reused alignment
        does not fit and the stack is aligned on its own. 0 turns the check off.
    calibration : str, optional
        Stack (folder or files) to estimate the reused alignment from,
        instead of `calibration_positions` stacks of the scan. Implies
        `reuse_alignment`.
    overwrite : bool
        Recompute every stack and replace existing files of the same names
        (never the inputs). Without it, complete stacks are skipped and files
        this tool did not write are left alone (the stack fails).
    workers : int
        Worker processes of a local Dask cluster; 1 runs in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); then
        `workers` is ignored.
    retries : int
        Times a stack that raised an unexpected error (not a
        :class:`~napari_focus_stack.errors.FocusStackError`) is tried again.
    max_pixels : int, optional
        Frames of more pixels are refused as possible decompression bombs;
        0: no limit; default: Pillow's limit.
    max_memory : float, optional
        GiB one stack may use (a 4 GB Raspberry Pi running three stacks at
        once: 1). Besides, each of the stacks run at once gets its share of
        the available memory. A stack that would need more is fused in
        tiles (unless `tile_size` is given), or refused when even tiles do
        not fit.

    Raises
    ------
    ParameterError
        An option out of range, or options that cannot work together.

    Examples
    --------
    >>> BatchOptions(radius=6, depth_maps=True).engine.radius
    6
    """

    engine: EngineOptions = field(default_factory=EngineOptions)
    format: str | None = None
    bit_depth: int | None = None
    quality: int = 95
    depth_maps: bool = False
    confidence_maps: bool = False
    naming: str = "openscan"
    reuse_alignment: bool = False
    calibration_positions: int = 3
    reuse_tolerance: float = 1.0
    calibration: str | None = None
    overwrite: bool = False
    workers: int = 1
    scheduler: str | None = None
    retries: int = 2
    max_pixels: int | None = None
    max_memory: float | None = None

    def __init__(self, engine: EngineOptions | None = None, **kwargs: Any) -> None:
        engine_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in _ENGINE_FIELDS}
        if engine is not None and engine_fields:
            raise ParameterError(
                f"give the engine options either as engine= or as keywords, not both ({', '.join(engine_fields)})"
            )
        if engine is None:
            engine = EngineOptions(**engine_fields)
        elif not isinstance(engine, EngineOptions):
            raise ParameterError(f"engine must be an EngineOptions, got {type(engine).__name__}")
        unknown = set(kwargs) - {f.name for f in fields(self)}
        if unknown:
            raise ParameterError(f"unknown batch option(s): {', '.join(sorted(unknown))}")
        object.__setattr__(self, "engine", engine)
        for f in fields(self):
            if f.name != "engine":
                object.__setattr__(self, f.name, kwargs.get(f.name, f.default))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ParameterError` for options out of range or that cannot work together."""
        if self.format is not None and self.format not in FORMATS:
            raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.bit_depth not in (None, 8, 16):
            raise ParameterError(f"bit depth must be 8 or 16, got {self.bit_depth!r}")
        if self.bit_depth == 16 and self.format == "jpg":
            raise ParameterError("JPEG holds 8 bits per sample; use --format tif or png for 16-bit output")
        if self.naming not in NAMINGS:
            raise ParameterError(f"naming must be one of {', '.join(NAMINGS)}, got {self.naming!r}")
        _whole(self.calibration_positions, "calibration_positions", 1, None)
        tol = self.reuse_tolerance
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 <= tol < float("inf"):
            raise ParameterError(f"reuse_tolerance must be a number of pixels, 0 or more, got {tol!r}")
        _whole(self.quality, "quality", 1, 100)
        _whole(self.workers, "workers", 1, None)
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str):
                raise ParameterError(
                    f"scheduler must be a Dask scheduler's address such as tcp://host:8786, got {self.scheduler!r}"
                )
            check_scheduler_address(self.scheduler)
        _whole(self.retries, "retries", 0, None)
        if self.max_pixels is not None:
            _whole(self.max_pixels, "max_pixels", 0, None)
        gib = self.max_memory
        if gib is not None and (
            isinstance(gib, bool) or not isinstance(gib, numbers.Real) or not 0 < gib < float("inf")
        ):
            raise ParameterError(f"max_memory must be a number of GiB above 0, got {gib!r}")

    def engine_kwargs(self) -> dict:
        """Keyword arguments for :class:`~napari_focus_stack.stacker.FocusStacker`."""
        return self.engine.kwargs()

    def as_dict(self) -> dict:
        """Plain values, the engine options flattened in (for reports)."""
        out = self.engine_kwargs()
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "engine"})
        return out

    @property
    def reuse(self) -> bool:
        """The alignment is estimated once and reused."""
        return bool(self.reuse_alignment or self.calibration)


def _whole(value: Any, name: str, lo: int, hi: int | None) -> None:
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = whole and value >= lo and (hi is None or value <= hi)
    if not ok:
        span = f"{lo}-{hi}" if hi is not None else f"{lo} or more"
        raise ParameterError(f"{name} must be a whole number, {span}, got {value!r}")
