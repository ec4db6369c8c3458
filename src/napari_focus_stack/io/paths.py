"""Input paths: natural file order, the image-name test, expanding folders and globs.

Everything a user points the stacker at as a path is turned into a list of
image files here: folders give their image files in natural order (``img_2``
before ``img_10``), glob patterns their matching image files in natural
order, files are kept in the order given; a file given more than once
(twice by name, a folder given twice, a file inside a folder given too) is
used once, with a warning that names it. No file is opened.
"""
from __future__ import annotations

import glob
import os
import re
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from ..errors import FocusStackWarning, InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "PathLike",
    "expand_inputs",
    "is_image_name",
    "natural_sort_key",
    "natural_sorted",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File name extensions (lower case) that are treated as images when a folder
#: or a glob pattern is expanded.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
)

_DIGITS = re.compile(r"(\d+)")


def _natural_parts(text: str) -> tuple:
    # re.split with a capture group alternates text (even) and digits (odd),
    # so two keys always compare str with str and int with int.
    text = unicodedata.normalize("NFC", text).casefold()
    return tuple(int(p) if k % 2 else p for k, p in enumerate(_DIGITS.split(text)))


def natural_sort_key(s: PathLike) -> tuple:
    """Sort key that orders numbers inside names by value, ignoring case.

    Parameters
    ----------
    s : str or path-like
        A file name or path.

    Returns
    -------
    tuple
        Compares by the file name first (so ``scan_2`` < ``scan_10`` and
        ``IMG_3.JPG`` < ``img_4.jpg``), then by the full path, then by the raw
        string so that the order is total and reproducible.

    Examples
    --------
    >>> sorted(["scan_10.jpg", "scan_2.jpg", "Scan_1.jpg"], key=natural_sort_key)
    ['Scan_1.jpg', 'scan_2.jpg', 'scan_10.jpg']
    """
    full = os.fspath(s)
    name = Path(full).name or full
    return (_natural_parts(name), _natural_parts(full), full)


def natural_sorted(items: Iterable[PathLike]) -> list:
    """Return `items` sorted with :func:`natural_sort_key`.

    Examples
    --------
    >>> natural_sorted(["f10", "f9", "F1"])
    ['F1', 'f9', 'f10']
    """
    return sorted(items, key=natural_sort_key)


def is_image_name(p: PathLike) -> bool:
    """Whether `p` names an image file a folder or pattern would give.

    True for the :data:`IMAGE_EXTENSIONS` in any case, false for hidden
    files such as the macOS ``._IMG_1.JPG`` resource forks. The file is not
    opened.

    Examples
    --------
    >>> is_image_name("scan/IMG_0001.JPG"), is_image_name("scan/._IMG_0001.JPG")
    (True, False)
    >>> is_image_name("notes.txt")
    False
    """
    p = Path(p)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _image_files_in(folder: Path) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise InputError(f"{folder} cannot be listed ({exc.strerror or exc}).") from exc
    files = [Path(e.path) for e in entries if e.is_file() and is_image_name(Path(e.name))]
    if not files:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        subdirs = sum(1 for e in entries if e.is_dir() and not e.name.startswith("."))
        hint = (
            f" It has {subdirs} subfolder(s): pass one of them (one stack per folder)."
            if subdirs
            else " Put the frames of one stack in it, or pass the files directly."
        )
        raise InputError(f"{folder} contains no image files ({exts}).{hint}")
    return natural_sorted(files)


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_inputs(inputs: PathLike | Iterable[PathLike]) -> list[Path]:
    """Turn folders, glob patterns and files into a list of image files.

    Parameters
    ----------
    inputs : path-like or iterable of path-like
        Folders give their image files (see :data:`IMAGE_EXTENSIONS`; hidden
        files such as macOS ``._IMG_1.JPG`` are skipped) in natural order;
        glob patterns give their matching image files in natural order;
        files are kept, in the order given.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        A path does not exist, a folder holds no images, a pattern matches
        nothing, or nothing was given.

    Examples
    --------
    >>> expand_inputs("scan/stack_01")  # doctest: +SKIP
    [PosixPath('scan/stack_01/img_1.jpg'), PosixPath('scan/stack_01/img_2.jpg')]
    """
    if isinstance(inputs, (str, os.PathLike)):
        items: list[Any] = [inputs]
    else:
        try:
            items = list(inputs)
        except TypeError:
            raise InputError(
                f"expected a file, folder, glob pattern or a list of them, got "
                f"{type(inputs).__name__}"
            ) from None
    if not items:
        raise InputError("no input files given")
    out: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(
                f"expected a file, folder or glob pattern, got {type(item).__name__}"
            )
        p = Path(item).expanduser()
        if p.is_dir():
            out.extend(_image_files_in(p))
        elif p.exists():
            out.append(p)
        elif _has_glob(os.fspath(item)):
            matches = [Path(m) for m in glob.glob(os.path.expanduser(os.fspath(item)))]
            matches = [m for m in matches if m.is_file() and is_image_name(m)]
            if not matches:
                raise InputError(f"no image files match {os.fspath(item)!r}. Check the pattern.")
            out.extend(natural_sorted(matches))
        else:
            raise InputError(f"{p} not found. Check the path (and that the drive is mounted).")
    return _once_each(out)


def _once_each(paths: list[Path]) -> list[Path]:
    """`paths` without the second and later mentions of a file (also through another spelling, a link or a
    hard link), with one warning naming them: a frame given twice would pass as two frames of the stack and
    repeat its focus step."""
    seen: set = set()
    kept: list[Path] = []
    repeated: list[str] = []
    for p in paths:
        try:
            st = os.stat(p)
            key: Any = (st.st_dev, st.st_ino)
        except OSError:  # the reader says what is wrong with it
            key = os.path.realpath(p)
        if key in seen:
            repeated.append(str(p))
            continue
        seen.add(key)
        kept.append(p)
    if len(repeated) == 1:
        warnings.warn(f"{repeated[0]} was given more than once; it is used once", FocusStackWarning, stacklevel=3)
    elif repeated:
        shown = ", ".join(repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
        warnings.warn(
            f"{len(repeated)} files were given more than once; each is used once: {shown}", FocusStackWarning,
            stacklevel=3,
        )
    return kept
