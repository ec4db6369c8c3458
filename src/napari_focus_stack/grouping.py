"""Split a folder or a list of image files into focus stacks.

A scan is many stacks in one folder. This module decides which files belong
together, in which order, and what looks wrong, before any pixel is read:

``openscan3``
    The current OpenScan firmware (OpenScan3): a project folder holds one
    folder per scan, ``scanNN/``, with photos ``scanNN_PPP_fsKK.jpg`` (scan
    NN, turntable position PPP, focus-stack frame KK); one stack per
    position, frames in fs order, named ``scanNN_PPP``. Give a scan folder or
    a project folder (all its ``scanNN/`` folders form one batch). Photos
    without ``_fsKK`` were taken without focus stacking: nothing to stack.
``openscan``
    Classic OpenScan names ``<name>_<pose>-<frame>.jpg`` (``Ella_0_12-3.jpg``
    is frame 3 of stack ``Ella_0_12``).
``number``
    Files in natural order cut into chunks of a fixed ``stack_size``; a
    trailing number in the name (``IMG_0042``) is used to spot missing files.
``folder``
    One stack per subfolder.
``regex``
    A user pattern with the named groups ``stack`` and (optionally)
    ``frame``, searched in each file name without its extension.
``single``
    All files form one stack.
``file``
    Every file is a stack on its own: a multi-page TIFF z-stack (or a
    microscope hyperstack), the usual microscope export.

``"auto"`` picks the mode that explains the files and says why. Frames are
ordered by frame number, then naturally (``2`` before ``10``); stacks are in
natural order of their names. Frames are never merged blindly: when the mode
was chosen automatically and one stack holds two files with one frame number
(several stacks taken for one), the plan's problem is *fatal*
(:attr:`Plan.fatal`): the batch refuses to run, and the message names the
files and a mode or ``--pattern`` that would fit.

Examples
--------
>>> plan = detect_stacks(["Ella_0_2-1.jpg", "Ella_0_1-2.jpg", "Ella_0_1-1.jpg", "Ella_0_2-2.jpg"])
>>> plan.mode, [s.name for s in plan.stacks], [len(s) for s in plan.stacks]
('openscan', ['Ella_0_1', 'Ella_0_2'], [2, 2])
"""
from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, StackError
from .io import IMAGE_EXTENSIONS, natural_sort_key, plane_count

__all__ = [
    "MODES",
    "OPENSCAN3_PATTERN",
    "OPENSCAN_PATTERN",
    "Plan",
    "Problem",
    "Stack",
    "detect_stacks",
    "path_key",
    "split_into_stacks",
]

#: Grouping modes accepted by :func:`detect_stacks`.
MODES: tuple[str, ...] = ("auto", "openscan3", "openscan", "number", "folder", "regex", "single", "file")

#: OpenScan3 photo names ``scanNN_PPP`` and ``scanNN_PPP_fsKK`` (the firmware
#: pads scan to 2, position to 3 and fs to 2 digits; more digits are accepted),
#: matched against the file name without extension.
OPENSCAN3_PATTERN = re.compile(r"^scan(?P<scan>\d+)_(?P<position>\d+)(?:_fs(?P<frame>\d+))?$", re.IGNORECASE)

#: Classic OpenScan ``<name>_<pose>-<frame>``, matched against the file name without extension.
OPENSCAN_PATTERN = re.compile(r"^(?P<stack>.+_\d+)-(?P<frame>\d+)$")

#: A scan folder of an OpenScan3 project.
_SCAN_FOLDER = re.compile(r"^scan\d+$", re.IGNORECASE)

#: Suggested when the files of one stack repeat frame numbers: stack = the name
#: before its last number (and an optional separator), frame = that number.
PREFIX_PATTERN = r"(?P<stack>.*?)[ _-]?(?P<frame>\d+)$"

_TRAILING_NUMBER = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")
_MAX_LISTED = 20  # files named in one problem message; the rest are counted


