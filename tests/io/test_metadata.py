"""EXIF, orientation and ICC carried from input to output; ImageMeta (io.metadata)."""
from __future__ import annotations

import numpy as np
import pytest
from io_helpers import blocky, camera_exif, exif_dict, rand, srgb_icc
from PIL import Image, ImageOps

from napari_focus_stack.io import ImageMeta, read_image, read_meta, write_image


def test_jpeg_exif_icc_and_orientation_round_trip(tmp_path):
    icc = srgb_icc()
    src = tmp_path / "cam.jpg"
    Image.fromarray(blocky(10, 20)).save(
        src, quality=95, exif=camera_exif(6), icc_profile=icc
    )

    image, meta = read_image(src)
    # orientation 6 = rotate 90 degrees clockwise: 20 wide x 10 high -> 10 x 20
    assert image.shape == (20, 10, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert image[2, 7].mean() > 150  # bright corner moved to the top right
    assert image[2, 2].mean() < 100
    assert meta.shape == image.shape and meta.icc == icc
    tags = exif_dict(meta.exif)
    assert tags[271] == "FocusCam" and tags[272] == "Model 7" and tags[0x0112] == 1
    assert read_meta(src).shape == (20, 10, 3)
    assert read_meta(src).exif == meta.exif

    out = write_image(tmp_path / "result.jpg", image, exif=meta.exif, icc=meta.icc)
    again, meta2 = read_image(out)
    assert again.shape == (20, 10, 3)  # written upright, not rotated twice
    assert np.abs(again.astype(int) - image.astype(int)).mean() < 4
    assert meta2.icc == icc
    tags2 = exif_dict(meta2.exif)
    assert tags2[271] == "FocusCam" and tags2[272] == "Model 7" and tags2[0x0112] == 1


def test_write_resets_orientation_in_given_exif(tmp_path):
    out = write_image(tmp_path / "o.jpg", blocky(8, 12), exif=camera_exif(8).tobytes())
    assert exif_dict(read_meta(out).exif)[0x0112] == 1
    assert read_image(out)[0].shape == (8, 12, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
    a = rand((6, 9, 3))
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(a).save(path, exif=camera_exif(orientation))
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    image, meta = read_image(path)
    np.testing.assert_array_equal(image, expected)
    assert read_meta(path).shape == image.shape == meta.shape


def test_image_meta_normalises_fields():
    meta = ImageMeta(None, [4, 5], "uint16", None, None)
    assert meta.shape == (4, 5) and meta.dtype == np.dtype(np.uint16) and meta.page is None
