"""Atomic writing: temporary file, fsync, rename; stale-temp cleanup; OS errors as OutputError.

Every output file (images, reports, resume markers, the napari writer's
stacks) is written to a hidden temporary file beside its target, flushed to
disk and renamed over the target only when complete, so a reader never sees
a partial file and a crash or a full disk leaves the previous file intact.
The temporary name is ``.<name>.<8 random chars><suffix>``: hidden, so a
folder scan skips it, and recognisable, so :func:`remove_stale_temps` can
delete what a killed process left. A failed write raises an
:class:`~napari_focus_stack.errors.OutputError` that names the file and says
what to do (disk full, permission denied, read-only file system...).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import FocusStackError, OutputError
from .paths import PathLike

__all__ = ["remove_stale_temps", "write_atomic", "write_text"]

#: What :func:`write_atomic` accepts as content: the bytes themselves, or a
#: function that writes them to the binary file object it is given.
Content = bytes | bytearray | memoryview | Callable[[BinaryIO], object]


def _output_error(path: Path, exc: BaseException) -> OutputError:
    code = getattr(exc, "errno", None)
    full = "Free some space or choose another output folder"
    why = {
        errno.ENOSPC: f"the disk is full. {full}",
        getattr(errno, "EDQUOT", -1): f"the disk quota is exceeded. {full}",
        errno.EACCES: "permission denied. Choose a folder you can write to",
        errno.EPERM: "permission denied. Choose a folder you can write to",
        errno.EROFS: "the file system is read-only. Choose another output folder",
        errno.ENOENT: "the folder does not exist. Create it or choose another output folder",
        errno.ENAMETOOLONG: "the file name is too long. Choose a shorter name",
    }.get(code)
    if why is None and not isinstance(exc, OSError):  # the encoder refused the data: not the folder's fault
        why = f"the encoder failed ({type(exc).__name__}: {exc})"
    if why is None:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        why = f"{detail}. Check the output folder and try again"
    return OutputError(f"could not write {path}: {why}.")


def _refuse_inputs(path: Path, protect: Iterable[PathLike | None]) -> None:
    try:
        target = path.resolve()
    except OSError:
        target = path.absolute()
    for p in protect or ():
        if p is None:
            continue
        p = Path(p).expanduser()
        try:
            same = os.path.samefile(path, p)
        except OSError:  # one of them does not exist
            try:
                same = p.resolve() == target
            except OSError:
                same = False
        if same:
            raise OutputError(
                f"refusing to overwrite input file {p}; choose another output name."
            )


def _open_temp(path: Path) -> BinaryIO:
    """Create and open ``.<name>.<8 random chars><suffix>`` beside `path`.

    Mode ``"x"`` creates the file with permissions 0o666 less the umask (and
    any default ACL of the folder), as for any new file, without reading or
    changing the process umask, which other threads share; it also never
    reuses or follows an existing name.
    """
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}{path.suffix}")
        try:
            return open(tmp, "xb")  # the caller closes it
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def write_atomic(
    path: PathLike, content: Content, *, protect: Iterable[PathLike | None] = ()
) -> Path:
    """Write a file through a temporary file beside it, renamed into place when complete.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist. An existing file is
        replaced and keeps its permission bits; a new one gets the usual
        permissions of a new file (0o666 less the umask).
    content : bytes-like or callable
        The bytes to write, or a function called with the open binary file
        object that writes them (an encoder such as ``tifffile.imwrite`` or
        ``PIL.Image.Image.save``). Whatever the function returns is ignored.
    protect : iterable of path-like
        Input files that must not be overwritten.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        `path` is one of `protect`, or the write failed (folder missing,
        permission denied, disk full...); the message names the file and
        says what to do. An exception raised by `content` that is not a
        :class:`~napari_focus_stack.errors.FocusStackError` is reported the
        same way. Nothing is left behind: the target still holds its
        previous content (or does not exist) and the temporary file is
        removed. A process killed mid-write leaves only the temporary file,
        which :func:`remove_stale_temps` deletes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     written = write_atomic(Path(folder) / "hello.txt", b"hello")
    ...     written.read_bytes(), sorted(p.name for p in Path(folder).iterdir())
    (b'hello', ['hello.txt'])
    """
    path = Path(path).expanduser()
    _refuse_inputs(path, protect)
    write = content if callable(content) else (lambda fh: fh.write(content))
    tmp: str | None = None
    try:
        try:
            mode: int | None = path.stat().st_mode & 0o7777
        except OSError:
            mode = None  # a new file: the temporary file already has the right mode
        with _open_temp(path) as fh:
            tmp = fh.name
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            try:
                os.chmod(tmp, mode)
            except OSError:
                pass
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, Exception) and not isinstance(exc, FocusStackError):
            raise _output_error(path, exc) from exc
        raise
    return path


def write_text(path: PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically (reports, markers): same guarantees as :func:`write_atomic`."""
    return write_atomic(path, text.encode("utf-8"))


def remove_stale_temps(path: PathLike) -> list[Path]:
    """Delete temporary files that an interrupted :func:`write_atomic` left for ``path``.

    :func:`write_atomic` writes to ``.<name>.<8 random chars><suffix>`` beside
    the target and renames it; a process killed in between leaves that file.
    Only names of that form for this target are touched, whatever their age:
    call it before writing the target, not while another process writes it.

    Returns
    -------
    list of Path
        The files removed.
    """
    target = Path(path)
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.[A-Za-z0-9_]{8}" + re.escape(target.suffix) + "$")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed
