"""napari writer: an image layer to TIFF, PNG or JPEG, atomically, metadata kept.

- 2-D images (fused results, single frames) go through
  :func:`napari_focus_stack.io.write_image`: 16-bit is kept in TIFF and PNG,
  JPEG is written at quality 95, and the EXIF and ICC profile found in
  ``layer.metadata`` (copied there by the reader and by the widget from the
  source stack) are embedded.
- Depth and confidence maps are float32: they are written as float32 TIFF
  unchanged; PNG and JPEG would lose them, so those are refused with a
  message saying to use ``.tif``.
- Stacks (``(Z, Y, X)`` or ``(Z, Y, X, 3)``) become multi-page TIFFs.

Every file goes through :func:`napari_focus_stack.io.write_atomic` (a hidden
temporary file beside the target, renamed over it when complete, errors
mapped to :class:`~napari_focus_stack.errors.OutputError`, the process umask
left alone), and the files the layer was read from (``metadata["paths"]``)
are never overwritten.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..io import write_atomic, write_image
from . import layer_metadata as md

__all__ = ["write_image_layer", "JPEG_QUALITY"]

JPEG_QUALITY = 95
_TIFF = (".tif", ".tiff")


def write_image_layer(path: str, data: Any, meta: dict) -> list[str]:
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
        The format cannot hold the data (a float map or a stack as PNG/JPEG),
        the target is one of the layer's source files, or the file could not
        be written; the message says what to do.
    """
    target = Path(path)
    ext = target.suffix.lower()
    metadata = meta.get("metadata") or {}
    protect = [p for p in metadata.get(md.PATHS) or [] if p]
    rgb = bool(meta.get("rgb", False))
    a = np.asarray(data)
    if a.ndim > (3 if rgb else 2):
        if ext not in _TIFF:
            raise OutputError(
                f"cannot write {target}: {meta.get('name', 'the layer')!r} is a stack of "
                f"{a.shape[0]} frames; save it as .tif (multi-page) or pick one frame."
            )
        _write_tiff_stack(target, a, rgb, metadata.get(md.ICC), protect)
        return [str(target)]
    if a.dtype.kind == "f" and ext not in _TIFF:
        raise OutputError(
            f"cannot write {target}: {meta.get('name', 'the layer')!r} holds float values "
            "(a depth or confidence map?) that PNG and JPEG would round to 8 bits; "
            "save it as .tif to keep them as float32."
        )
    if a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    write_image(target, a, quality=JPEG_QUALITY, exif=metadata.get(md.EXIF), icc=metadata.get(md.ICC),
                protect=protect)
    return [str(target)]


def _write_tiff_stack(target: Path, stack: np.ndarray, rgb: bool, icc: bytes | None, protect: list) -> None:
    """A multi-page TIFF, one page per frame, written atomically."""
    import tifffile

    if stack.dtype.kind == "f":
        stack = stack.astype(np.float32, copy=False)
    write_atomic(target, lambda fh: tifffile.imwrite(
        fh,
        stack,
        photometric="rgb" if rgb else "minisblack",
        compression="zlib",
        iccprofile=icc or None,
        metadata={"axes": "ZYXS" if rgb else "ZYX"},
    ), protect=protect)