@dataclass(frozen=True)
class Stack:
    """One focus stack: a name and its frames in stack order.

    Attributes
    ----------
    name : str
        Used to name the outputs (``Ella_0_12`` -> ``Ella_0_12.jpg``).
    frames : tuple of Path
        Frame files, in focus order.
    numbers : tuple of int or None
        Frame number parsed from each name (None where there is none).
    scan, position : int or None
        OpenScan3 scan index and turntable position (None in other modes);
        outputs are named after them (``stacked_scan01_007.jpg``).
    """

    name: str
    frames: tuple[Path, ...]
    numbers: tuple[int | None, ...] = ()
    scan: int | None = None
    position: int | None = None

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Problem:
    """Something about the files that the user should know before stacking.

    Attributes
    ----------
    kind : str
        ``"unmatched"`` (fits no stack), ``"ignored"`` (not an image file),
        ``"short"`` / ``"long"`` (fewer / more frames than the others),
        ``"gap"`` (missing frame numbers), ``"duplicate"`` (two files with one
        frame number), ``"too_few"`` (a stack of fewer than 2 frames) or
        ``"empty"`` (no image files at all).
    message : str
        One line naming the files.
    files : tuple of Path
        The files concerned.
    stack : str or None
        The stack concerned, if any.
    fatal : bool
        Stacking this plan would give wrong results (e.g. frames of several
        stacks merged into one); a batch refuses to run it.
    """

    kind: str
    message: str
    files: tuple[Path, ...] = ()
    stack: str | None = None
    fatal: bool = False


