"""Checks around decoding one file, and the wording of its InputError.

Before a decoder sees a file it is checked to exist, be a file, be
non-empty and be readable, and its first bytes tell its format (content, not
extension, decides). Whatever a decoder then raises (OSError, ValueError,
SyntaxError, struct.error, Pillow's DecompressionBombError...) becomes an
:class:`~napari_focus_stack.errors.InputError` that names the file, says
what is wrong in words (truncated? damaged? too large?) and what to do.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import FocusStackError, FocusStackWarning, InputError
from .paths import PathLike

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_SUPPORTED_WORDS = "JPEG, PNG, TIFF, BMP or WebP"


def decode_pixel_limit() -> int | None:
    # Same ceiling as Pillow's decompression-bomb error; users raise it there.
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def as_path(path: PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, got {type(path).__name__}")
    return Path(path).expanduser()


def check_file(path: Path) -> bytes:
    """Raise InputError unless `path` is a non-empty readable file; return its first bytes."""
    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not an image file.")
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(
            f"{path} not found. Check the path (and that the drive is mounted)."
        ) from None
    except OSError as exc:
        raise InputError(f"{path} cannot be opened ({exc.strerror or exc}).") from exc
    if size == 0:
        raise InputError(
            f"{path} is empty (0 bytes), probably an interrupted copy or export. "
            "Remove it from the folder or copy it again."
        )
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError as exc:
        raise InputError(
            f"{path} cannot be opened ({exc.strerror or exc}). Check its permissions."
        ) from exc


def is_tiff(head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def kind_of(head: bytes) -> str:
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if is_tiff(head):
        return "TIFF"
    return "file"


def _reason(exc: BaseException, kind: str) -> str:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, Image.DecompressionBombError):
        return (
            "larger than the safety limit of PIL.Image.MAX_IMAGE_PIXELS; "
            "raise that limit if you trust the file"
        )
    if isinstance(exc, MemoryError):
        return "too large to decode in the available memory"
    if isinstance(exc, UnidentifiedImageError):
        return f"not a {_SUPPORTED_WORDS} file"
    if "imagecodecs" in low:
        return (
            f"{text}; install it with `pip install imagecodecs` or re-save the file "
            "uncompressed or with ZIP compression"
        )
    if "corrupt" in low or "broken data stream" in low:  # libjpeg's warnings, which Pillow raises
        at = low.find("corrupt jpeg data:")
        what = text[at + len("corrupt jpeg data:") :].strip() if at >= 0 else "broken data stream"
        return f"damaged {kind}: corrupt compressed data ({what[:120]})"
    if isinstance(exc, EOFError) or any(
        w in low for w in ("truncated", "failed to read", "premature", "unexpected end")
    ):
        return f"truncated {kind}?"
    text = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"damaged {kind}? {detail[:200]}"


def _unreadable(path: Path, exc: BaseException, kind: str = "file") -> InputError:
    return InputError(
        f"{path} is not a readable image ({_reason(exc, kind)}). "
        "Remove it from the folder or re-export it."
    )


def guarded(path: Path, kind: str, fn: Callable[[], Any]) -> Any:
    """Run a decoder; turn anything it raises into an InputError naming `path`."""
    try:
        return fn()
    except FocusStackError:
        raise
    except Exception as exc:  # decoders raise OSError, ValueError, SyntaxError, struct.error...
        raise _unreadable(path, exc, kind) from exc


class _TifffileLog(logging.Filter):
    """Keeps what tifffile logs inside :func:`tifffile_messages` (per thread) off stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        messages = getattr(self.local, "messages", None)
        if messages is None:
            return True  # not one of our reads: tifffile's own logging as usual
        text = record.getMessage()
        if text.startswith("<tifffile"):  # "<tifffile.TiffFile 'x.tif'> OME series is missing..."
            text = text.split("> ", 1)[-1]
        messages.append(text.strip())
        return False


_TIFFFILE_LOG = _TifffileLog()
logging.getLogger("tifffile").addFilter(_TIFFFILE_LOG)


@contextlib.contextmanager
def tifffile_messages() -> Iterator[list[str]]:
    """Collect what tifffile logs in this thread while the block runs, instead of printing it on stderr.

    tifffile logs what it works around ("OME series is missing 11 frames.
    Missing data are zeroed", "ImageJ series metadata invalid or corrupted
    file") on stderr, naming no file of ours. The readers either refuse
    such a file with an :class:`InputError` or pass the messages on as one
    :class:`~napari_focus_stack.errors.FocusStackWarning` line each.
    """
    outer = getattr(_TIFFFILE_LOG.local, "messages", None)
    messages: list[str] = []
    _TIFFFILE_LOG.local.messages = messages
    try:
        yield messages
    finally:
        _TIFFFILE_LOG.local.messages = outer
        if outer is not None:
            outer.extend(messages)


def warn_tifffile_messages(path: Path, messages: list[str]) -> None:
    """Each distinct tifffile message about `path` as one FocusStackWarning line naming the file."""
    for text in dict.fromkeys(messages):
        warnings.warn(f"{path}: {text} (tifffile)", FocusStackWarning, stacklevel=3)
