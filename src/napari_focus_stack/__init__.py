"""Focus stacking for napari, Python and the command line.

>>> from napari_focus_stack import FocusStacker
>>> stacker = FocusStacker(radius=8, smoothing=4, scale_factor=2)
>>> # fused = stacker.process_stack("path/to/frames/")

No Qt and no CuPy are imported here: the napari plugin lives in ``_napari``
and the GPU is only touched when chosen.
"""
from __future__ import annotations

from ._version import __version__
from .errors import (
    AlignmentError,
    BackendError,
    Cancelled,
    FocusStackError,
    FocusStackWarning,
    InputError,
    OutputError,
    StackError,
)
from .result import StackReport, StackResult
from .stacker import FocusStacker

__all__ = [
    "FocusStacker",
    "StackResult",
    "StackReport",
    "Cancelled",
    "split_into_stacks",
    "FocusStackError",
    "FocusStackWarning",
    "InputError",
    "StackError",
    "AlignmentError",
    "OutputError",
    "BackendError",
    "__version__",
]


def split_into_stacks(paths, stack_size: int | None = None) -> list:
    """Group image files into stacks; see :func:`napari_focus_stack.grouping.split_into_stacks`."""
    from .grouping import split_into_stacks as _split

    return _split(paths, stack_size=stack_size)
