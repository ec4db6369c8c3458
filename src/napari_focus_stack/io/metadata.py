"""What travels with a frame besides its pixels: EXIF, orientation, ICC, ImageMeta.

EXIF is kept as raw bytes in APP1 form (``Exif\\0\\0`` + TIFF structure) so
that a result can be written with the camera's metadata untouched, except
for the orientation tag, which is reset to 1 because the readers return
pixels upright. The orientation is read and patched in place with
:mod:`struct` rather than by re-serialising the EXIF, which Pillow would
rewrite (and sometimes damage). The ICC profile is carried as bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["ImageMeta"]


U1 = np.dtype(np.uint8)

U2 = np.dtype(np.uint16)

F4 = np.dtype(np.float32)

EXIF_HEADER = b"Exif\x00\x00"

_ORIENTATION_TAG = 0x0112

# Plain-text IFD0 tags kept between EXIF and TIFF files.
TIFF_TEXT_TAGS = {271: "Make", 272: "Model", 306: "DateTime", 315: "Artist", 33432: "Copyright"}


@dataclass
class ImageMeta:
    """What is known about one frame besides its pixels.

    Attributes
    ----------
    path : Path or None
        The file, or None for an in-memory array.
    shape : tuple of int
        ``(H, W)`` or ``(H, W, 3)`` after orientation, alpha dropped.
    dtype : numpy.dtype
        ``uint8``, ``uint16`` or ``float32``.
    exif : bytes or None
        Raw EXIF as stored in a JPEG APP1 segment (starting with
        ``b"Exif\\0\\0"``), with the orientation tag reset to 1 because the
        pixels are already upright.
    icc : bytes or None
        The embedded ICC colour profile.
    page : int or None
        Frame index inside a multi-frame TIFF, else None.
    """

    path: Path | None
    shape: tuple[int, ...]
    dtype: np.dtype
    exif: bytes | None
    icc: bytes | None
    page: int | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(n) for n in self.shape)
        self.dtype = np.dtype(self.dtype)


def normalize_exif(raw: Any) -> bytes | None:
    """EXIF in APP1 form (``Exif\\0\\0`` + TIFF structure), or None."""
    if raw is None:
        return None
    if isinstance(raw, Image.Exif):
        raw = raw.tobytes()
    raw = bytes(raw)
    if not raw:
        return None
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        raw = EXIF_HEADER + raw
    return raw


def _orientation_offset(exif: bytes) -> tuple[int, str] | None:
    """Byte offset of the IFD0 orientation value inside `exif`, and its byte order."""
    base = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
    body = exif[base:]
    if len(body) < 8 or body[:2] not in (b"II", b"MM"):
        return None
    order = "<" if body[:2] == b"II" else ">"
    if struct.unpack(order + "H", body[2:4])[0] != 42:
        return None
    ifd = struct.unpack(order + "I", body[4:8])[0]
    if ifd + 2 > len(body):
        return None
    count = struct.unpack(order + "H", body[ifd : ifd + 2])[0]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(body):
            break
        tag, kind, n = struct.unpack(order + "HHI", body[entry : entry + 8])
        if tag == _ORIENTATION_TAG and kind == 3 and n >= 1:  # SHORT, value inline
            return base + entry + 8, order
    return None


def exif_orientation(exif: bytes | None) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable)."""
    if not exif:
        return 1
    found = _orientation_offset(exif)
    if found is None:
        return 1
    offset, order = found
    value = struct.unpack(order + "H", exif[offset : offset + 2])[0]
    return value if 1 <= value <= 8 else 1


def exif_upright(exif: bytes | None) -> bytes | None:
    """`exif` with orientation set to 1, every other byte kept as it was."""
    exif = normalize_exif(exif)
    if exif is None:
        return None
    found = _orientation_offset(exif)
    if found is None:
        return exif
    offset, order = found
    patched = bytearray(exif)
    patched[offset : offset + 2] = struct.pack(order + "H", 1)
    return bytes(patched)


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip `a` like ``PIL.ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return np.rot90(a, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def oriented_shape(h: int, w: int, channels: int, orientation: int) -> tuple[int, ...]:
    if orientation >= 5:
        h, w = w, h
    return (h, w) if channels == 1 else (h, w, channels)


def describe_pixels(shape: tuple[int, ...], dtype: np.dtype) -> str:
    depth = {U1: "8-bit", U2: "16-bit", F4: "32-bit float"}.get(np.dtype(dtype), str(dtype))
    colour = "RGB" if len(shape) == 3 else "grayscale"
    return f"{shape[1]}x{shape[0]} {colour} {depth}"
