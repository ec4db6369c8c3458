"""Reading frames and z-stacks, natural file order, and safe writing.

Everything a user points the stacker at goes through this module: single
images (JPEG, PNG, TIFF, BMP, WebP), folders, glob patterns, multi-page TIFF
z-stacks and NumPy arrays. Pixels come back as C-contiguous NumPy arrays,
upright (EXIF orientation applied), without alpha, as ``uint8``, ``uint16`` or
``float32``. EXIF and ICC data travel in :class:`ImageMeta` so that a result
can be written with the camera's metadata and colour profile.

Pillow decodes JPEG, PNG, BMP and WebP; tifffile decodes TIFF. Neither library
is asked for anything it would silently get wrong: truncated files raise,
16-bit colour PNGs keep all 16 bits, and every failure becomes an
:class:`~napari_focus_stack.errors.InputError` or
:class:`~napari_focus_stack.errors.OutputError` that names the file and says
what to do.
"""
from __future__ import annotations

import errno
import glob
import os
import re
import struct
import tempfile
import threading
import unicodedata
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from .errors import FocusStackError, InputError, OutputError, StackError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameSource",
    "ImageMeta",
    "exif_from",
    "expand_inputs",
    "natural_sort_key",
    "natural_sorted",
    "read_image",
    "read_meta",
    "remove_stale_temps",
    "write_image",
    "write_text",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File name extensions (lower case) that are treated as images when a folder
#: or a glob pattern is expanded.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Formats Pillow may identify. Restricting the list keeps Pillow from
# "recognising" a damaged file as some header-less format such as TGA.
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")  # MPO comes via JPEG
_SUPPORTED_WORDS = "JPEG, PNG, TIFF, BMP or WebP"

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_JPEG_MAX_EXIF = 65533  # one APP1 marker segment
# Deflate level for PNG and TIFF: level 6 takes ~5x longer on noisy 16-bit
# photos for files only ~2% smaller.
_ZLIB_LEVEL = 3

_U1 = np.dtype(np.uint8)
_U2 = np.dtype(np.uint16)
_F4 = np.dtype(np.float32)

# Pillow mode -> (channels after conversion, dtype after conversion).
_PIL_MODE_LAYOUT: dict[str, tuple[int, np.dtype]] = {
    "1": (1, _U1),
    "L": (1, _U1),
    "LA": (1, _U1),
    "La": (1, _U1),
    "P": (3, _U1),
    "PA": (3, _U1),
    "RGB": (3, _U1),
    "RGBA": (3, _U1),
    "RGBa": (3, _U1),
    "RGBX": (3, _U1),
    "CMYK": (3, _U1),
    "YCbCr": (3, _U1),
    "LAB": (3, _U1),
    "HSV": (3, _U1),
    "I;16": (1, _U2),
    "I;16L": (1, _U2),
    "I;16B": (1, _U2),
    "I;16N": (1, _U2),
    "I": (1, _U2),
    "F": (1, _F4),
}
# Modes whose ICC profile (if any) describes a colour space we convert away from.
_PIL_CONVERTED_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})


# --------------------------------------------------------------------------
# natural order
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------


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


def _normalize_exif(raw: Any) -> bytes | None:
    """EXIF in APP1 form (``Exif\\0\\0`` + TIFF structure), or None."""
    if raw is None:
        return None
    if isinstance(raw, Image.Exif):
        raw = raw.tobytes()
    raw = bytes(raw)
    if not raw:
        return None
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        raw = _EXIF_HEADER + raw
    return raw


def _orientation_offset(exif: bytes) -> tuple[int, str] | None:
    """Byte offset of the IFD0 orientation value inside `exif`, and its byte order."""
    base = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
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