@dataclass
class Plan:
    """Stacks found in a folder or file list, and what looks wrong.

    Attributes
    ----------
    stacks : list of Stack
        In natural order of their names.
    mode : str
        The grouping mode used (never ``"auto"``).
    reason : str
        Why this grouping: what matched, or why ``auto`` chose it.
    problems : list of Problem
        Unmatched and ignored files, short stacks, gaps... by name.
    root : Path or None
        The folder that was scanned (None for a file list).
    """

    stacks: list[Stack]
    mode: str
    reason: str
    problems: list[Problem] = field(default_factory=list)
    root: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every frame of every stack."""
        return [f for s in self.stacks for f in s.frames]

    @property
    def unmatched(self) -> list[Path]:
        """Image files that fit no stack."""
        return [f for p in self.problems if p.kind == "unmatched" for f in p.files]

    @property
    def fatal(self) -> list[Problem]:
        """Problems that forbid running this plan (see :attr:`Problem.fatal`)."""
        return [p for p in self.problems if p.fatal]

    def problems_for(self, stack: str) -> list[Problem]:
        """The problems that concern one stack."""
        return [p for p in self.problems if p.stack == stack]

    def summary(self, limit: int | None = 50) -> str:
        """Human-readable plan: mode and why, stacks, problems.

        Parameters
        ----------
        limit : int or None
            List at most this many stacks (None: all).
        """
        lines = [f"mode: {self.mode} ({self.reason})"]
        if self.mode == "file":  # each stack is one file holding its planes
            shown = self.stacks if limit is None else self.stacks[:limit]
            lines.append(f"{len(self.stacks)} stack(s), one per file" if self.stacks else "no stacks")
            lines.extend(f"  {s.name}: {s.frames[0].name}" for s in shown)
            if len(shown) < len(self.stacks):
                lines.append(f"  ... and {len(self.stacks) - len(shown)} more")
            lines.extend([f"{len(self.problems)} problem(s):"] if self.problems else [])
            lines.extend(f"  [{p.kind}] {p.message}" for p in self.problems)
            return "\n".join(lines)
        sizes = Counter(len(s) for s in self.stacks)
        size_text = ", ".join(f"{n} x {k} frames" for k, n in sorted(sizes.items(), reverse=True))
        lines.append(f"{len(self.stacks)} stack(s): {size_text}" if self.stacks else "no stacks")
        shown = self.stacks if limit is None else self.stacks[:limit]
        for s in shown:
            first, last = s.frames[0].name, s.frames[-1].name
            span = first if len(s) == 1 else f"{first} .. {last}"
            lines.append(f"  {s.name}: {len(s)} frame{'s' if len(s) != 1 else ''} ({span})")
        if len(shown) < len(self.stacks):
            lines.append(f"  ... and {len(self.stacks) - len(shown)} more")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines.extend(f"  [{p.kind}{', fatal' if p.fatal else ''}] {p.message}" for p in self.problems)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-friendly form (paths as strings)."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "root": None if self.root is None else str(self.root),
            "stacks": [
                {
                    "name": s.name,
                    "frames": [str(f) for f in s.frames],
                    **({"scan": s.scan, "position": s.position} if s.scan is not None else {}),
                }
                for s in self.stacks
            ],
            "problems": [
                {
                    "kind": p.kind,
                    "stack": p.stack,
                    "message": p.message,
                    "files": [str(f) for f in p.files],
                    "fatal": p.fatal,
                }
                for p in self.problems
            ],
        }


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def detect_stacks(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    mode: str = "auto",
    stack_size: int | None = None,
    pattern: str | None = None,
    exclude: Iterable[str | os.PathLike] = (),
) -> Plan:
    """Find the focus stacks in a folder or a list of files.

    Parameters
    ----------
    inputs : path-like or iterable of path-like
        A folder (its image files; its subfolders for ``mode="folder"``; its
        ``scanNN/`` folders for an OpenScan3 project) or a list of image
        files.
    mode : {"auto", "openscan3", "openscan", "number", "folder", "regex", "single", "file"}
        How files are grouped (see the module docstring). ``"auto"`` uses
        ``regex`` when `pattern` is given, else OpenScan3 or classic OpenScan
        names when most files have them (for a folder without images: when
        it is an OpenScan3 project of ``scanNN/`` folders), else subfolders
        when the folder holds no images but its subfolders do, else
        ``number`` when `stack_size` is given, else one stack per file when
        most files are multi-page TIFF z-stacks (their headers are read),
        else one stack of all files.
    stack_size : int, optional
        Frames per stack: required by ``number``; elsewhere stacks of another
        size are reported.
    pattern : str, optional
        Regular expression for ``regex``, with the named group ``stack`` and
        optionally ``frame``, searched in the file name without extension,
        e.g. ``r"(?P<stack>.+)_z(?P<frame>\\d+)"``.
    exclude : iterable of path-like
        Files and folders to leave out silently (e.g. earlier results, or
        the output folder inside the scan folder).

    Returns
    -------
    Plan
        Stacks, the mode used and why, and problems by file name. When the
        mode was chosen automatically, frame numbers that repeat within a
        stack make a fatal problem (:attr:`Plan.fatal`) whose message names
        the files and a grouping that would fit.

    Raises
    ------
    InputError
        The folder does not exist or cannot be listed, the pattern is not a
        valid regular expression, or a mode's requirement is missing.

    Examples
    --------
    >>> plan = detect_stacks(["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.jpg"], stack_size=2)
    >>> plan.mode, [s.name for s in plan.stacks]
    ('number', ['IMG_1-2', 'IMG_3-4'])
    """
    if mode not in MODES:
        raise InputError(f"unknown grouping mode {mode!r}; use one of {', '.join(MODES)}")
    if stack_size is not None and (int(stack_size) != stack_size or stack_size < 1):
        raise InputError(f"stack size must be a positive whole number, got {stack_size!r}")
    regex = _compile(pattern) if pattern is not None else None
    if mode == "regex" and regex is None:
        raise InputError("regex mode needs a pattern with a named group 'stack', e.g. '(?P<stack>.+)_z(?P<frame>\\d+)'")
    if mode == "number" and stack_size is None:
        raise InputError("number mode needs a stack size (--stack-size N): how many frames each stack has")

    skip = {path_key(p) for p in exclude}
    root, files, folders, ignored = _collect(inputs, skip)
    problems: list[Problem] = []
    if ignored:
        problems.append(
            Problem("ignored", f"{len(ignored)} non-image file(s) ignored: {_names(ignored)}", tuple(ignored))
        )
    if not files and not any(folders.values()):
        where = f"{root}" if root is not None else "the given file list"
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        problems.append(Problem("empty", f"no image files ({exts}) in {where}"))
        return Plan([], "single" if mode == "auto" else mode, "nothing to group", problems, root)

    auto = mode == "auto"
    if auto:
        mode, reason = _choose_mode(files, folders, stack_size, regex, root)
    else:
        reason = ""

    if mode == "folder":
        stacks, unmatched, why = _by_folder(files, folders, root)
    elif mode == "openscan3":
        stacks, unmatched, why, singles = _by_openscan3(_openscan3_files(files, folders, root))
        problems.extend(singles)
    elif mode == "openscan":
        stacks, unmatched, why = _by_regex(files, OPENSCAN_PATTERN, "OpenScan names <name>_<pose>-<frame>")
    elif mode == "regex":
        stacks, unmatched, why = _by_regex(files, regex, f"the pattern {regex.pattern!r}")
    elif mode == "number":
        stacks, unmatched, why, number_problems = _by_number(files, stack_size)
        problems.extend(number_problems)
    elif mode == "file":
        stacks, unmatched, why = _by_file(files)
    else:
        stacks, unmatched, why = _single(files, root)
    reason = reason or why

    if unmatched:
        problems.append(
            Problem(
                "unmatched",
                f"{len(unmatched)} file(s) fit no stack and are left out: {_names(unmatched)}",
                tuple(unmatched),
            )
        )
    if mode == "file":  # a stack is one file: its frames are its pages
        return Plan(stacks, mode, reason, problems, root)
    if mode != "number":
        problems.extend(_gap_problems(stacks, auto, [f for s in stacks for f in s.frames] + list(unmatched)))
    problems.extend(_size_problems(stacks, stack_size, mode))
    return Plan(stacks, mode, reason, problems, root)


def split_into_stacks(paths: Sequence[str | os.PathLike], stack_size: int | None = None) -> list[list]:
    """Group image files into stacks.

    Parameters
    ----------
    paths : sequence of path-like
        Image files, in any order.
    stack_size : int, optional
        Frames per stack. With OpenScan names it is checked; otherwise the
        files, in natural order, are cut into chunks of this size.

    Returns
    -------
    list of list
        The items of `paths` (same objects), one list per stack. OpenScan3
        names (``scanNN_PPP_fsKK``) give one stack per scan and position,
        frames in fs order; classic OpenScan names (``<name>_<pose>-<frame>``)
        one stack per pose, frames in frame-number order; stacks in natural
        order. Otherwise the files in
        natural order are cut into `stack_size` chunks, or form one stack
        when `stack_size` is None.

    Raises
    ------
    StackError
        The files do not divide into stacks of `stack_size` (the message says
        how many are left over), or an OpenScan stack has another size.

    Examples
    --------
    >>> split_into_stacks(["a_1-2.jpg", "a_2-1.jpg", "a_1-1.jpg", "a_2-2.jpg"])
    [['a_1-1.jpg', 'a_1-2.jpg'], ['a_2-1.jpg', 'a_2-2.jpg']]
    >>> split_into_stacks(["f3.png", "f10.png", "f1.png", "f2.png"], stack_size=2)
    [['f1.png', 'f2.png'], ['f3.png', 'f10.png']]
    """
    items = list(paths)
    if stack_size is not None and (int(stack_size) != stack_size or stack_size < 1):
        raise StackError(f"stack size must be a positive whole number, got {stack_size!r}")
    by_key = {path_key(p): p for p in items}
    stacks = None
    if items and all(OPENSCAN3_PATTERN.match(Path(p).stem) for p in items):
        stacks, unmatched, _, lone = _by_openscan3([Path(p) for p in items])
        if unmatched or lone:
            stacks = None  # photos without _fsKK: not focus stacks
    elif items and all(OPENSCAN_PATTERN.match(Path(p).stem) for p in items):
        stacks, _, _ = _by_regex([Path(p) for p in items], OPENSCAN_PATTERN, "")
    if stacks is not None:
        if stack_size is not None:
            odd = [s for s in stacks if len(s) != stack_size]
            if odd:
                listed = ", ".join(f"{s.name} ({len(s)})" for s in odd[:_MAX_LISTED])
                raise StackError(
                    f"{len(odd)} OpenScan stack(s) do not have {stack_size} frames: {listed}. "
                    "Check for missing or extra files, or leave the stack size out."
                )
        return [[by_key[path_key(f)] for f in s.frames] for s in stacks]
    ordered = sorted(items, key=natural_sort_key)
    if stack_size is None:
        return [ordered] if ordered else []
    left = len(ordered) % stack_size
    if left:
        raise StackError(
            f"{len(ordered)} files do not divide into stacks of {stack_size}: {left} file(s) are left over "
            f"({_names([Path(p) for p in ordered[-left:]])}). Check for missing or extra files, "
            "or give the right stack size."
        )
    return [ordered[i : i + stack_size] for i in range(0, len(ordered), stack_size)]


# ---------------------------------------------------------------------------
# collecting files
# ---------------------------------------------------------------------------


def path_key(p: str | os.PathLike) -> str:
    """A path's identity for comparisons: absolute and, where the file system ignores case, case-folded."""
    return os.path.normcase(os.path.abspath(os.fspath(p)))


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def _collect(inputs, skip: set[str]) -> tuple[Path | None, list[Path], dict[Path, list[Path]], list[Path]]:
    """(root, top-level image files, {subfolder: image files}, ignored non-images)."""
    if isinstance(inputs, (str, os.PathLike)):
        root = Path(inputs).expanduser()
        if not root.exists():
            raise InputError(f"{root} not found. Check the path (and that the drive is mounted).")
        if root.is_dir():
            files, ignored = _list_folder(root, skip)
            folders: dict[Path, list[Path]] = {}
            for sub, sub_files in _walk_subfolders(root, skip):
                folders[sub] = sub_files
            return root, files, folders, ignored
        inputs = [root]
    files, ignored = [], []
    for item in inputs:
        p = Path(item).expanduser()
        if path_key(p) in skip:
            continue
        if p.is_dir():
            raise InputError(f"{p} is a folder; give a folder on its own or a list of image files")
        (files if _is_image(p) else ignored).append(p)
    folders = defaultdict(list)
    for f in files:
        folders[f.parent].append(f)
    return None, files, dict(folders), ignored


