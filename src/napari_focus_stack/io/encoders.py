"""Image encoders: :func:`write_image` in JPEG, PNG, TIFF, BMP or WebP.

The format comes from the extension. Pixels are converted to what the
format stores (8-bit for JPEG, BMP and WebP; 8 or 16-bit PNG; 8, 16-bit or
float32 TIFF), EXIF (orientation reset to 1) and the ICC profile are
embedded where the format can hold them, and the file is written through
:func:`~napari_focus_stack.io.atomic.write_atomic`. 16-bit colour PNG,
which Pillow cannot write, has its own small encoder.
"""
from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import tifffile
from PIL import Image

from ..errors import InputError, OutputError
from .atomic import refuse_inputs, write_atomic
from .checks import PNG_MAGIC
from .metadata import EXIF_HEADER, F4, TIFF_TEXT_TAGS, U1, U2, exif_upright
from .paths import PathLike

__all__ = ["write_image"]


_JPEG_MAX_EXIF = 65533  # one APP1 marker segment

# Deflate level for PNG and TIFF: level 6 takes ~5x longer on noisy 16-bit
# photos for files only ~2% smaller.
_ZLIB_LEVEL = 3

_WRITE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == U1:
        return a
    if a.dtype == U2:
        # round(x / 257) in integer arithmetic
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(U1)
    return np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(U1)


def _to_uint16(a: np.ndarray) -> np.ndarray:
    if a.dtype == U2:
        return a
    if a.dtype == U1:
        return a.astype(U2) * np.uint16(257)
    return np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 65535.0).astype(U2)


