"""Reading frames and z-stacks, natural file order, and safe writing.

Everything a user points the stacker at goes through this package: single
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

The modules, one job each:

``paths``
    natural sort, the image-name test, expanding folders and globs
``metadata``
    :class:`ImageMeta`, EXIF orientation, ICC
``checks``
    file checks before decoding, format sniffing, InputError wording
``pillow``, ``tiff``
    decoding with Pillow (JPEG, PNG, BMP, WebP) and tifffile (TIFF stacks)
``jpeg``
    a cheap check of a JPEG's marker structure before OpenCV's fast decoder
``read``
    :func:`read_image` and :func:`read_meta` for one file
``source``
    :class:`FrameSource`, the frames of one stack, decoded one at a time
``encoders``
    :func:`write_image` in every supported format
``atomic``
    :func:`write_atomic`, :func:`write_text`, :func:`remove_stale_temps`
``hyperstack``
    calibrated N-D data with named axes, read a plane at a time:
    :class:`Hyperstack`, :class:`Calibration`
``microscopy``
    microscope files (ImageJ, OME-TIFF, OME-Zarr) opened lazily as Hyperstacks:
    :func:`read_hyperstack`, :func:`is_hyperstack_file`, :func:`plane_count`
``calibrated``
    calibrated TIFF output (ImageJ or OME-TIFF), plane by plane:
    :class:`CalibratedTiffWriter`, :func:`write_calibrated_tiff`
``calibrated_image``
    calibrated images without a z axis (the results written above), read
    back: :func:`read_calibrated_image`
``mesh``
    triangle meshes (a height map's surface) to PLY, STL and OBJ: :func:`write_mesh`
"""
from __future__ import annotations

from .atomic import remove_stale_temps, write_atomic, write_text
from .calibrated import CalibratedTiffWriter, is_ome_name, write_calibrated_tiff
from .encoders import write_image
from .hyperstack import Calibration, Hyperstack
from .metadata import ImageMeta
from .microscopy import is_hyperstack_file, plane_count, read_hyperstack
from .paths import (
    IMAGE_EXTENSIONS,
    expand_inputs,
    is_image_name,
    natural_sort_key,
    natural_sorted,
)
from .read import read_image, read_meta
from .source import FrameSource

__all__ = [
    "IMAGE_EXTENSIONS",
    "CalibratedTiffWriter",
    "Calibration",
    "FrameSource",
    "Hyperstack",
    "ImageMeta",
    "expand_inputs",
    "is_hyperstack_file",
    "is_image_name",
    "is_ome_name",
    "natural_sort_key",
    "natural_sorted",
    "plane_count",
    "read_hyperstack",
    "read_image",
    "read_meta",
    "remove_stale_temps",
    "write_atomic",
    "write_calibrated_tiff",
    "write_image",
    "write_text",
]