def _list_folder(folder: Path, skip: set[str]) -> tuple[list[Path], list[Path]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: natural_sort_key(e.name))
    except OSError as exc:
        raise InputError(f"{folder} cannot be listed ({exc.strerror or exc}).") from exc
    files, ignored = [], []
    for e in entries:
        if e.name.startswith(".") or path_key(e.path) in skip:
            continue
        try:
            is_file = e.is_file()
        except OSError:
            is_file = False
        if is_file:
            (files if _is_image(Path(e.name)) else ignored).append(Path(e.path))
    return files, ignored


def _walk_subfolders(root: Path, skip: set[str]):
    """(subfolder, its image files) for every non-hidden folder below `root` with images."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".") and path_key(os.path.join(dirpath, d)) not in skip),
            key=natural_sort_key,
        )
        if Path(dirpath) == root:
            continue
        files, _ = _list_folder(Path(dirpath), skip)
        if files:
            yield Path(dirpath), files


# ---------------------------------------------------------------------------
# modes
# ---------------------------------------------------------------------------


def _compile(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"the stack pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if "stack" not in regex.groupindex:
        raise InputError(
            f"the stack pattern {pattern!r} needs a named group 'stack' (and optionally 'frame'), "
            "e.g. '(?P<stack>.+)_z(?P<frame>\\d+)'"
        )
    return regex


def _scan_folders(folders: dict[Path, list[Path]], root: Path | None) -> list[Path]:
    """The ``scanNN`` folders directly inside an OpenScan3 project folder `root`."""
    if root is None:
        return []
    return [d for d in folders if d.parent == root and _SCAN_FOLDER.match(d.name)]


def _openscan3_files(files: list[Path], folders: dict[Path, list[Path]], root: Path | None) -> list[Path]:
    """The photos of a scan folder (its own files) or of a project (the files of its scan folders)."""
    if files:
        return files
    return [f for d in _scan_folders(folders, root) for f in folders[d]]


def _choose_mode(
    files: list[Path], folders: dict, stack_size: int | None, regex, root: Path | None = None
) -> tuple[str, str]:
    n = len(files)
    if regex is not None:
        return "regex", f"auto: a pattern was given ({regex.pattern!r})"
    if n:
        hits = sum(1 for f in files if OPENSCAN3_PATTERN.match(f.stem))
        if hits * 2 > n:
            rest = f"; the other {n - hits} are listed as unmatched" if hits < n else ""
            return "openscan3", f"auto: {hits} of {n} files have OpenScan3 names scanNN_PPP_fsKK{rest}"
    else:
        scans = _scan_folders(folders, root)
        photos = [f for d in scans for f in folders[d]]
        if photos and sum(1 for f in photos if OPENSCAN3_PATTERN.match(f.stem)) * 2 > len(photos):
            listed = ", ".join(d.name for d in sorted(scans, key=lambda d: natural_sort_key(d.name))[:_MAX_LISTED])
            other = [d.relative_to(root).as_posix() for d in folders if d not in scans]
            note = f"; subfolder(s) ignored: {', '.join(other[:_MAX_LISTED])}" if other else ""
            return "openscan3", (
                f"auto: an OpenScan3 project of {len(scans)} scan folder(s) ({listed}) "
                f"with names scanNN_PPP_fsKK{note}"
            )
    if n:
        hits = sum(1 for f in files if OPENSCAN_PATTERN.match(f.stem))
        if hits == n:
            return "openscan", f"auto: all {n} files have OpenScan names <name>_<pose>-<frame>"
        if hits * 2 > n:
            return "openscan", (
                f"auto: {hits} of {n} files have OpenScan names <name>_<pose>-<frame>; "
                f"the other {n - hits} are listed as unmatched"
            )
    if not n and folders:
        return "folder", f"auto: no images at the top, {len(folders)} subfolder(s) with images, one stack each"
    if stack_size is not None:
        return "number", f"auto: no OpenScan names; {n} files in natural order cut into stacks of {stack_size}"
    if n and len(folders) > 1 and all(f.parent in folders for f in files):
        return "folder", f"auto: the files come from {len(folders)} folders, one stack each"
    stacks_in_files = _z_stack_files(files)
    if n and len(stacks_in_files) * 2 > n:
        others = n - len(stacks_in_files)
        note = f"; the other {others} are listed as unmatched" if others else ""
        return "file", f"auto: {len(stacks_in_files)} of {n} files are multi-page TIFF z-stacks, one stack each{note}"
    note = f"; {len(folders)} subfolder(s) ignored (use mode 'folder')" if folders else ""
    return "single", f"auto: no OpenScan names and no stack size, so all {n} files form one stack{note}"


def _frame_number(text: str | None) -> int | None:
    if text is None:
        return None
    m = _TRAILING_NUMBER.match(text)
    return int(m.group("number")) if m else None


def _by_regex(files: list[Path], regex: re.Pattern, what: str):
    groups: dict[str, list[tuple[Path, str | None]]] = defaultdict(list)
    unmatched = []
    for f in files:
        m = regex.search(f.stem)
        if m is None or not m.group("stack"):
            unmatched.append(f)
            continue
        frame = m.groupdict().get("frame")
        groups[m.group("stack")].append((f, frame))
    stacks = []
    for name in sorted(groups, key=natural_sort_key):
        members = sorted(
            groups[name], key=lambda fr: (natural_sort_key(fr[1] or ""), natural_sort_key(fr[0].name))
        )
        stacks.append(
            Stack(_safe_name(name), tuple(f for f, _ in members), tuple(_frame_number(fr) for _, fr in members))
        )
    matched = len(files) - len(unmatched)
    return stacks, unmatched, f"{matched} of {len(files)} files matched {what}"


def _by_openscan3(files: list[Path]):
    """One stack per (folder, scan, position), frames in fs order; photos without ``_fsKK`` stack nothing."""
    groups: dict[tuple[Path, int, int], list[tuple[int, Path]]] = defaultdict(list)
    singles: dict[tuple[Path, int, int], list[Path]] = defaultdict(list)
    unmatched = []
    for f in files:
        m = OPENSCAN3_PATTERN.match(f.stem)
        if m is None:
            unmatched.append(f)
            continue
        key = (f.parent, int(m.group("scan")), int(m.group("position")))
        if m.group("frame") is None:
            singles[key].append(f)
        else:
            groups[key].append((int(m.group("frame")), f))
    stacks = []
    for folder, scan, position in sorted(groups, key=lambda k: (natural_sort_key(str(k[0])), k[1], k[2])):
        members = sorted(groups[folder, scan, position], key=lambda nf: (nf[0], natural_sort_key(nf[1].name)))
        stacks.append(
            Stack(
                f"scan{scan:02d}_{position:03d}",
                tuple(f for _, f in members),
                tuple(n for n, _ in members),
                scan=scan,
                position=position,
            )
        )
    # a photo without _fsKK beside a focus stack of its position is not one of its frames
    unmatched += [f for k, fs in singles.items() if k in groups for f in fs]
    lone = sorted((f for k, fs in singles.items() if k not in groups for f in fs), key=natural_sort_key)
    problems = []
    if lone:
        problems.append(
            Problem(
                "too_few",
                f"{len(lone)} photo(s) have no focus-stack index _fsKK (taken without focus stacking), "
                f"so there is nothing to stack: {_names(lone)}",
                tuple(lone),
            )
        )
    matched = len(files) - len(unmatched) - len(lone)
    why = f"{matched} of {len(files)} files matched OpenScan3 names scanNN_PPP_fsKK"
    return stacks, unmatched, why, problems


def _by_folder(files: list[Path], folders: dict[Path, list[Path]], root: Path | None):
    base = root if root is not None else Path(os.path.commonpath([str(p) for p in folders])) if folders else None
    stacks = []
    for folder in sorted(folders, key=lambda p: natural_sort_key(str(p))):
        members = sorted(folders[folder], key=natural_sort_key)
        try:
            rel = folder.relative_to(base) if base is not None else Path(folder.name)
        except ValueError:
            rel = Path(folder.name)
        name = "_".join(rel.parts) or folder.name
        stacks.append(Stack(_safe_name(name), tuple(members), tuple(_frame_number(f.stem) for f in members)))
    in_folders = {path_key(f) for fs in folders.values() for f in fs}
    unmatched = [f for f in files if path_key(f) not in in_folders]
    return stacks, unmatched, f"one stack per subfolder ({len(stacks)} folders)"


def _by_number(files: list[Path], stack_size: int):
    ordered = sorted(files, key=natural_sort_key)
    problems = _sequence_gaps(ordered)
    stacks = []
    for i in range(0, len(ordered), stack_size):
        members = ordered[i : i + stack_size]
        stacks.append(
            Stack(_number_name(members), tuple(members), tuple(_frame_number(f.stem) for f in members))
        )
    left = len(ordered) % stack_size
    if left:
        last = stacks[-1]
        problems.append(
            Problem(
                "short",
                f"{len(ordered)} files do not divide into stacks of {stack_size}: {left} file(s) are left "
                f"over and form the short stack {last.name} ({_names(last.frames)})",
                last.frames,
                last.name,
            )
        )
    why = f"{len(ordered)} files in natural order cut into stacks of {stack_size}"
    return stacks, [], why, problems


def _z_stack_files(files: list[Path]) -> list[Path]:
    """The files holding a z-stack each: TIFFs of 2 or more planes (only TIFF headers are read)."""
    return [f for f in files if f.suffix.lower() in (".tif", ".tiff") and plane_count(f) > 1]


def _by_file(files: list[Path]):
    stacks_in_files = _z_stack_files(files)
    keys = {path_key(f) for f in stacks_in_files}
    unmatched = [f for f in files if path_key(f) not in keys]
    stacks = [Stack(_safe_name(f.stem), (f,), (None,)) for f in sorted(stacks_in_files, key=natural_sort_key)]
    return stacks, unmatched, f"{len(stacks)} multi-page TIFF z-stack(s), one stack per file"


def _single(files: list[Path], root: Path | None):
    ordered = sorted(files, key=natural_sort_key)
    name = root.name if root is not None and root.name else (ordered[0].parent.name or "stack")
    stack = Stack(_safe_name(name), tuple(ordered), tuple(_frame_number(f.stem) for f in ordered))
    return [stack], [], f"all {len(ordered)} files form one stack"


def _number_name(members: list[Path]) -> str:
    first, last = members[0].stem, members[-1].stem
    if len(members) == 1:
        return _safe_name(first)
    m = _TRAILING_NUMBER.match(last)
    return _safe_name(f"{first}-{m.group('number') if m else last}")


def _safe_name(name: str) -> str:
    """A stack name usable as a file name on every platform."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
    return cleaned or "stack"


