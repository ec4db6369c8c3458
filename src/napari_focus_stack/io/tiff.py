"""Reading TIFF files and multi-frame TIFF z-stacks with tifffile.

The first series of a file is mapped onto frames of shape ``(H, W[, 3])``
(:class:`TiffLayout`): length-1 axes are dropped, the one remaining
non-spatial axis is the z axis, RGB samples (or a three-channel ImageJ
composite) become colour. A file whose pages are exactly its frames is read
one page at a time; any other layout is decoded once and kept. Damaged size
fields and truncated strips are refused rather than read as black pixels,
and compressed pages that need the missing imagecodecs package fall back to
Pillow where that decodes them faithfully.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from ..errors import InputError
from .checks import decode_pixel_limit, guarded, tifffile_messages, warn_tifffile_messages
from .metadata import (
    F4,
    TIFF_TEXT_TAGS,
    U1,
    U2,
    ImageMeta,
    apply_orientation,
    oriented_shape,
)
from .pillow import pil_to_array


@dataclass
class TiffLayout:
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
        max(0, min(int(n), size - int(o))) for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)
    )
    key = getattr(page, "keyframe", None) or page  # TiffFrame holds only offsets
    bits = int(np.prod(key.shape)) * int(key.bitspersample)
    if int(key.compression) == 1:
        if stored * 8 < bits:
            raise ValueError(f"truncated: {stored} bytes stored for {bits // 8} bytes of pixels")
    elif bits // 8 > max(1 << 24, 5000 * stored):  # beyond any real compression ratio
        raise ValueError(f"damaged size fields: {bits // 8} bytes of pixels from {stored} bytes")


def check_planes_present(series: Any, path: Path) -> None:
    """Refuse a series whose metadata names planes that the file does not hold.

    tifffile reads such planes as zeros (an OME-XML claiming ``SizeZ="20"``
    for 9 stored planes, an interrupted copy): fused, they would give a
    black image and a flat depth map without a word.
    """
    try:
        pages = list(series.pages)
    except Exception:  # noqa: BLE001 - a series that cannot list its pages fails when read, by name
        return
    missing = sum(p is None for p in pages)
    if missing:
        raise InputError(
            f"{path} is incomplete: its metadata describes {len(pages)} planes but {missing} of them are not in "
            "the file (they would read as black). Copy the file again if the copy was interrupted, or re-export it."
        )


def _tiff_out_dtype(dtype: np.dtype, path: Path) -> np.dtype:
    if dtype in (U1, U2):
        return dtype
    if dtype == np.bool_:
        return U1
    if dtype.kind == "f":
        return F4
    raise InputError(
        f"{path} holds {dtype} samples; only 8-bit, 16-bit and floating-point TIFFs "
        "are supported. Convert it (e.g. to 16-bit unsigned) and try again."
    )


def _tiff_exif(page: Any) -> bytes | None:
    exif = Image.Exif()
    for code in TIFF_TEXT_TAGS:
        value = page.tags.valueof(code)
        if isinstance(value, str) and value.strip():
            exif[code] = value
    return exif.tobytes() if len(exif) else None


def _tiff_layout(tif: tifffile.TiffFile, path: Path) -> TiffLayout:
    if not tif.series:
        raise InputError(f"{path} contains no image data. Remove it or re-export it.")
    series = tif.series[0]
    check_planes_present(series, path)
    page = series.keyframe
    axes, shape = series.axes, tuple(series.shape)
    keep = [k for k, (ax, n) in enumerate(zip(axes, shape, strict=False)) if n != 1 or ax in "YX"]
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
    limit = decode_pixel_limit()
    if limit is not None and h * w > limit:
        raise Image.DecompressionBombError(f"{h * w} pixels")
    _check_page_data(page)
    dtype_in = np.dtype(series.dtype)
    orientation = page.tags.valueof(274, default=1)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    icc = page.tags.valueof(34675)
    return TiffLayout(
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
        shape=oriented_shape(h, w, 3 if rgb else 1, orientation),
        exif=_tiff_exif(page),
        icc=bytes(icc) if isinstance(icc, (bytes, bytearray)) and icc else None,
    )


def probe_tiff(path: Path) -> TiffLayout:
    def probe() -> TiffLayout:
        with tifffile.TiffFile(path) as tif:
            return _tiff_layout(tif, path)

    with tifffile_messages() as messages:
        layout = guarded(path, "TIFF", probe)
    warn_tifffile_messages(path, messages)
    return layout


def _finish_tiff_frame(raw: np.ndarray, layout: TiffLayout) -> np.ndarray:
    """Channel selection, photometric, dtype and orientation for one frame."""
    a = raw
    if a.ndim == 3:
        a = a[..., :3] if layout.rgb else a[..., 0]
    if layout.miniswhite:
        a = ~a if a.dtype.kind in "ub" else a.max() - a
    if a.dtype == np.bool_:
        a = a.astype(U1) * np.uint8(255)
    elif a.dtype != layout.dtype:
        a = a.astype(layout.dtype)
    return np.ascontiguousarray(apply_orientation(a, layout.orientation))


def _tiff_all_frames(path: Path, layout: TiffLayout) -> np.ndarray:
    """The whole series as (F, Y, X[, C]) before per-frame finishing."""
    with tifffile.TiffFile(path) as tif:
        for page in tif.series[0].pages:
            if page is not None:
                _check_page_data(page)
        a = tif.series[0].asarray()
    a = a.reshape(layout.squeezed).transpose(layout.perm)
    return a if layout.frames > 1 else a[np.newaxis]


def _tiff_page_with_pillow(path: Path, layout: TiffLayout, i: int) -> np.ndarray:
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
        a = pil_to_array(im, path)
    a = np.ascontiguousarray(apply_orientation(a, layout.orientation))
    if a.shape != layout.shape or a.dtype != layout.dtype:
        raise InputError(
            f"{path} could not be decoded faithfully without the imagecodecs package; "
            "install it (`pip install imagecodecs`) or re-save the file with ZIP compression."
        )
    return a


def read_tiff_frame(path: Path, layout: TiffLayout, i: int) -> np.ndarray:
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

    with tifffile_messages():  # said once, when the file was probed
        return guarded(path, "TIFF", decode)


def tiff_meta(path: Path, layout: TiffLayout, page: int | None) -> ImageMeta:
    return ImageMeta(path, layout.shape, layout.dtype, layout.exif, layout.icc, page)


class TiffStack:
    """Frames of one multi-frame TIFF; whole-series layouts are decoded once and kept."""

    def __init__(self, path: Path, layout: TiffLayout) -> None:
        self.path, self.layout = path, layout
        self._all: np.ndarray | None = None
        self._lock = threading.Lock()

    def read(self, i: int) -> np.ndarray:
        if self.layout.per_page:
            return read_tiff_frame(self.path, self.layout, i)
        with self._lock:
            if self._all is None:
                with tifffile_messages():  # said once, when the file was probed
                    self._all = guarded(self.path, "TIFF", lambda: _tiff_all_frames(self.path, self.layout))
        return _finish_tiff_frame(self._all[i], self.layout)