def _exif_orientation(exif: bytes | None) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable)."""
    if not exif:
        return 1
    found = _orientation_offset(exif)
    if found is None:
        return 1
    offset, order = found
    value = struct.unpack(order + "H", exif[offset : offset + 2])[0]
    return value if 1 <= value <= 8 else 1


def _exif_upright(exif: bytes | None) -> bytes | None:
    """`exif` with orientation set to 1, every other byte kept as it was."""
    exif = _normalize_exif(exif)
    if exif is None:
        return None
    found = _orientation_offset(exif)
    if found is None:
        return exif
    offset, order = found
    patched = bytearray(exif)
    patched[offset : offset + 2] = struct.pack(order + "H", 1)
    return bytes(patched)


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
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


def _oriented_shape(h: int, w: int, channels: int, orientation: int) -> tuple[int, ...]:
    if orientation >= 5:
        h, w = w, h
    return (h, w) if channels == 1 else (h, w, channels)


def _pixel_limit() -> int | None:
    # Same ceiling as Pillow's decompression-bomb error; users raise it there.
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    depth = {_U1: "8-bit", _U2: "16-bit", _F4: "32-bit float"}.get(np.dtype(dtype), str(dtype))
    colour = "RGB" if len(shape) == 3 else "grayscale"
    return f"{shape[1]}x{shape[0]} {colour} {depth}"


# --------------------------------------------------------------------------
# reading: common checks and error wording
# --------------------------------------------------------------------------


def _as_path(path: PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path, got {type(path).__name__}")
    return Path(path).expanduser()


def _check_file(path: Path) -> bytes:
    """Raise InputError unless `path` is a non-empty readable file; return its first bytes."""
    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not an image file.")
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(
            f"{path} not found. Check the path (and that the drive is mounted)."
        ) from None
    except OSError as exc:
        raise InputError(f"{path} cannot be opened ({exc.strerror or exc}).") from exc
    if size == 0:
        raise InputError(
            f"{path} is empty (0 bytes), probably an interrupted copy or export. "
            "Remove it from the folder or copy it again."
        )
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError as exc:
        raise InputError(
            f"{path} cannot be opened ({exc.strerror or exc}). Check its permissions."
        ) from exc


def _is_tiff(head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def _reason(exc: BaseException, kind: str) -> str:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, Image.DecompressionBombError):
        return (
            "larger than the safety limit of PIL.Image.MAX_IMAGE_PIXELS; "
            "raise that limit if you trust the file"
        )
    if isinstance(exc, MemoryError):
        return "too large to decode in the available memory"
    if isinstance(exc, UnidentifiedImageError):
        return f"not a {_SUPPORTED_WORDS} file"
    if "imagecodecs" in low:
        return (
            f"{text}; install it with `pip install imagecodecs` or re-save the file "
            "uncompressed or with ZIP compression"
        )
    if isinstance(exc, EOFError) or any(
        w in low for w in ("truncated", "failed to read", "premature", "unexpected end")
    ):
        return f"truncated {kind}?"
    text = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"damaged {kind}? {detail[:200]}"


def _unreadable(path: Path, exc: BaseException, kind: str = "file") -> InputError:
    return InputError(
        f"{path} is not a readable image ({_reason(exc, kind)}). "
        "Remove it from the folder or re-export it."
    )


def _guarded(path: Path, kind: str, fn: Callable[[], Any]) -> Any:
    """Run a decoder; turn anything it raises into an InputError naming `path`."""
    try:
        return fn()
    except FocusStackError:
        raise
    except Exception as exc:  # decoders raise OSError, ValueError, SyntaxError, struct.error...
        raise _unreadable(path, exc, kind) from exc


# --------------------------------------------------------------------------
# Pillow formats (JPEG, PNG, BMP, WebP)
# --------------------------------------------------------------------------


def _png16_colour_type(head: bytes) -> int | None:
    """PNG colour type when `head` starts a 16-bit PNG, else None."""
    if not head.startswith(_PNG_MAGIC) or len(head) < 26 or head[12:16] != b"IHDR":
        return None
    return head[25] if head[24] == 16 else None


def _kind_of(head: bytes) -> str:
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if _is_tiff(head):
        return "TIFF"
    return "file"


def _retile(im: Image.Image, rawmode: str) -> None:
    """Make Pillow's PNG decoder unpack with `rawmode` (same bits per pixel)."""
    tiles = []
    for tile in im.tile:
        name, extents, offset, args = tuple(tile)
        if name != "zip":
            raise InputError(f"unexpected PNG layout ({name})")
        args = (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode
        new = (name, extents, offset, args)
        tiles.append(tile._replace(args=args) if hasattr(tile, "_replace") else new)
    im.tile = tiles


def _decode_png16_colour(im: Image.Image, path: Path, colour_type: int) -> tuple[np.ndarray, dict]:
    """Decode a 16-bit RGB, RGBA or gray+alpha PNG without losing the low byte.

    Pillow unfilters these PNGs correctly but unpacks only the high byte of
    each sample. The unfiltering depends only on bits per pixel, so decoding
    twice with raw modes of the same width, one keeping the high bytes
    ("RGB;16B") and one the low bytes ("RGB;16L" reads the second byte),
    recovers the full values. Gray+alpha (32 bits per pixel) is decoded once
    as plain 8-bit "RGBA", which keeps all four bytes.
    """
    if colour_type == 4:
        _retile(im, "RGBA")
        im.load()
        b = np.asarray(im).astype(np.uint16)
        return (b[..., 0] << 8) | b[..., 1], dict(im.info)
    base = "RGB" if colour_type == 2 else "RGBA"
    _retile(im, base + ";16B")
    im.load()
    hi = np.asarray(im)[..., :3].astype(np.uint16)
    with Image.open(path, formats=("PNG",)) as im2:
        _retile(im2, base + ";16L")
        im2.load()
        lo = np.asarray(im2)[..., :3]
        info = dict(im2.info)
    return (hi << 8) | lo, info


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    """Pixels of a loaded Pillow image as uint8/uint16/float32, alpha dropped."""
    mode = im.mode
    if mode in ("L", "RGB", "F"):
        return np.asarray(im)
    if mode in ("1", "LA", "La"):
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA"))[..., :3]
    if mode == "RGBA":
        return np.asarray(im)[..., :3]
    if mode in ("RGBa", "RGBX") or mode in _PIL_CONVERTED_MODES:
        return np.asarray(im.convert("RGB"))
    if mode.startswith("I;16"):
        return np.asarray(im).astype(_U2)
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise InputError(
                f"{path} holds 32-bit integer samples outside 0..65535; "
                "re-export it as 8-bit, 16-bit or float."
            )
        return a.astype(_U2)
    raise InputError(
        f"{path} uses the unsupported colour mode {mode!r}. Re-export it as "
        "8- or 16-bit grayscale or RGB."
    )


def _read_pillow(path: Path, head: bytes, reduce: int = 1) -> tuple[np.ndarray, ImageMeta]:
    colour_type = _png16_colour_type(head)
    with Image.open(path, formats=_PIL_FORMATS) as im:
        mode = im.mode
        if reduce > 1 and im.format == "JPEG":
            # DCT-domain downscaling: decodes several times faster (JPEG only)
            im.draft(im.mode, (-(-im.size[0] // reduce), -(-im.size[1] // reduce)))
        if colour_type in (2, 4, 6):
            a, info = _decode_png16_colour(im, path, colour_type)
        else:
            im.load()
            a, info = _pil_to_array(im, path), dict(im.info)
    raw_exif = _normalize_exif(info.get("exif"))
    a = np.ascontiguousarray(_apply_orientation(a, _exif_orientation(raw_exif)))
    if not a.flags.writeable:
        a = a.copy()
    icc = None if mode in _PIL_CONVERTED_MODES else (info.get("icc_profile") or None)
    return a, ImageMeta(path, a.shape, a.dtype, _exif_upright(raw_exif), icc)


def _meta_pillow(path: Path, head: bytes) -> ImageMeta:
    with Image.open(path, formats=_PIL_FORMATS) as im:
        (w, h), mode, info = im.size, im.mode, dict(im.info)
    layout = _PIL_MODE_LAYOUT.get(mode)
    if layout is None:
        raise InputError(
            f"{path} uses the unsupported colour mode {mode!r}. Re-export it as "
            "8- or 16-bit grayscale or RGB."
        )
    channels, dtype = layout
    colour_type = _png16_colour_type(head)
    if colour_type is not None:
        channels, dtype = (3 if colour_type in (2, 6) else 1), _U2
    raw_exif = _normalize_exif(info.get("exif"))
    shape = _oriented_shape(h, w, channels, _exif_orientation(raw_exif))
    icc = None if mode in _PIL_CONVERTED_MODES else (info.get("icc_profile") or None)
    return ImageMeta(path, shape, dtype, _exif_upright(raw_exif), icc)


# --------------------------------------------------------------------------
# TIFF (tifffile)
# --------------------------------------------------------------------------

# Plain-text IFD0 tags kept between EXIF and TIFF files.
_TIFF_TEXT_TAGS = {271: "Make", 272: "Model", 306: "DateTime", 315: "Artist", 33432: "Copyright"}


@dataclass
class _TiffLayout:
    """How the first series of a TIFF maps onto frames of shape (H, W[, C])."""

    frames: int
    squeezed: tuple[int, ...]  # series shape without length-1 axes (Y, X kept)
    perm: tuple[int, ...]  # transpose of `squeezed` into (F?, Y, X, C?)
    frame_in: tuple[int, ...]  # one frame before channel selection
    per_page: bool  # frame i is exactly page i of the series
    page_index: list[int] | None  # file page numbers, for the Pillow fallback
    rgb: bool
    dtype_in: np.dtype
    dtype: np.dtype
    miniswhite: bool
    orientation: int
    shape: tuple[int, ...]  # one output frame
    exif: bytes | None
    icc: bytes | None


def _check_page_data(page: Any) -> None:
    """Reject pages whose stored data cannot hold the pixels their header claims.

    tifffile fills missing pixels with zeros rather than failing, so a damaged
    size field or byte count would otherwise pass as a (mostly black) image.
    """
    size = int(page.parent.filehandle.size)
    stored = sum(  # bytes actually present in the file
        max(0, min(int(n), size - int(o))) for o, n in zip(page.dataoffsets, page.databytecounts)
    )
    key = getattr(page, "keyframe", None) or page  # TiffFrame holds only offsets
    bits = int(np.prod(key.shape)) * int(key.bitspersample)
    if int(key.compression) == 1:
        if stored * 8 < bits:
            raise ValueError(f"truncated: {stored} bytes stored for {bits // 8} bytes of pixels")
    elif bits // 8 > max(1 << 24, 5000 * stored):  # beyond any real compression ratio
        raise ValueError(f"damaged size fields: {bits // 8} bytes of pixels from {stored} bytes")


def _tiff_out_dtype(dtype: np.dtype, path: Path) -> np.dtype:
    if dtype in (_U1, _U2):
        return dtype
    if dtype == np.bool_:
        return _U1
    if dtype.kind == "f":
        return _F4
    raise InputError(
        f"{path} holds {dtype} samples; only 8-bit, 16-bit and floating-point TIFFs "
        "are supported. Convert it (e.g. to 16-bit unsigned) and try again."
    )


def _tiff_exif(page: Any) -> bytes | None:
    exif = Image.Exif()
    for code in _TIFF_TEXT_TAGS:
        value = page.tags.valueof(code)
        if isinstance(value, str) and value.strip():
            exif[code] = value
    return exif.tobytes() if len(exif) else None


def _tiff_layout(tif: tifffile.TiffFile, path: Path) -> _TiffLayout:
    if not tif.series:
        raise InputError(f"{path} contains no image data. Remove it or re-export it.")
    series = tif.series[0]
    page = series.keyframe
    axes, shape = series.axes, tuple(series.shape)
    keep = [k for k, (ax, n) in enumerate(zip(axes, shape)) if n != 1 or ax in "YX"]
    names = [axes[k] for k in keep]
    squeezed = tuple(shape[k] for k in keep)
    if names.count("Y") != 1 or names.count("X") != 1:
        raise InputError(f"{path} has an unsupported layout (axes {axes}, shape {shape}).")
    pos_y, pos_x = names.index("Y"), names.index("X")
    pos_c = None
    if "S" in names:
        pos_c = names.index("S")
    elif "C" in names and squeezed[names.index("C")] == 3:
        pos_c = names.index("C")  # e.g. an ImageJ composite with three channels
    others = [k for k in range(len(names)) if k not in (pos_y, pos_x, pos_c)]
    if len(others) > 1:
        raise InputError(
            f"{path} has axes {axes} with shape {shape}; a focus stack needs a single "
            "z axis. Save one z-stack (Z, Y, X[, colour]) per file."
        )
    pos_f = others[0] if others else None
    channels = squeezed[pos_c] if pos_c is not None else 1
    if channels not in (1, 2, 3, 4):
        raise InputError(
            f"{path} has {channels} samples per pixel; only grayscale, gray+alpha, RGB "
            "and RGBA TIFFs are supported."
        )
    photometric = int(page.photometric)
    if photometric in (3, 5, 8, 9, 10):  # palette, CMYK, CIELab variants
        kind = {3: "palette (indexed colour)", 5: "CMYK"}.get(photometric, "Lab")
        raise InputError(f"{path} is a {kind} TIFF. Re-save it as RGB or grayscale.")
    rgb = channels >= 3 and (names[pos_c] == "C" or photometric in (2, 6))
    perm = tuple(k for k in (pos_f, pos_y, pos_x, pos_c) if k is not None)
    frames = squeezed[pos_f] if pos_f is not None else 1
    frame_in = tuple(squeezed[k] for k in (perm[1:] if pos_f is not None else perm))
    pages = series.pages
    per_page = (
        list(perm) == sorted(perm)
        and (pos_f is None or pos_f == 0)
        and len(pages) == frames
        and int(np.prod(page.shape)) == int(np.prod(frame_in))
    )
    page_index = None
    if per_page:
        try:
            page_index = [int(p.index) for p in pages]
        except (TypeError, AttributeError):
            page_index = None
    h, w = squeezed[pos_y], squeezed[pos_x]
    limit = _pixel_limit()
    if limit is not None and h * w > limit:
        raise Image.DecompressionBombError(f"{h * w} pixels")
    _check_page_data(page)
    dtype_in = np.dtype(series.dtype)
    orientation = page.tags.valueof(274, default=1)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    icc = page.tags.valueof(34675)
    return _TiffLayout(
        frames=frames,
        squeezed=squeezed,
        perm=perm,
        frame_in=frame_in,
        per_page=per_page,
        page_index=page_index,
        rgb=rgb,
        dtype_in=dtype_in,
        dtype=_tiff_out_dtype(dtype_in, path),
        miniswhite=photometric == 0,
        orientation=orientation,
        shape=_oriented_shape(h, w, 3 if rgb else 1, orientation),
        exif=_tiff_exif(page),
        icc=bytes(icc) if isinstance(icc, (bytes, bytearray)) and icc else None,
    )


def _probe_tiff(path: Path) -> _TiffLayout:
    def probe() -> _TiffLayout:
        with tifffile.TiffFile(path) as tif:
            return _tiff_layout(tif, path)

    return _guarded(path, "TIFF", probe)


def _finish_tiff_frame(raw: np.ndarray, layout: _TiffLayout) -> np.ndarray:
    """Channel selection, photometric, dtype and orientation for one frame."""
    a = raw
    if a.ndim == 3:
        a = a[..., :3] if layout.rgb else a[..., 0]
    if layout.miniswhite:
        a = ~a if a.dtype.kind in "ub" else a.max() - a
    if a.dtype == np.bool_:
        a = a.astype(_U1) * np.uint8(255)
    elif a.dtype != layout.dtype:
        a = a.astype(layout.dtype)
    return np.ascontiguousarray(_apply_orientation(a, layout.orientation))


def _tiff_all_frames(path: Path, layout: _TiffLayout) -> np.ndarray:
    """The whole series as (F, Y, X[, C]) before per-frame finishing."""
    with tifffile.TiffFile(path) as tif:
        for page in tif.series[0].pages:
            if page is not None:
                _check_page_data(page)
        a = tif.series[0].asarray()
    a = a.reshape(layout.squeezed).transpose(layout.perm)
    return a if layout.frames > 1 else a[np.newaxis]


def _tiff_page_with_pillow(path: Path, layout: _TiffLayout, i: int) -> np.ndarray:
    """Decode one page with Pillow (no imagecodecs needed for LZW, PackBits, JPEG)."""
    if layout.rgb and layout.dtype_in.itemsize > 1:
        raise InputError(
            f"{path} is a compressed 16-bit colour TIFF; reading it needs the imagecodecs "
            "package (`pip install imagecodecs`), or re-save it uncompressed or with ZIP "
            "compression."
        )
    with Image.open(path, formats=("TIFF",)) as im:
        im.seek(layout.page_index[i] if layout.page_index else i)
        im.load()
        a = _pil_to_array(im, path)
    a = np.ascontiguousarray(_apply_orientation(a, layout.orientation))
    if a.shape != layout.shape or a.dtype != layout.dtype:
        raise InputError(
            f"{path} could not be decoded faithfully without the imagecodecs package; "
            "install it (`pip install imagecodecs`) or re-save the file with ZIP compression."
        )
    return a


def _read_tiff_frame(path: Path, layout: _TiffLayout, i: int) -> np.ndarray:
    def decode() -> np.ndarray:
        if not layout.per_page:
            return _finish_tiff_frame(_tiff_all_frames(path, layout)[i], layout)
        try:
            with tifffile.TiffFile(path) as tif:
                _check_page_data(tif.series[0].pages[i])
                raw = tif.asarray(key=i, series=0)
        except Exception as exc:
            if "imagecodecs" not in str(exc):
                raise
            return _tiff_page_with_pillow(path, layout, i)
        return _finish_tiff_frame(raw.reshape(layout.frame_in), layout)

    return _guarded(path, "TIFF", decode)


def _tiff_meta(path: Path, layout: _TiffLayout, page: int | None) -> ImageMeta:
    return ImageMeta(path, layout.shape, layout.dtype, layout.exif, layout.icc, page)


def _frame_index(path: Path, page: int | None, frames: int) -> int:
    i = 0 if page is None else int(page)
    if not 0 <= i < frames:
        raise InputError(f"{path} has {frames} frame(s); frame {page} does not exist.")
    return i


class _TiffStack:
    """Frames of one multi-frame TIFF; whole-series layouts are decoded once and kept."""

    def __init__(self, path: Path, layout: _TiffLayout) -> None:
        self.path, self.layout = path, layout
        self._all: np.ndarray | None = None
        self._lock = threading.Lock()

    def read(self, i: int) -> np.ndarray:
        if self.layout.per_page:
            return _read_tiff_frame(self.path, self.layout, i)
        with self._lock:
            if self._all is None:
                self._all = _guarded(
                    self.path, "TIFF", lambda: _tiff_all_frames(self.path, self.layout)
                )
        return _finish_tiff_frame(self._all[i], self.layout)


# --------------------------------------------------------------------------
# public reading API
# --------------------------------------------------------------------------


def read_image(path: PathLike, page: int | None = None, reduce: int = 1) -> tuple[np.ndarray, ImageMeta]:
    """Decode one image file.

    Parameters
    ----------
    path : str or path-like
        A JPEG, PNG, TIFF, BMP or WebP file. The format is recognised from the
        file's content, not its extension.
    page : int, optional
        Frame of a multi-frame TIFF (default: the first). Ignored by other
        formats except that only 0 is valid.
    reduce : int
        Ask for a ``reduce`` times smaller image where the decoder can make
        one cheaply (JPEG's DCT scaling); other formats ignore it, so check
        the returned shape.

    Returns
    -------
    image : numpy.ndarray
        C-contiguous ``(H, W)`` or ``(H, W, 3)`` array of ``uint8``,
        ``uint16`` (16-bit PNG and TIFF) or ``float32`` (float TIFF). EXIF
        orientation is applied; alpha is dropped; palette, CMYK and other
        modes become RGB, 1-bit and gray+alpha become ``uint8`` gray.
    meta : ImageMeta
        Shape, dtype, EXIF (orientation reset to 1) and ICC profile.

    Raises
    ------
    InputError
        The file is missing, empty, truncated, damaged, not an image or in an
        unsupported layout. The message names the file and says what to do.

    Examples
    --------
    >>> image, meta = read_image("frames/IMG_0001.JPG")  # doctest: +SKIP
    >>> image.shape, meta.dtype  # doctest: +SKIP
    ((3000, 4000, 3), dtype('uint8'))
    """
    path = _as_path(path)
    head = _check_file(path)
    if _is_tiff(head):
        layout = _probe_tiff(path)
        i = _frame_index(path, page, layout.frames)
        a = _read_tiff_frame(path, layout, i)
        return a, _tiff_meta(path, layout, i if layout.frames > 1 else page)
    _frame_index(path, page, 1)
    return _guarded(path, _kind_of(head), lambda: _read_pillow(path, head, reduce))


def _probe(path: Path) -> tuple[ImageMeta, _TiffLayout | None]:
    head = _check_file(path)
    if _is_tiff(head):
        layout = _probe_tiff(path)
        return _tiff_meta(path, layout, 0 if layout.frames > 1 else None), layout
    return _guarded(path, _kind_of(head), lambda: _meta_pillow(path, head)), None


def read_meta(path: PathLike) -> ImageMeta:
    """Shape, dtype, EXIF and ICC of an image file, read from its header only.

    For a multi-frame TIFF this describes the first frame (``page=0``).
    Header-only reading means a damaged pixel stream is found later, by
    :func:`read_image`.

    Raises
    ------
    InputError
        As :func:`read_image`, for what the header reveals.
    """
    return _probe(_as_path(path))[0]


def remove_stale_temps(path: PathLike) -> list[Path]:
    """Delete temporary files that an interrupted :func:`write_image` left for ``path``.

    :func:`write_image` writes to ``.<name>.<8 random chars><suffix>`` beside
    the target and renames it; a process killed in between leaves that file.
    Returns the paths removed.
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


def exif_from(meta_or_path: ImageMeta | PathLike | None) -> bytes | None:
    """EXIF bytes of an :class:`ImageMeta` or of an image file (header read only)."""
    if meta_or_path is None:
        return None
    if isinstance(meta_or_path, ImageMeta):
        return meta_or_path.exif
    return read_meta(meta_or_path).exif


# --------------------------------------------------------------------------
# inputs: folders, globs, lists
# --------------------------------------------------------------------------


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _image_files_in(folder: Path) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise InputError(f"{folder} cannot be listed ({exc.strerror or exc}).") from exc
    files = [Path(e.path) for e in entries if e.is_file() and _is_image_name(Path(e.name))]
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
            matches = [m for m in matches if m.is_file() and _is_image_name(m)]
            if not matches:
                raise InputError(f"no image files match {os.fspath(item)!r}. Check the pattern.")
            out.extend(natural_sorted(matches))
        else:
            raise InputError(f"{p} not found. Check the path (and that the drive is mounted).")
    return out


# --------------------------------------------------------------------------
# FrameSource
# --------------------------------------------------------------------------


def _label(meta: ImageMeta, name: str) -> str:
    if meta.path is None:
        return name
    return f"{meta.path} (frame {meta.page})" if meta.page is not None else str(meta.path)


def _validate_stack(metas: Sequence[ImageMeta], names: Sequence[str]) -> None:
    labels = [_label(m, n) for m, n in zip(metas, names)]
    if len(metas) < 2:
        got = ": " + ", ".join(labels) if labels else ""
        raise StackError(f"a stack needs at least 2 frames; got {len(metas)}{got}")
    first, a = metas[0], labels[0]
    for meta, b, name in zip(metas[1:], labels[1:], names[1:]):
        if meta.shape[:2] != first.shape[:2]:
            (hb, wb), (ha, wa) = meta.shape[:2], first.shape[:2]
            raise StackError(
                f"{b} is {wb}x{hb} pixels but {a} is {wa}x{ha}: all frames of a stack "
                f"must be the same size. Remove {name} from the stack or export all "
                "frames at the same size."
            )
        if len(meta.shape) != len(first.shape):
            cb, ca = _describe(meta.shape, meta.dtype), _describe(first.shape, first.dtype)
            raise StackError(
                f"{b} is {cb.split()[1]} but {a} is {ca.split()[1]}: a stack cannot mix "
                f"grayscale and colour frames. Convert all frames to the same colour mode "
                f"or remove {name}."
            )
        if meta.dtype != first.dtype:
            db = _describe(meta.shape, meta.dtype).split(" ", 2)[2]
            da = _describe(first.shape, first.dtype).split(" ", 2)[2]
            raise StackError(
                f"{b} is {db} but {a} is {da}: a stack cannot mix bit depths. Re-export "
                f"all frames with the same bit depth or remove {name}."
            )


def _array_frame_shape(shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    """Output frame shape for an array frame of `shape` (Y, X) or (Y, X, C)."""
    if len(shape) == 2 and min(shape) > 0:
        return shape
    if len(shape) == 3 and min(shape) > 0 and shape[2] in (1, 3, 4):
        return shape[:2] if shape[2] == 1 else shape[:2] + (3,)
    raise InputError(
        f"{what} has shape {shape}; expected frames of shape (Y, X), (Y, X, 3) or (Y, X, 4)."
    )


def _array_target_dtype(dtypes: Sequence[np.dtype], arrays: Sequence[Any]) -> list[np.dtype]:
    """Output dtype per array: uint8/uint16/float32 kept, others mapped sensibly."""
    out: list[np.dtype] = []
    other_max: int | None = None
    for dt, arr in zip(dtypes, arrays):
        if dt.kind in "iu" and dt not in (_U1, _U2) and isinstance(arr, np.ndarray) and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 65535:
                raise InputError(
                    f"an input array holds {dt} values from {lo} to {hi}; scale it to "
                    "0..65535 (uint16) or to float first."
                )
            other_max = max(other_max or 0, hi)
    for dt in dtypes:
        if dt in (_U1, _U2, _F4):
            out.append(dt)
        elif dt == np.bool_:
            out.append(_U1)
        elif dt.kind == "f":
            out.append(_F4)
        elif dt.kind in "iu":
            out.append(_U1 if other_max is not None and other_max <= 255 else _U2)
        else:
            raise InputError(
                f"input arrays of dtype {dt} are not images; use uint8, uint16 or float."
            )
    return out


def _array_frame(frame: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """A fresh C-contiguous copy of one array frame in the stack's layout."""
    a = np.asarray(frame)
    if a.ndim == 3:
        a = a[..., 0] if a.shape[2] == 1 else a[..., :3]
    if a.dtype == np.bool_:
        return a.astype(_U1) * np.uint8(255)
    if a.dtype.kind in "iu" and a.dtype != dtype and a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > np.iinfo(dtype).max:
            raise InputError(
                f"{name} holds values from {lo} to {hi}, outside the range of {dtype}; "
                "scale the stack to uint16 or float first."
            )
    return np.array(a, dtype=dtype, order="C", copy=True)


def _is_array_like(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (
        not isinstance(x, (str, bytes, os.PathLike))
        and all(hasattr(x, attr) for attr in ("shape", "dtype", "ndim", "__getitem__"))
    )


class FrameSource:
    """Random access to the frames of one stack without holding them all in memory.

    Build one with :meth:`from_inputs`. Headers are read (and sizes, colour
    modes and bit depths checked) when the source is built; pixels are
    decoded only by :meth:`read` and :meth:`iter_frames`.

    Parameters
    ----------
    loaders : sequence of callables
        ``loaders[i]()`` returns frame ``i`` as a fresh array.
    metas : sequence of ImageMeta
        What each frame will look like; all must agree in size, colour and
        bit depth.
    names : sequence of str, optional
        Display names; default: file names or ``"frame i"``.

    Attributes
    ----------
    shape : tuple of int
        Shape of every frame, ``(H, W)`` or ``(H, W, 3)``.
    dtype : numpy.dtype
        dtype of every frame.
    names : list of str
        File names (``"name.tif (frame i)"`` for TIFF pages, ``"frame i"``
        for arrays).
    paths : list of Path or None
        The file of each frame (None for arrays).

    Examples
    --------
    >>> src = FrameSource.from_inputs("scan/stack_01")  # doctest: +SKIP
    >>> for i, frame in src.iter_frames():  # doctest: +SKIP
    ...     process(frame)
    """

    def __init__(
        self,
        loaders: Sequence[Callable[[], np.ndarray]],
        metas: Sequence[ImageMeta],
        names: Sequence[str] | None = None,
    ) -> None:
        if len(loaders) != len(metas):
            raise ValueError("loaders and metas must have the same length")
        self._loaders = list(loaders)
        self._metas = list(metas)
        if names is None:
            names = [
                m.path.name if m.path is not None else f"frame {k}" for k, m in enumerate(metas)
            ]
        self.names: list[str] = list(names)
        _validate_stack(self._metas, self.names)
        self.shape: tuple[int, ...] = self._metas[0].shape
        self.dtype: np.dtype = self._metas[0].dtype
        self.paths: list[Path | None] = [m.path for m in self._metas]
        self._reduced_loaders: list | None = None

    # -- construction ------------------------------------------------------

    @classmethod
    def from_inputs(cls, inputs: Any) -> FrameSource:
        """Build a source from files, a folder, a glob, a TIFF stack or arrays.

        Parameters
        ----------
        inputs
            One of:

            - a folder: its image files in natural order (hidden and non-image
              files ignored);
            - a glob pattern such as ``"scan/IMG_*.JPG"``: natural order;
            - a list of files: kept in the order given;
            - a single multi-frame TIFF: each frame (page, or plane of a
              ``(Z, Y, X)`` / ``(Z, Y, X, C)`` array) is one frame;
            - an array ``(Z, Y, X)`` or ``(Z, Y, X, C)``;
            - a list of ``(Y, X)`` or ``(Y, X, C)`` arrays;
            - a FrameSource (returned unchanged).

        Raises
        ------
        InputError
            A file or folder is missing, unreadable or empty.
        StackError
            Fewer than 2 frames, or frames differing in size, colour mode or
            bit depth (the message names the odd file).
        """
        if isinstance(inputs, FrameSource):
            return inputs
        if _is_array_like(inputs):
            return cls._from_array(inputs)
        if isinstance(inputs, (list, tuple)) and inputs and any(_is_array_like(x) for x in inputs):
            if not all(_is_array_like(x) for x in inputs):
                raise InputError("give either arrays or file paths, not a mix of both")
            return cls._from_array_list(list(inputs))
        return cls._from_paths(expand_inputs(inputs))

    @classmethod
    def _from_paths(cls, paths: list[Path]) -> FrameSource:
        probes = [_probe(p) for p in paths]
        if len(probes) == 1 and probes[0][1] is not None and probes[0][1].frames > 1:
            path, layout = paths[0], probes[0][1]
            stack = _TiffStack(path, layout)
            loaders = [lambda k=k: stack.read(k) for k in range(layout.frames)]
            metas = [_tiff_meta(path, layout, k) for k in range(layout.frames)]
            names = [f"{path.name} (frame {k})" for k in range(layout.frames)]
            return cls(loaders, metas, names)
        for path, (_, layout) in zip(paths, probes):
            if len(paths) > 1 and layout is not None and layout.frames > 1:
                raise StackError(
                    f"{path} holds {layout.frames} frames (a z-stack) but was given "
                    "together with other files. Stack it on its own, or give "
                    "single-image files only."
                )
        metas = [meta for meta, _ in probes]
        loaders = [lambda p=p: read_image(p)[0] for p in paths]
        source = cls(loaders, metas)
        source._reduced_loaders = [lambda p=p: read_image(p, reduce=2)[0] for p in paths]
        return source

    @classmethod
    def _from_array(cls, arr: Any) -> FrameSource:
        shape = tuple(arr.shape)
        if len(shape) == 2:
            raise StackError("a stack needs at least 2 frames; got 1: a 2-D array")
        if len(shape) not in (3, 4):
            raise InputError(
                f"an input array has shape {shape}; expected (Z, Y, X) or (Z, Y, X, C)."
            )
        frame_shape = _array_frame_shape(shape[1:], "the input array's frames")
        (dtype,) = _array_target_dtype([np.dtype(arr.dtype)], [arr])
        names = [f"frame {k}" for k in range(shape[0])]
        loaders = [
            lambda k=k: _array_frame(arr[k], dtype, names[k]) for k in range(shape[0])
        ]
        metas = [ImageMeta(None, frame_shape, dtype, None, None) for _ in range(shape[0])]
        return cls(loaders, metas, names)

    @classmethod
    def _from_array_list(cls, arrays: list[Any]) -> FrameSource:
        names = [f"frame {k}" for k in range(len(arrays))]
        shapes = [_array_frame_shape(tuple(a.shape), n) for a, n in zip(arrays, names)]
        dtypes = _array_target_dtype([np.dtype(a.dtype) for a in arrays], arrays)
        loaders = [
            lambda a=a, d=d, n=n: _array_frame(a, d, n) for a, d, n in zip(arrays, dtypes, names)
        ]
        metas = [ImageMeta(None, s, d, None, None) for s, d in zip(shapes, dtypes)]
        return cls(loaders, metas, names)

    # -- access ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"<FrameSource {len(self)} frames, {_describe(self.shape, self.dtype)}>"

    def _index(self, i: int) -> int:
        n = len(self)
        k = int(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"frame {i} out of range for a stack of {n} frames")
        return k

    def meta(self, i: int) -> ImageMeta:
        """Header information of frame `i` (no decoding)."""
        return self._metas[self._index(i)]

    def read_reduced(self, i: int) -> np.ndarray | None:
        """Frame `i` at half size when the file decodes that way cheaply (JPEG), else None.

        The result covers 2 x 2 blocks of the full frame: ``ceil(H / 2) x ceil(W / 2)``.
        """
        if self._reduced_loaders is None:
            return None
        k = self._index(i)
        frame = self._reduced_loaders[k]()
        h, w = self.shape[:2]
        if frame.shape[:2] != (-(-h // 2), -(-w // 2)) or frame.dtype != self.dtype:
            return None  # not a JPEG, or the decoder did not scale
        return frame

    def read(self, i: int) -> np.ndarray:
        """Decode frame `i`; a fresh C-contiguous array the caller may modify.

        Raises
        ------
        InputError
            The file cannot be decoded.
        StackError
            It decodes to another size or dtype than its header announced
            (e.g. the file changed on disk).
        """
        k = self._index(i)
        frame = self._loaders[k]()
        if frame.shape != self.shape or frame.dtype != self.dtype:
            label = _label(self._metas[k], self.names[k])
            raise StackError(
                f"{label} decoded as {_describe(frame.shape, frame.dtype)} but the stack is "
                f"{_describe(self.shape, self.dtype)}; did the file change on disk? "
                "Re-export it or remove it from the stack."
            )
        return frame

    def iter_frames(
        self, order: Iterable[int] | None = None, prefetch: int = 2
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, frame)`` in `order`, decoding ahead in background threads.

        Parameters
        ----------
        order : iterable of int, optional
            Frame indices to visit (default: all, in stack order).
        prefetch : int
            Frames decoded ahead of the one being used; at most ``prefetch``
            are in flight besides the frame the caller holds. 0 decodes in the
            calling thread. Pillow and tifffile release the GIL while
            decoding, so this overlaps decoding with the caller's work.

        Yields
        ------
        (int, numpy.ndarray)
        """
        indices = [self._index(i) for i in (range(len(self)) if order is None else order)]
        if prefetch <= 0 or len(indices) < 2:
            for k in indices:
                yield k, self.read(k)
            return
        todo = iter(indices)
        pending: deque[tuple[int, Future]] = deque()
        with ThreadPoolExecutor(
            max_workers=min(prefetch, len(indices)), thread_name_prefix="focus-stack-read"
        ) as pool:
            try:
                for k in todo:
                    pending.append((k, pool.submit(self.read, k)))
                    if len(pending) >= prefetch:
                        break
                while pending:
                    k, future = pending.popleft()
                    frame = future.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self.read, nxt)))
                    yield k, frame
            finally:
                for _, future in pending:
                    future.cancel()


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

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
    if a.dtype == _U1:
        return a
    if a.dtype == _U2:
        # round(x / 257) in integer arithmetic
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(_U1)
    return np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(_U1)


def _to_uint16(a: np.ndarray) -> np.ndarray:
    if a.dtype == _U2:
        return a
    if a.dtype == _U1:
        return a.astype(_U2) * np.uint16(257)
    return np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 65535.0).astype(_U2)


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
        a = a.astype(_U1) * np.uint8(255)
    elif a.dtype.kind in "iu" and a.dtype not in (_U1, _U2):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise InputError(
                f"cannot write {a.dtype} values from {lo} to {hi}; scale them to uint8, "
                "uint16 or float in [0, 1]."
            )
        a = a.astype(_U1 if hi <= 255 else _U2)
    elif a.dtype.kind == "f":
        a = a.astype(_F4, copy=False)
    elif a.dtype.kind not in "iu":
        raise InputError(f"cannot write an image of dtype {a.dtype}.")
    if fmt in ("JPEG", "BMP", "WEBP"):
        if bit_depth == 16:
            raise ValueError(f"{fmt} stores 8-bit samples only; write .png or .tif for 16-bit")
        a = _to_uint8(a)
        if fmt == "JPEG" and a.ndim == 3:
            a = a[..., :3]
    elif fmt == "PNG":
        wide = bit_depth == 16 or (bit_depth is None and a.dtype == _U2)
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
    fh.write(_PNG_MAGIC)
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    if icc:
        _png_chunk(fh, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif
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
        for code in (*_TIFF_TEXT_TAGS, 305):
            value = parsed.get(code)
            if isinstance(value, str) and value.strip():
                value.encode("ascii")
                out[code] = value.strip("\x00")
        return out
    except Exception:  # damaged or non-ASCII EXIF: keep the pixels, skip the tags
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
    if fmt == "PNG" and a.dtype == _U2:
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


def _umask() -> int:
    try:  # thread-safe way on Linux
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    _refuse_inputs(path, protect)
    pixels = _pixels_for(fmt, image, bit_depth)
    exif = _exif_upright(exif)
    if exif is not None and fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF:
        warnings.warn(
            f"EXIF for {path} is {len(exif)} bytes, more than a JPEG can hold; "
            "writing without EXIF",
            stacklevel=2,
        )
        exif = None
    _atomic_write(path, lambda fh: _encode(fh, fmt, pixels, int(quality), exif, icc))
    return path


def write_text(path: PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically (reports, markers): same guarantees as :func:`write_image`."""
    path = Path(path)
    _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    """Write through a temporary file beside ``path`` and rename it into place.

    Nothing is left behind on failure, and a reader never sees a partial
    file. The temporary name is ``.<name>.<8 random chars><suffix>`` (see
    :func:`remove_stale_temps`).
    """
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    tmp: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix, delete=False
        ) as fh:
            tmp = fh.name
            write(fh.file)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, mode)  # NamedTemporaryFile creates 0600
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
