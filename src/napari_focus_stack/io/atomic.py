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
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import FocusStackError, OutputError
from .paths import PathLike

__all__ = [
    "FileLock", "Locked", "refuse_write_protected", "remove_stale_temps", "temp_name", "write_atomic", "write_text",
]

#: What :func:`write_atomic` accepts as content: the bytes themselves, or a
#: function that writes them to the binary file object it is given.
Content = bytes | bytearray | memoryview | Callable[[BinaryIO], object]


def output_error(path: Path, exc: BaseException) -> OutputError:
    code = getattr(exc, "errno", None)
    full = "Free some space or choose another output folder"
    why = {
        errno.ENOSPC: f"the disk is full. {full}",
        getattr(errno, "EDQUOT", -1): f"the disk quota is exceeded. {full}",
        errno.EACCES: "permission denied. Choose a folder you can write to",
        errno.EPERM: "permission denied. Choose a folder you can write to",
        errno.EROFS: "the file system is read-only. Choose another output folder",
        errno.ENOENT: "the folder does not exist. Create it or choose another output folder"
        if not path.parent.is_dir() else "its temporary file was removed while it was written (by another "
        "program writing into the same folder?). Run again when that program has finished",
        errno.ENAMETOOLONG: "the file name is too long. Choose a shorter name",
    }.get(code)
    if why is None and not isinstance(exc, OSError):  # the encoder refused the data: not the folder's fault
        why = f"the encoder failed ({type(exc).__name__}: {exc})"
    if why is None:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        why = f"{detail}. Check the output folder and try again"
    return OutputError(f"could not write {path}: {why}.")


def refuse_write_protected(path: PathLike, label: str = "") -> None:
    """Raise :class:`OutputError` when `path` is an existing file that nobody may write (``chmod 444``).

    Replacing a file is a rename, which the folder's permissions allow
    whatever the file's own: a file made read-only to keep it would be
    replaced without a word. Its owner's intent is respected, as that of a
    read-only folder is (root's runs too).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and not mode & 0o222:
        named = f"{label} {path}" if label else str(path)
        raise OutputError(
            f"cannot write {named}: the file exists and is write-protected (mode {mode & 0o777:o}). "
            "Make it writable (chmod u+w) to replace it, or choose another name."
        )


def refuse_inputs(path: Path, protect: Iterable[PathLike | None]) -> None:
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


#: This machine, in temporary names: 4 hex digits of a hash of its name.
HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]
#: A temporary file left on another machine (a shared folder) is stale after this long (s).
_FOREIGN_STALE_S = 24 * 3600


def temp_name(path: Path) -> Path:
    """A fresh hidden name beside `path`, ``.<name>.<8 random chars>~<pid>@<host><suffix>``.

    :func:`remove_stale_temps` knows such names, and from the process id
    and the machine in them whether their writer still runs.

    >>> name = temp_name(Path("out/f.png")).name
    >>> name.startswith(".f.png.") and name.endswith(f"~{os.getpid()}@{HOST}.png")
    True
    """
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}~{os.getpid()}@{HOST}{path.suffix}")


def _running(pid: int) -> bool:
    """Whether process `pid` of this machine runs (on Windows, where that cannot be asked safely: False)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to another user
        return True
    return True


def _stale(match: re.Match, entry: os.DirEntry) -> bool:
    """Whether the temporary file `entry` was left by a writer that no longer runs."""
    pid, host = match.group("pid"), match.group("host")
    if pid is None:  # a name of an earlier version, without its writer
        return True
    if host != HOST:  # another machine's: its process cannot be asked
        try:
            return time.time() - entry.stat().st_mtime > _FOREIGN_STALE_S
        except OSError:
            return False
    return not _running(int(pid))


def _open_temp(path: Path) -> BinaryIO:
    """Create and open ``.<name>.<8 random chars><suffix>`` beside `path`.

    Mode ``"x"`` creates the file with permissions 0o666 less the umask (and
    any default ACL of the folder), as for any new file, without reading or
    changing the process umask, which other threads share; it also never
    reuses or follows an existing name.
    """
    for _ in range(100):
        tmp = temp_name(path)
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
    refuse_inputs(path, protect)
    refuse_write_protected(path)
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
            raise output_error(path, exc) from exc
        raise
    return path


def write_text(path: PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically (reports, markers): same guarantees as :func:`write_atomic`."""
    return write_atomic(path, text.encode("utf-8"))


def remove_stale_temps(path: PathLike) -> list[Path]:
    """Delete temporary files that an interrupted :func:`write_atomic` left for ``path``.

    :func:`write_atomic` writes to a temporary name beside the target
    (:func:`temp_name`) and renames it; a process killed in between leaves
    that file (and :func:`~napari_focus_stack.io.outputs.staged_outputs`
    stages whole outputs under such names). Only names of that form for this
    target are touched, and only when their writer no longer runs: the
    process named in them is gone (on another machine: the file is a day
    old), or the name has none (an earlier version's). Another run writing
    the same target keeps its files.

    Returns
    -------
    list of Path
        The files removed.
    """
    target = Path(path)
    suffix = re.escape(target.suffix)
    temp = r"\.[A-Za-z0-9_]{8}(?:~(?P<pid>[0-9]+)@(?P<host>[0-9a-f]{4}))?" + suffix
    nested = r"\.[A-Za-z0-9_]{8}(?:~[0-9]+@[0-9a-f]{4})?" + suffix
    # a temporary file of the target, or the temporary file of such a file (a staged output's own)
    pattern = re.compile(r"^\.\.?" + re.escape(target.name) + temp + f"(?:{nested})?$")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and _stale(match, entry):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


class Locked(OSError):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file (who, since when)."""

    def __init__(self, path: Path, holder: str):
        super().__init__(errno.EAGAIN, f"locked by {holder or 'another process'}", str(path))
        self.holder = holder


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on an open file without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network mounts): nothing to hold
        return True
    return True


class FileLock:
    """An exclusive lock on a file (created if needed), held from :meth:`acquire` to :meth:`release`.

    The operating system releases the lock when the process ends, however it
    ends (``kill -9`` too), so a lock is never left behind; the file stays,
    with `holder` (who holds it, since when) for the next one to read.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with FileLock(Path(folder) / "lock", "me"):
    ...         try:
    ...             FileLock(Path(folder) / "lock", "you").acquire()
    ...         except Locked as exc:
    ...             print(exc.holder)
    me
    """

    def __init__(self, path: PathLike, holder: str):
        self.path, self.holder = Path(path), holder
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises
        ------
        Locked
            Another process (or another FileLock of this one) holds it; ``.holder`` says who.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not _try_lock(fd):
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    other = os.read(fd, 500).decode("utf-8", "replace").strip()
                except OSError:
                    other = ""
                raise Locked(self.path, other)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, self.holder.encode("utf-8"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
