"""What the command line checks about the input paths it was given, before io reads them."""
from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._runtime import pixel_limit, pixel_limit_hint
from ..errors import FocusStackError, InputError

__all__ = ["check_input_paths", "reading_inputs"]

_LOOP = (
    "is a symbolic link that loops back on itself (directly or through other links); "
    "point it at the frames or remove it"
)


def check_input_paths(items: Iterable[str]) -> None:
    """Raise :class:`InputError` for a path that is a looping or broken symbolic link.

    A missing path is left to the reader, which says "not found".
    """
    for item in items:
        if any(ch in item for ch in "*?["):  # a glob pattern: expanded by the reader
            continue
        path = Path(item).expanduser()
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(f"{item} {_LOOP}.") from None
            if os.path.islink(path):
                raise InputError(
                    f"{item} is a symbolic link to {os.readlink(path)}, which does not exist. "
                    "Check the link (and that the drive is mounted)."
                ) from None


@contextlib.contextmanager
def reading_inputs(max_pixels: int | None) -> Iterator[None]:
    """Read inputs under the ``--max-pixels`` limit; name what the readers let through.

    The readers map their errors to :class:`InputError`; an OSError that
    still escapes (a looping link inside a folder) is mapped here, and an
    image refused for its size gets the option that raises the limit.
    """
    with pixel_limit(max_pixels):
        try:
            yield
        except InputError as exc:
            hint = pixel_limit_hint(exc, "--max-pixels N")
            if hint:
                raise InputError(f"{exc}{hint}") from exc
            raise
        except FocusStackError:
            raise
        except OSError as exc:
            name = exc.filename or "an input"
            if exc.errno == errno.ELOOP:
                raise InputError(f"{name} {_LOOP}.") from exc
            raise InputError(f"{name} cannot be read ({exc.strerror or exc}).") from exc
