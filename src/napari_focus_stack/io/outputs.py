"""A run's outputs: all checked before any work, all written or none.

A stack can take minutes; an output problem found after the work (a
missing folder, an unknown extension, a read-only folder, two outputs that
are one file, an output that is an input) wastes it, and a failure between
two outputs leaves a fused image without its depth map. So the command line
and the batch check every output with :func:`check_outputs` before reading
the first frame, and write them with :func:`write_outputs`: each output is
written (atomically, see :func:`~napari_focus_stack.io.write_image`) to a
hidden staging name beside it, and only when all are complete are they
renamed into place. A failure or an interruption removes the staged files
and leaves earlier files of the same names as they were.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .atomic import output_error, refuse_write_protected, remove_stale_temps, temp_name
from .encoders import write_image
from .mesh import MESH_EXTENSIONS, Mesh, series_paths, write_mesh
from .paths import IMAGE_EXTENSIONS

__all__ = [
    "MAP_KINDS", "Output", "check_outputs", "same_file", "staged_outputs", "write_mesh_series", "write_outputs",
]

#: Output kinds that are float32 maps and need a TIFF name.
MAP_KINDS = ("depth", "confidence")
_MAP_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Output:
    """One file a run writes.

    Attributes
    ----------
    kind : {"image", "depth", "confidence", "mesh"}
        What goes into it (``"mesh"``: the height map as a PLY, STL or OBJ
        mesh, see :mod:`.mesh`).
    path : Path
    label : str
        How the user named it, for messages (``"-o"``, ``"--depth-map"``).
    index : int, optional
        Of a series of outputs of one kind (a mesh per time point): which one.
    """

    kind: str
    path: Path
    label: str = ""
    index: int | None = None

    @property
    def named(self) -> str:
        return f"{self.label} {self.path}" if self.label else str(self.path)

    @property
    def key(self) -> str:
        """The output's key among a run's outputs: its kind, and its index in a series (``"mesh 2"``)."""
        return self.kind if self.index is None else f"{self.kind} {self.index}"


def _real(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.path.expanduser(os.fspath(path))))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether `a` and `b` name one file: the same path once symbolic links and ``..`` are resolved, or one inode.

    Works for files that do not exist yet (then only the resolved paths are compared).

    Examples
    --------
    >>> same_file("out/x.tif", "out/../out/x.tif")
    True
    """
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _check_folder(out: Output) -> None:
    parent = out.path.parent
    if not parent.exists():
        raise OutputError(
            f"cannot write {out.named}: the folder {parent} does not exist. "
            "Create it first or choose another output folder."
        )
    if not parent.is_dir():
        raise OutputError(f"cannot write {out.named}: {parent} is not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test.", delete=True):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write {out.named}: the folder {parent} is not writable ({exc.strerror or exc}). "
            "Choose a folder you can write to."
        ) from exc