# ---------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------


def _names(files: Sequence[Path]) -> str:
    names = [f.name for f in files[:_MAX_LISTED]]
    more = f" and {len(files) - _MAX_LISTED} more" if len(files) > _MAX_LISTED else ""
    return ", ".join(names) + more


def _duplicates(stack: Stack) -> tuple[list[int], tuple[Path, ...]]:
    """Frame numbers that occur more than once in `stack`, and their files."""
    counts = Counter(n for n in stack.numbers if n is not None)
    dups = sorted(n for n, c in counts.items() if c > 1)
    return dups, tuple(f for n, f in zip(stack.numbers, stack.frames, strict=False) if n in dups)


def _suggest_grouping(files: list[Path]) -> str | None:
    """A mode or ``--pattern`` that groups `files` into stacks of 2+ frames without repeated numbers."""
    candidates = [  # (files from several folders are grouped by folder in auto mode already)
        ("--mode openscan3", lambda: _by_openscan3(files)[:2]),
        ("--mode openscan", lambda: _by_regex(files, OPENSCAN_PATTERN, "")[:2]),
        (f"--pattern '{PREFIX_PATTERN}'", lambda: _by_regex(files, re.compile(PREFIX_PATTERN), "")[:2]),
    ]
    for option, group in candidates:
        stacks, unmatched = group()
        if (
            not unmatched
            and len(stacks) > 1
            and all(len(s) > 1 for s in stacks)
            and not any(_duplicates(s)[0] for s in stacks)
        ):
            sizes = Counter(len(s) for s in stacks)
            size_text = ", ".join(f"{n} x {k} frames" for k, n in sorted(sizes.items(), reverse=True))
            return f"{option} (gives {len(stacks)} stacks: {size_text})"
    return None


