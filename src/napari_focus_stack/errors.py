"""One exception family for everything a user can get wrong.

Every message names the file (when there is one) and says what to do.
"""
from __future__ import annotations

__all__ = [
    "FocusStackError",
    "InputError",
    "StackError",
    "AlignmentError",
    "OutputError",
    "BackendError",
    "ParameterError",
    "Cancelled",
    "FocusStackWarning",
]


class FocusStackError(Exception):
    """Base class of all errors raised by napari-focus-stack."""


class InputError(FocusStackError, ValueError):
    """A file or array given as input cannot be read or is not an image."""


class StackError(FocusStackError, ValueError):
    """The frames do not form a usable stack (sizes, channels, count...)."""


class AlignmentError(FocusStackError):
    """Frames could not be registered to the reference."""


class OutputError(FocusStackError, OSError):
    """A result could not be written (permissions, disk full, would overwrite an input)."""


class BackendError(FocusStackError, RuntimeError):
    """The requested compute device is not available."""


class ParameterError(FocusStackError, ValueError):
    """An option is out of its range or not one of its choices."""


class Cancelled(FocusStackError):
    """The run was cancelled by the user (a cancel callback or event said so between frames)."""


class FocusStackWarning(UserWarning):
    """Something in the input was worked around (missing pixels, a replaced reference frame).

    The result is usable; the same lines are in the result's ``report.warnings``.
    """