def check_outputs(outputs: Sequence[Output], inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Check that every output can be written, before any work.

    Parameters
    ----------
    outputs : sequence of Output
    inputs : iterable of path-like
        The run's input files: never overwritten.

    Raises
    ------
    OutputError
        An unknown extension (maps need .tif/.tiff), a missing or read-only
        folder, an existing write-protected file (``chmod 444``), an output
        that is a folder or an input, or two outputs that are one file (also
        through another spelling or a symbolic link).
        Nothing is written (a test file in each folder is removed again).
    """
    for out in outputs:
        suffix = out.path.suffix.lower()
        if out.path.is_dir():
            raise OutputError(f"cannot write {out.named}: it is a folder. Give a file name.")
        if out.kind in MAP_KINDS:
            if suffix not in _MAP_SUFFIXES:
                raise OutputError(
                    f"cannot write {out.named}: depth and confidence maps are float32 and need a .tif/.tiff name."
                )
        elif out.kind == "mesh":
            if suffix not in MESH_EXTENSIONS:
                raise OutputError(
                    f"cannot write {out.named}: unknown mesh type {out.path.suffix!r}. "
                    "Use .ply (with colours), .stl or .obj."
                )
        elif suffix not in IMAGE_EXTENSIONS:
            raise OutputError(
                f"cannot write {out.named}: unknown image type {out.path.suffix!r}. "
                "Use .jpg, .png, .tif, .bmp or .webp."
            )
    for i, a in enumerate(outputs):
        for b in outputs[i + 1 :]:
            if same_file(a.path, b.path):
                raise OutputError(
                    f"{a.named} and {b.named} are the same file; give each output its own name."
                )
    inputs = [Path(p) for p in inputs if p is not None]
    real_inputs = {_real(p): p for p in inputs}
    for out in outputs:
        hit = real_inputs.get(_real(out.path))
        if hit is None and out.path.exists():
            hit = next((p for p in inputs if same_file(out.path, p)), None)  # hard links
        if hit is not None:
            raise OutputError(f"refusing to overwrite input file {hit} ({out.named}); choose another output name.")
    for out in outputs:
        _check_folder(out)
        refuse_write_protected(out.path, out.label)


@contextlib.contextmanager
def staged_outputs(outputs: Sequence[Output]) -> Iterator[dict[str, Path]]:
    """Write outputs all or none: yields a staging path per output (by :attr:`Output.key`), renamed together.

    Whatever the block writes to the staging paths (each a hidden name
    beside its target) is renamed onto the targets when the block completes,
    keeping the permissions of files it replaces; when the block raises, the
    staged files are removed and the targets are left as they were.

    Raises
    ------
    OutputError
        A rename failed; the outputs renamed before it stay in place.
    """
    stages = {}
    for out in outputs:
        remove_stale_temps(out.path)  # what a killed run left (staging files among them)
        # a name of this run's own: two runs writing one output never take each other's staged file
        stages[out.key] = temp_name(out.path)
    try:
        try:
            yield stages
        except OutputError as exc:  # name the output, not its hidden staging file
            text = str(exc)
            for out in outputs:
                text = text.replace(str(stages[out.key]), str(out.path))
            if text == str(exc):
                raise
            raise OutputError(text) from exc
        pending = [(stages[out.key], out.path) for out in outputs]
        for _, final in pending:  # made read-only while the work ran: none is replaced
            refuse_write_protected(final)
        for stage, final in pending:
            try:  # a replaced file keeps its permissions, as with write_image
                os.chmod(stage, final.stat().st_mode & 0o7777)
            except OSError:
                pass
        while pending:
            stage, final = pending[0]
            try:
                os.replace(stage, final)
            except OSError as exc:
                raise output_error(final, exc) from exc
            pending.pop(0)
    finally:
        for stage in stages.values():
            try:
                stage.unlink()
            except OSError:
                pass


def write_outputs(
    outputs: Sequence[Output],
    data: Mapping[str, Any],
    *,
    quality: int = 95,
    exif: bytes | None = None,
    icc: bytes | None = None,
    bit_depth: int | None = None,
    protect: Iterable[str | os.PathLike] = (),
) -> dict[str, int]:
    """Write every output, or none: staged beside each target, then renamed into place together.

    Parameters
    ----------
    outputs : sequence of Output
    data : mapping
        The array for each output kind (``{"image": ..., "depth": ...}``);
        for ``"mesh"``, a :class:`~napari_focus_stack.io.mesh.Mesh`.
    quality, exif, icc, bit_depth
        For the ``"image"`` output, as in :func:`~napari_focus_stack.io.write_image`
        (`bit_depth` is ignored for JPEG).
    protect : iterable of path-like
        Input files that must not be overwritten.

    Returns
    -------
    dict
        The size in bytes of each output kind written.

    Raises
    ------
    OutputError
        An output could not be written; no output was changed.
    """
    protect = list(protect)
    with staged_outputs(outputs) as stages:
        for out in outputs:
            if out.kind == "image":
                jpeg = out.path.suffix.lower() in (".jpg", ".jpeg")
                write_image(
                    stages[out.key], data[out.kind], quality=quality, exif=exif, icc=icc, protect=protect,
                    bit_depth=None if jpeg else bit_depth,
                )
            elif out.kind == "mesh":
                write_mesh(stages[out.key], data[out.kind], protect=protect)
            else:
                write_image(stages[out.key], data[out.kind], protect=protect)
    return {out.kind: out.path.stat().st_size for out in outputs}


def write_mesh_series(
    path: str | os.PathLike, meshes: Sequence[Mesh | Callable[[], Mesh]], *,
    protect: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Write one mesh to `path`, or a series as numbered files (:func:`~.mesh.series_paths`), all or none.

    Every file is checked before any is written (:func:`check_outputs`, the
    `protect` files never overwritten). A mesh may be given as a callable
    that makes it, so that one mesh at a time is held.
    """
    protect = list(protect)
    paths = series_paths(Path(path), len(meshes))
    outputs = [Output("mesh", p, index=k if len(paths) > 1 else None) for k, p in enumerate(paths)]
    check_outputs(outputs, inputs=protect)
    with staged_outputs(outputs) as stages:
        for out, mesh in zip(outputs, meshes, strict=True):
            write_mesh(stages[out.key], mesh() if callable(mesh) else mesh, protect=protect)
    return paths