def _gap_problems(stacks: list[Stack], auto: bool = False, files: Sequence[Path] = ()) -> list[Problem]:
    """Repeated and missing frame numbers; repeats are fatal when the mode was chosen automatically."""
    problems = []
    hint: list[str] = []  # computed once, for the first stack with repeats
    for s in stacks:
        numbered = [(n, f) for n, f in zip(s.numbers, s.frames, strict=False) if n is not None]
        if len(numbered) < 2:
            continue
        dups, files_dup = _duplicates(s)
        if dups:
            text = f"{s.name}: frame number(s) {', '.join(map(str, dups))} appear more than once: {_names(files_dup)}"
            if auto:
                stems = Counter(f.stem.lower() for f in files_dup)
                if all(c > 1 for c in stems.values()):
                    text += "; the same frames are there twice (other extension or folder): move one copy of each out"
                else:
                    if not hint:
                        hint.append(_suggest_grouping(list(files)) or "")
                    fit = (
                        f"try {hint[0]}" if hint[0]
                        else "give --pattern with the named groups 'stack' and 'frame', or --mode number --stack-size N"
                    )
                    text += f"; these are frames of several stacks, not one: {fit}"
                text += ". Nothing is stacked until the grouping is fixed."
            problems.append(Problem("duplicate", text, files_dup, s.name, fatal=auto))
        missing = []
        for (a, fa), (b, fb) in zip(numbered, numbered[1:], strict=False):
            if b - a > 1:
                gap = f"{a + 1}" if b - a == 2 else f"{a + 1}-{b - 1}"
                missing.append((gap, fa, fb))
        if missing:
            text = "; ".join(f"frame {g} missing between {fa.name} and {fb.name}" for g, fa, fb in missing)
            files = tuple(f for _, fa, fb in missing for f in (fa, fb))
            problems.append(Problem("gap", f"{s.name}: {text}", files, s.name))
    return problems