def _pixels_for(fmt: str, image: Any, bit_depth: int | None) -> np.ndarray:
    """Convert `image` to what `fmt` stores (see :func:`write_image`)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.size == 0 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InputError(
            f"cannot write an image of shape {a.shape}: expected (H, W), (H, W, 3) or (H, W, 4)."
        )
    if a.dtype == np.bool_:
        a = a.astype(U1) * np.uint8(255)
    elif a.dtype.kind in "iu" and a.dtype not in (U1, U2):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise InputError(
                f"cannot write {a.dtype} values from {lo} to {hi}; scale them to uint8, "
                "uint16 or float in [0, 1]."
            )
        a = a.astype(U1 if hi <= 255 else U2)
    elif a.dtype.kind == "f":
        a = a.astype(F4, copy=False)
    elif a.dtype.kind not in "iu":
        raise InputError(f"cannot write an image of dtype {a.dtype}.")
    if fmt in ("JPEG", "BMP", "WEBP"):
        if bit_depth == 16:
            raise ValueError(f"{fmt} stores 8-bit samples only; write .png or .tif for 16-bit")
        a = _to_uint8(a)
        if fmt == "JPEG" and a.ndim == 3:
            a = a[..., :3]
    elif fmt == "PNG":
        wide = bit_depth == 16 or (bit_depth is None and a.dtype == U2)
        a = _to_uint16(a) if wide else _to_uint8(a)
    elif bit_depth == 8:
        a = _to_uint8(a)
    elif bit_depth == 16:
        a = _to_uint16(a)
    return np.ascontiguousarray(a)


def _png_chunk(fh: IO[bytes], tag: bytes, data: bytes) -> None:
    crc = zlib.crc32(data, zlib.crc32(tag)) & 0xFFFFFFFF
    fh.write(struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc))


def _paeth_filter(cur: np.ndarray, up: np.ndarray, bpp: int) -> np.ndarray:
    """PNG filter type 4 for a block of rows (uint8 in, uint8 out)."""
    x = cur.astype(np.int16)
    b = up.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return ((x - pred) & 0xFF).astype(np.uint8)


def _write_png16(fh: IO[bytes], a: np.ndarray, exif: bytes | None, icc: bytes | None) -> None:
    """A 16-bit PNG (gray, RGB or RGBA); Pillow cannot write 16-bit colour PNG."""
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    fh.write(PNG_MAGIC)
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    if icc:
        _png_chunk(fh, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[len(EXIF_HEADER) :] if exif.startswith(EXIF_HEADER) else exif
        _png_chunk(fh, b"eXIf", body)
    bpp = 2 * channels
    row_bytes = w * bpp
    comp = zlib.compressobj(_ZLIB_LEVEL)
    prev = np.zeros((1, row_bytes), np.uint8)
    for start in range(0, h, 64):  # blocks keep the int16 temporaries small
        block = a[start : start + 64].astype(">u2").reshape(-1, w * channels).view(np.uint8)
        up = np.concatenate([prev, block[:-1]])
        out = np.empty((block.shape[0], row_bytes + 1), np.uint8)
        out[:, 0] = 4
        out[:, 1:] = _paeth_filter(block, up, bpp)
        data = comp.compress(out.tobytes())
        if data:
            _png_chunk(fh, b"IDAT", data)
        prev = block[-1:]
    _png_chunk(fh, b"IDAT", comp.flush())
    _png_chunk(fh, b"IEND", b"")


def _exif_text_tags(exif: bytes | None) -> dict[int, str]:
    if not exif:
        return {}
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        out = {}
        for code in (*TIFF_TEXT_TAGS, 305):
            value = parsed.get(code)
            if isinstance(value, str) and value.strip():
                value.encode("ascii")
                out[code] = value.strip("\x00")
        return out
    except Exception:  # noqa: BLE001 - damaged or non-ASCII EXIF (any parser error): keep the pixels, skip the tags
        return {}


def _encode(
    fh: IO[bytes], fmt: str, a: np.ndarray, quality: int, exif: bytes | None, icc: bytes | None
) -> None:
    if fmt == "TIFF":
        tags = _exif_text_tags(exif)
        kwargs: dict[str, Any] = {
            "photometric": "rgb" if a.ndim == 3 else "minisblack",
            "compression": "zlib",
            "compressionargs": {"level": _ZLIB_LEVEL},
            "metadata": None,
            "software": tags.pop(305, False),
            "extratags": [(code, "s", 0, value, True) for code, value in tags.items()],
        }
        if a.dtype.kind in "ui":
            kwargs["predictor"] = True  # horizontal differencing; float would need imagecodecs
        if a.ndim == 3 and a.shape[2] == 4:
            kwargs["extrasamples"] = ("unassalpha",)
        if icc:
            kwargs["iccprofile"] = icc
        tifffile.imwrite(fh, a, **kwargs)
        return
    if fmt == "PNG" and a.dtype == U2:
        _write_png16(fh, a, exif, icc)
        return
    params: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    if fmt == "JPEG":
        params["subsampling"] = 0 if quality >= 90 else 2  # 4:4:4 / 4:2:0
    if fmt == "PNG":
        params["compress_level"] = _ZLIB_LEVEL
    if exif and fmt != "BMP":
        params["exif"] = exif
    if icc and fmt != "BMP":
        params["icc_profile"] = icc
    Image.fromarray(a).save(fh, format=fmt, **params)


def write_image(
    path: PathLike,
    image: np.ndarray,
    *,
    quality: int = 95,
    exif: bytes | None = None,
    icc: bytes | None = None,
    protect: Iterable[PathLike | None] = (),
    bit_depth: int | None = None,
) -> Path:
    """Write `image` to `path` atomically, in the format its extension names.

    Parameters
    ----------
    path : str or path-like
        ``.jpg``/``.jpeg``, ``.png``, ``.tif``/``.tiff``, ``.bmp`` or ``.webp``.
        Its folder must exist.
    image : numpy.ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``; ``uint8``, ``uint16`` or
        float. Floats are taken to lie in [0, 1] (clipped) except in TIFF,
        which stores them as ``float32`` unchanged.
    quality : int
        JPEG/WebP quality 1..100. JPEG uses 4:4:4 chroma at 90 and above,
        4:2:0 below.
    exif, icc : bytes, optional
        EXIF (as in :attr:`ImageMeta.exif`) and ICC profile to embed. The EXIF
        orientation is always written as 1, since pixels are stored upright.
        JPEG, PNG and WebP embed both; TIFF embeds the ICC profile and the
        EXIF Make, Model, DateTime, Artist, Copyright and Software; BMP neither.
    protect : iterable of path-like
        Input files that must not be overwritten.
    bit_depth : {None, 8, 16}
        Sample depth for PNG and TIFF. None keeps ``uint8``/``uint16`` as they
        are, writes floats as 8-bit PNG and float32 TIFF. JPEG, BMP and WebP
        are always 8-bit (``uint16`` is rounded to 8 bits).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OutputError
        Unknown extension, missing folder, `path` is one of `protect`, or the
        write failed (permissions, disk full...). No partial file is left:
        the image is written to a hidden temporary file in the same folder
        and renamed over `path` only when complete.
    InputError
        `image` is not an image array.

    Examples
    --------
    >>> write_image("out/stacked.jpg", image, exif=meta.exif, icc=meta.icc)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"cannot write {path}: unknown image type {path.suffix!r}. "
            "Use .jpg, .png, .tif, .bmp or .webp."
        )
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    if bit_depth not in (None, 8, 16):
        raise ValueError(f"bit_depth must be None, 8 or 16, got {bit_depth}")
    parent = path.parent
    if not parent.exists():
        raise OutputError(
            f"cannot write {path}: the folder {parent} does not exist. "
            "Create it first or choose another output folder."
        )
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder.")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder. Choose a file name.")
    refuse_inputs(path, protect)
    pixels = _pixels_for(fmt, image, bit_depth)
    exif = exif_upright(exif)
    if exif is not None and fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF:
        warnings.warn(
            f"EXIF for {path} is {len(exif)} bytes, more than a JPEG can hold; "
            "writing without EXIF",
            stacklevel=2,
        )
        exif = None
    write_atomic(path, lambda fh: _encode(fh, fmt, pixels, int(quality), exif, icc))
    return path
