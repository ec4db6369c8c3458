"""Test images and folders shared by the io tests (imported as a plain module)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from napari_focus_stack.io import write_image

RNG = np.random.default_rng(1234)


def rand(shape, dtype=np.uint8):
    info = np.iinfo(dtype)
    return RNG.integers(0, int(info.max) + 1, shape, dtype=dtype)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[271] = "FocusCam"  # Make
    exif[272] = "Model 7"  # Model
    exif[0x0112] = orientation
    return exif


def exif_dict(raw: bytes | None) -> dict:
    exif = Image.Exif()
    exif.load(raw)
    return dict(exif)


def blocky(h: int, w: int) -> np.ndarray:
    """RGB image with a bright top-left quadrant: survives JPEG, shows rotation."""
    a = np.full((h, w, 3), 30, np.uint8)
    a[: h // 2, : w // 2] = 220
    return a


def make_folder(folder: Path, names, shape=(10, 12), dtype=np.uint8) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    frames = {}
    for name in names:
        a = rand(shape, dtype)
        write_image(folder / name, a)
        frames[name] = a
    return frames
