"""napari writer: image layers to TIFF, PNG or JPEG, atomically, metadata kept.

- 2-D images (fused results, single frames) go through
  :func:`napari_focus_stack.io.write_image`: 16-bit is kept in TIFF and PNG,
  JPEG is written at quality 95, and the EXIF and ICC profile found in
  ``layer.metadata`` (copied there by the reader and by the widget from the
  source stack) are embedded.
- Depth and confidence maps are float32: they are written as float32 TIFF
  unchanged; PNG and JPEG would lose them, so those are refused with a
  message saying to use ``.tif``.
- Stacks (``(Z, Y, X)`` or ``(Z, Y, X, 3)``) become multi-page TIFFs.

Every file is written to a hidden temporary file beside the target and
renamed over it when complete, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..io import write_image as _write_image

__all__ = ["write_image", "JPEG_QUALITY"]

JPEG_QUALITY = 95
_TIFF = (".tif", ".tiff")


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write one napari image layer (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        Target file; its extension (``.tif``, ``.tiff``, ``.png``, ``.jpg``,
        ``.jpeg``) picks the format.
    data : array-like
        The layer data (NumPy or dask).
    meta : dict
        The layer attributes napari passes (``rgb``, ``metadata``...).

    Returns
    -------
    list of str
        The written file.

    Raises
    ------
    OutputError
        The format cannot hold the data (a float map or a stack as PNG/JPEG)
        or the file could not be written; the message says what to do.
    """
    target = Path(path)
    ext = target.suffix.lower()
    metadata = meta.get("metadata") or {}
    rgb = bool(meta.get("rgb", False))
    a = np.asarray(data)
    frame_ndim = 3 if rgb else 2
    if a.ndim > frame_ndim:
        if ext not in _TIFF:
            raise OutputError(
                f"cannot write {target}: {meta.get('name', 'the layer')!r} is a stack of "
                f"{a.shape[0]} frames; save it as .tif (multi-page) or pick one frame."
            )
        _write_tiff_stack(target, a, rgb, metadata.get("icc"))
        return [str(target)]
    if a.dtype.kind == "f" and ext not in _TIFF:
        raise OutputError(
            f"cannot write {target}: {meta.get('name', 'the layer')!r} holds float values "
            "(a depth or confidence map?) that PNG and JPEG would round to 8 bits; "
            "save it as .tif to keep them as float32."
        )
    if a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    _write_image(
        target,
        a,
        quality=JPEG_QUALITY,
        exif=metadata.get("exif"),
        icc=metadata.get("icc"),
        protect=[p for p in metadata.get("paths", []) or [] if p],
    )
    return [str(target)]


def _write_tiff_stack(target: Path, stack: np.ndarray, rgb: bool, icc: bytes | None) -> None:
    """Multi-page TIFF, written atomically (temporary file + rename)."""
    import tifffile

    if not target.parent.is_dir():
        raise OutputError(
            f"cannot write {target}: the folder {target.parent} does not exist. "
            "Create it first or choose another output folder."
        )
    if stack.dtype.kind == "f":
        stack = stack.astype(np.float32, copy=False)
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix, delete=False
        ) as fh:
            tmp = fh.name
            tifffile.imwrite(
                fh,
                stack,
                photometric="rgb" if rgb else "minisblack",
                compression="zlib",
                iccprofile=icc or None,
                metadata={"axes": "ZYXS" if rgb else "ZYX"},
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"could not write {target}: {exc.strerror or exc}.") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