def _sequence_gaps(ordered: list[Path]) -> list[Problem]:
    """Missing numbers in a run of files with one prefix (number mode shifts every later stack)."""
    problems = []
    parsed = [(f, _TRAILING_NUMBER.match(f.stem)) for f in ordered]
    for (fa, ma), (fb, mb) in zip(parsed, parsed[1:], strict=False):
        if not (ma and mb) or ma.group("prefix") != mb.group("prefix") or fa.parent != fb.parent:
            continue
        a, b = int(ma.group("number")), int(mb.group("number"))
        if b - a > 1:
            count = b - a - 1
            problems.append(
                Problem(
                    "gap",
                    f"{count} file(s) missing between {fa.name} and {fb.name}; every stack after "
                    f"{fa.name} is shifted by {count} frame(s)",
                    (fa, fb),
                )
            )
    return problems


def _size_problems(stacks: list[Stack], stack_size: int | None, mode: str) -> list[Problem]:
    problems = []
    for s in stacks:
        if len(s) < 2:
            problems.append(
                Problem(
                    "too_few", f"{s.name} has {len(s)} frame ({s.frames[0].name}); a stack needs 2 or more",
                    s.frames, s.name,
                )
            )
    if mode == "number":  # the remainder was reported already
        return problems
    if stack_size is not None:
        expected = stack_size
        basis = f"{stack_size} expected (stack size)"
    else:
        sizes = Counter(len(s) for s in stacks)
        if len(sizes) < 2:
            return problems
        # the most common size; ties go to the larger, since frames go missing more often than they appear
        expected = max(sizes, key=lambda k: (sizes[k], k))
        basis = f"{expected} in most stacks"
    for s in stacks:
        if len(s) == expected or len(s) < 2:
            continue
        kind = "short" if len(s) < expected else "long"
        problems.append(Problem(kind, f"{s.name} has {len(s)} frames, {basis}: {_names(s.frames)}", s.frames, s.name))
    return problems
