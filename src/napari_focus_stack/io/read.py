"""Reading one image file: :func:`read_image` (pixels) and :func:`read_meta` (header).

The file's first bytes pick the decoder (tifffile for TIFF, Pillow for the
rest), whatever its extension says.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import as_path, check_file, guarded, is_tiff, kind_of
from .metadata import ImageMeta
from .paths import PathLike
from .pillow import meta_pillow, read_pillow
from .tiff import TiffLayout, probe_tiff, read_tiff_frame, tiff_meta

__all__ = ["read_image", "read_meta"]


def _frame_index(path: Path, page: int | None, frames: int) -> int:
    i = 0 if page is None else int(page)
    if not 0 <= i < frames:
        raise InputError(f"{path} has {frames} frame(s); frame {page} does not exist.")
    return i


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
    path = as_path(path)
    head = check_file(path)
    if is_tiff(head):
        layout = probe_tiff(path)
        i = _frame_index(path, page, layout.frames)
        a = read_tiff_frame(path, layout, i)
        return a, tiff_meta(path, layout, i if layout.frames > 1 else page)
    _frame_index(path, page, 1)
    return guarded(path, kind_of(head), lambda: read_pillow(path, head, reduce))


def probe_file(path: Path) -> tuple[ImageMeta, TiffLayout | None]:
    head = check_file(path)
    if is_tiff(head):
        layout = probe_tiff(path)
        return tiff_meta(path, layout, 0 if layout.frames > 1 else None), layout
    return guarded(path, kind_of(head), lambda: meta_pillow(path, head)), None


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
    return probe_file(as_path(path))[0]
