"""Decoding JPEG, PNG, BMP and WebP with Pillow.

Pillow is only asked for what it decodes faithfully: the list of formats it
may identify is closed (so a damaged file is not "recognised" as some
header-less format such as TGA), and 16-bit colour PNGs, whose low bytes
Pillow drops, are decoded twice with raw modes that keep the high and the
low bytes (see :func:`_decode_png16_colour`). Pixels come back upright,
without alpha, as ``uint8``, ``uint16`` or ``float32``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .checks import PNG_MAGIC
from .jpeg import jpeg_damage
from .metadata import (
    F4,
    U1,
    U2,
    ImageMeta,
    apply_orientation,
    exif_orientation,
    exif_upright,
    normalize_exif,
    oriented_shape,
)

# Formats Pillow may identify. Restricting the list keeps Pillow from
# "recognising" a damaged file as some header-less format such as TGA.
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")  # MPO comes via JPEG

# Pillow mode -> (channels after conversion, dtype after conversion).
_PIL_MODE_LAYOUT: dict[str, tuple[int, np.dtype]] = {
    "1": (1, U1),
    "L": (1, U1),
    "LA": (1, U1),
    "La": (1, U1),
    "P": (3, U1),
    "PA": (3, U1),
    "RGB": (3, U1),
    "RGBA": (3, U1),
    "RGBa": (3, U1),
    "RGBX": (3, U1),
    "CMYK": (3, U1),
    "YCbCr": (3, U1),
    "LAB": (3, U1),
    "HSV": (3, U1),
    "I;16": (1, U2),
    "I;16L": (1, U2),
    "I;16B": (1, U2),
    "I;16N": (1, U2),
    "I": (1, U2),
    "F": (1, F4),
}

# Modes whose ICC profile (if any) describes a colour space we convert away from.
_PIL_CONVERTED_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})


def _png16_colour_type(head: bytes) -> int | None:
    """PNG colour type when `head` starts a 16-bit PNG, else None."""
    if not head.startswith(PNG_MAGIC) or len(head) < 26 or head[12:16] != b"IHDR":
        return None
    return head[25] if head[24] == 16 else None


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


def pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
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
        return np.asarray(im).astype(U2)
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise InputError(
                f"{path} holds 32-bit integer samples outside 0..65535; "
                "re-export it as 8-bit, 16-bit or float."
            )
        return a.astype(U2)
    raise InputError(
        f"{path} uses the unsupported colour mode {mode!r}. Re-export it as "
        "8- or 16-bit grayscale or RGB."
    )


def _decode_jpeg_opencv(path: Path, colour: bool, reduce: int) -> tuple[np.ndarray | None, str | None]:
    """A baseline or progressive 8-bit JPEG decoded by OpenCV, or None where it cannot; and why the file
    looks damaged (None when it does not).

    OpenCV and Pillow both decode with libjpeg-turbo (integer IDCT, smooth
    chroma upsampling): the same pixels, tested, but OpenCV decodes straight
    into one array, about 40 % faster for a 12 MP frame, where Pillow
    decodes into its own buffer and copies it out. ``reduce`` (1, 2, 4 or
    8) scales in the DCT domain, as Pillow's ``draft`` does. EXIF orientation is
    left to the caller, as with Pillow.

    OpenCV gives no error for damaged compressed data, so the file's marker
    structure is checked first (:func:`~.jpeg.jpeg_damage`: about 2 ms for a
    5 MB 12 MP file that decodes in 85 ms); a file that fails it goes to
    Pillow, whose decoder raises for damaged data.
    """
    try:
        import cv2
    except ImportError:  # the engine needs OpenCV, but reading images need not
        return None, None
    scaled = {1: (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE),
              2: (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
              4: (cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
              8: (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8)}.get(reduce)
    if scaled is None:
        return None, None
    try:
        data = np.fromfile(path, np.uint8)  # not imread: file names in any encoding, on any platform
    except OSError:
        return None, None  # Pillow's path reports it
    damage = jpeg_damage(data)
    if damage is not None:
        return None, damage  # OpenCV would decode it without an error; Pillow raises (or decodes an odd file)
    a = cv2.imdecode(data, scaled[0 if colour else 1] | cv2.IMREAD_IGNORE_ORIENTATION)
    if a is None or a.ndim != (3 if colour else 2):
        return None, None
    if colour:
        cv2.cvtColor(a, cv2.COLOR_BGR2RGB, dst=a)
    return a, None


def read_pillow(path: Path, head: bytes, reduce: int = 1) -> tuple[np.ndarray, ImageMeta]:
    colour_type = _png16_colour_type(head)
    with Image.open(path, formats=_PIL_FORMATS) as im:
        mode = im.mode
        a = damage = None
        if im.format == "JPEG" and mode in ("RGB", "L"):  # not CMYK, not multi-picture (MPO)
            a, damage = _decode_jpeg_opencv(path, mode == "RGB", reduce)
        if a is not None:
            info = dict(im.info)
        elif colour_type in (2, 4, 6):
            a, info = _decode_png16_colour(im, path, colour_type)
        else:
            if reduce > 1 and im.format == "JPEG":
                # DCT-domain downscaling: decodes several times faster (JPEG only)
                im.draft(im.mode, (-(-im.size[0] // reduce), -(-im.size[1] // reduce)))
            try:
                im.load()
            except OSError as exc:
                if damage is not None and "broken data stream" in str(exc):  # say what is wrong in it
                    raise OSError(f"corrupt JPEG data: {damage}") from exc
                raise
            a, info = pil_to_array(im, path), dict(im.info)
    raw_exif = normalize_exif(info.get("exif"))
    a = np.ascontiguousarray(apply_orientation(a, exif_orientation(raw_exif)))
    if not a.flags.writeable:
        a = a.copy()
    icc = None if mode in _PIL_CONVERTED_MODES else (info.get("icc_profile") or None)
    return a, ImageMeta(path, a.shape, a.dtype, exif_upright(raw_exif), icc)


def meta_pillow(path: Path, head: bytes) -> ImageMeta:
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
        channels, dtype = (3 if colour_type in (2, 6) else 1), U2
    raw_exif = normalize_exif(info.get("exif"))
    shape = oriented_shape(h, w, channels, exif_orientation(raw_exif))
    icc = None if mode in _PIL_CONVERTED_MODES else (info.get("icc_profile") or None)
    return ImageMeta(path, shape, dtype, exif_upright(raw_exif), icc)
