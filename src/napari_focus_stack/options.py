"""The engine options, in one place.

Every default, range, choice and help text of :class:`FocusStacker`'s
options lives here. The command line (``cli``) generates its argparse
options from :data:`OPTIONS`, and the napari engine form generates its
magicgui controls from the same list, so a default changes in one place.

>>> from napari_focus_stack.options import EngineOptions
>>> EngineOptions().radius
8
>>> EngineOptions(radius=30)
Traceback (most recent call last):
...
napari_focus_stack.errors.ParameterError: radius must be between 1 and 20, got 30
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ParameterError

__all__ = [
    "ALIGN_MODELS",
    "DEVICES",
    "EngineOptions",
    "FUSION_METHODS",
    "MIN_TILE",
    "OPEN_ENDED",
    "OPTIONS",
    "Option",
    "PREFER",
    "format_number",
    "option",
]

FUSION_METHODS = ("pyramid", "depthmap")
ALIGN_MODELS = ("similarity", "affine", "translation", "none")
DEVICES = ("auto", "cpu", "gpu")
PREFER = ("auto", "near", "far")
MIN_TILE = 256
#: An upper bound this high is a sanity limit, not a range to show.
OPEN_ENDED = 100_000


@dataclass(frozen=True)
class Option:
    """One engine option: what a form or a parser needs to offer it.

    Attributes
    ----------
    name : str
        The :class:`FocusStacker` keyword (``scale_factor``); the command line
        spells it ``--scale-factor``.
    kind : type
        ``int``, ``float``, ``str`` or ``bool``.
    default : object
        The default value; ``None`` means "automatic" (see ``help``).
    label : str
        Short label for a form.
    help : str
        One sentence for tooltips and ``--help``.
    range : (lo, hi), optional
        Inclusive bounds of a number.
    choices : tuple, optional
        The allowed values of a string.
    step : float, optional
        Spin-box step for a number.
    metavar : str, optional
        Placeholder on the command line.
    advanced : bool
        Offered on the command line but not in the napari forms.
    """

    name: str
    kind: type
    default: Any
    label: str
    help: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    step: float | None = None
    metavar: str | None = None
    advanced: bool = False

    @property
    def flag(self) -> str:
        """The command-line spelling: ``--scale-factor``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """Return ``value`` validated (and a whole-number float made int), else raise.

        Raises
        ------
        ParameterError
            With the valid range or choices in the message.
        """
        if value is None:
            if self.default is None:
                return None
            raise ParameterError(f"{self.name} must be given, got None")
        if self.choices is not None:
            if value not in self.choices:
                raise ParameterError(f"{self.name} must be one of {self.choices}, got {value!r}")
            return value
        if self.kind is str:
            # a free string; a whole number is kept as an index (``channel``)
            if isinstance(value, str):
                return value
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                return int(value)
            raise ParameterError(f"{self.name} must be {self.metavar or 'a string'}, got {value!r}")
        if self.kind is bool:
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise ParameterError(f"{self.name} must be True or False, got {value!r}")
            return bool(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:  # numpy scalars
                if not isinstance(value, numbers.Real):
                    raise TypeError
            except TypeError:
                raise ParameterError(f"{self.name} must be a number, got {value!r}") from None
        if isinstance(value, float) and math.isnan(value):
            raise ParameterError(f"{self.name} must be a number, got NaN")
        if self.kind is int:
            if float(value) != int(value):
                span = self._range_text()
                if span.endswith("or more"):
                    span = "," + span
                raise ParameterError(f"{self.name} must be a whole number{span}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.range is not None:
            lo, hi = self.range
            if not lo <= value <= hi:
                # above a sanity limit, "256 or more" would be untrue: say both ends
                span = self._range_text() if value < lo else f" between {format_number(lo)} and {format_number(hi)}"
                raise ParameterError(f"{self.name} must be{span}, got {value!r}")
        return value

    def _range_text(self) -> str:
        if self.range is None:
            return ""
        lo, hi = self.range
        if hi >= OPEN_ENDED:  # only a sanity limit: "0 or more" says what the user needs
            return f" {format_number(lo)} or more"
        return f" between {format_number(lo)} and {format_number(hi)}"


def format_number(x: float) -> str:
    """A bound or value as a user reads it: ``20`` not ``20.0``, ``0.5`` as is.

    >>> format_number(20.0), format_number(0.5)
    ('20', '0.5')
    """
    return str(int(x)) if float(x).is_integer() else str(x)


OPTIONS: tuple[Option, ...] = (
    Option("method", str, "pyramid", "Method",
           "fusion method: pyramid (Laplacian pyramid, sharpest detail) or depthmap (soft selection)",
           choices=FUSION_METHODS),
    Option("radius", int, 8, "Radius", "focus-measure window radius in px", range=(1, 20), step=1),
    Option("smoothing", float, 4.0, "Smoothing", "Gaussian smoothing (px) of the focus maps", range=(1, 10),
           step=0.5),
    Option("scale_factor", int, 1, "Scale factor",
           "warp, measure and fuse at this multiple of the resolution (bicubic), then bring back",
           range=(1, 4), step=1),
    Option("prefer", str, "auto", "Occlusion order",
           "at occlusion edges favour the nearer surface (near) or the farther one (far), taking frame 0 as "
           "focused nearest; auto: the sharper frame wins", choices=PREFER),
    Option("align", str, "similarity", "Alignment",
           "alignment model: similarity (scale, rotation, shift: focus breathing), affine, translation or none",
           choices=ALIGN_MODELS),
    Option("reference", int, None, "Reference frame",
           "index of the reference frame, counted from 0 (default: the middle frame)", range=(0, OPEN_ENDED),
           metavar="INDEX"),
    Option("channel", str, None, "Deciding channel",
           "channel whose focus decides for all channels, by index or name (default: microscope "
           "channels each weighed by their intensity spread, colour channels alike)", metavar="N|NAME",
           advanced=True),
    Option("device", str, "auto", "Device",
           "compute device: auto picks the GPU when CuPy sees one", choices=DEVICES),
    Option("upscale_output", bool, False, "Keep upscaled result",
           "keep the scale-factor times larger result", advanced=True),
    Option("tile_size", int, None, "Tile size",
           f"fuse in overlapping tiles of this many output pixels a side, at least {MIN_TILE} "
           "(less memory; default: whole image)", range=(MIN_TILE, 1_000_000), metavar="PX", advanced=True),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    """The :class:`Option` called ``name``."""
    return _BY_NAME[name]


@dataclass(frozen=True)
class EngineOptions:
    """The validated engine options of one run (frozen).

    Field defaults come from :data:`OPTIONS`; construction validates every
    value and raises :class:`~napari_focus_stack.errors.ParameterError`.
    """

    method: str = option("method").default
    radius: int = option("radius").default
    smoothing: float = option("smoothing").default
    scale_factor: int = option("scale_factor").default
    prefer: str = option("prefer").default
    align: str = option("align").default
    reference: int | None = option("reference").default
    channel: int | str | None = option("channel").default
    device: str = option("device").default
    upscale_output: bool = option("upscale_output").default
    tile_size: int | None = option("tile_size").default

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _BY_NAME[f.name].check(getattr(self, f.name)))

    def kwargs(self) -> dict:
        """The :class:`FocusStacker` keyword arguments."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Any) -> EngineOptions:
        """Options from a mapping or namespace, taking the known names and ignoring the rest."""
        get = values.get if hasattr(values, "get") else lambda k, d=None: getattr(values, k, d)
        return cls(**{f.name: get(f.name, getattr(cls, f.name)) for f in fields(cls)})

