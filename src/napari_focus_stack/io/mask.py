"""Retouch masks on disk: one 2-D image of integer labels (see :mod:`napari_focus_stack.retouch`).

A mask is read from any gray 8- or 16-bit image the readers take (TIFF,
PNG): 0 keeps the automatic result, k takes frame k (from 1, input order).
The plugin writes it as a zlib-compressed TIFF whose description (JSON, as
tifffile writes ``metadata``) holds :data:`RETOUCH_KEY`, the input's name
and the frame names, so that the napari reader opens it again as a Labels
layer over the right result (:func:`mask_info` tells a marked file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import write_atomic
from .paths import PathLike
from .read import read_image

__all__ = ["RETOUCH_KEY", "mask_info", "read_retouch_mask", "write_retouch_mask"]

#: The key in a TIFF's JSON description that marks it as a retouch mask (its value: the format version, 1).
RETOUCH_KEY = "napari_focus_stack_retouch"


def read_retouch_mask(path: PathLike) -> np.ndarray:
    """The labels of a mask file (2-D, as stored: uint8 or uint16 for gray images).

    Raises
    ------
    InputError
        The file cannot be read (missing, damaged, not an image). Whether it
        fits a stack is :func:`napari_focus_stack.retouch.check_mask`'s to say.
    """
    image, _ = read_image(path)
    return image


def mask_info(path: PathLike) -> dict | None:
    """The retouch metadata of a TIFF the plugin wrote (``input``, ``frames``), None for any other file."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) != 1:
                return None
            shaped = tif.shaped_metadata
    except Exception:  # noqa: BLE001 - not a TIFF we can read: not ours, other readers may try
        return None
    meta = shaped[0] if shaped else None
    if not isinstance(meta, dict) or RETOUCH_KEY not in meta:
        return None
    return {"input": meta.get("input"), "frames": list(meta.get("frames") or [])}


def write_retouch_mask(
    path: PathLike, mask: Any, *, input_name: str | None = None, frames: list[str] | None = None,
    protect: Any = (),
) -> Path:
    """Write a mask as a marked TIFF (uint8, or uint16 for labels above 255), atomically.

    Parameters
    ----------
    path : path-like
        A ``.tif`` or ``.tiff`` file.
    mask : array-like (rows, cols) of int
    input_name : str, optional
        The input it belongs to (a napari layer name), read back by :func:`mask_info`.
    frames : list of str, optional
        The names of the stack's frames (label k is ``frames[k - 1]``).
    protect : iterable of path-like
        Files never to overwrite (the stack's frames).

    Raises
    ------
    OutputError
        Not a TIFF name, not a 2-D integer image, or the file cannot be written.
    """
    import tifffile

    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        raise OutputError(f"cannot write {target}: a retouch mask is saved as .tif (it keeps its labels and marks)")
    a = np.asarray(mask)
    if a.ndim != 2 or a.dtype.kind not in "uib":
        raise OutputError(f"cannot write {target}: a retouch mask is a 2-D image of integer labels, got {a.dtype} "
                          f"{a.shape}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
        raise OutputError(f"cannot write {target}: labels must be 0-65535 (frame numbers)")
    dtype = np.uint8 if not a.size or int(a.max()) <= 255 else np.uint16
    meta = {RETOUCH_KEY: 1, "input": input_name, "frames": list(frames or [])}
    return write_atomic(target, lambda fh: tifffile.imwrite(
        fh, a.astype(dtype), photometric="minisblack", compression="zlib", metadata=meta,
    ), protect=protect)
