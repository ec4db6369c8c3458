"""TIFF files and multi-frame TIFF z-stacks (io.tiff)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_helpers import RNG, camera_exif, exif_dict, rand, srgb_icc
from PIL import Image

from napari_focus_stack.errors import InputError
from napari_focus_stack.io import FrameSource, read_image, read_meta, write_image


def test_lzw_tiff(tmp_path):
    # tifffile needs imagecodecs for LZW; without it Pillow decodes the page
    a = rand((9, 10, 3))
    Image.fromarray(a).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif")[0], a)
    g = rand((9, 10), np.uint16)
    Image.fromarray(g).save(tmp_path / "lzw16.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw16.tif")[0], g)


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((12, 10), np.uint8),
        ((12, 10, 3), np.uint8),
        ((12, 10), np.uint16),
        ((12, 10, 3), np.uint16),
        ((12, 10), np.float32),
        ((12, 10, 3), np.float32),
    ],
)
def test_tiff_round_trip(tmp_path, shape, dtype):
    a = RNG.random(shape, dtype=np.float32) if dtype == np.float32 else rand(shape, dtype)
    path = write_image(tmp_path / "x.tif", a)
    image, meta = read_image(path)
    assert image.dtype == dtype
    np.testing.assert_array_equal(image, a)
    np.testing.assert_array_equal(tifffile.imread(path), a)  # independent decoder
    header = read_meta(path)
    assert (header.shape, header.dtype, header.page) == (shape, np.dtype(dtype), None)


def test_tiff_icc_and_exif_tags(tmp_path):
    icc = srgb_icc()
    exif = camera_exif(6).tobytes()
    path = write_image(tmp_path / "x.tiff", rand((5, 6, 3)), icc=icc, exif=exif)
    meta = read_meta(path)
    assert meta.icc == icc
    tags = exif_dict(meta.exif)
    assert tags[271] == "FocusCam" and tags[272] == "Model 7"
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].tags.valueof(271) == "FocusCam"


def test_multipage_tiff_is_a_stack(tmp_path):
    stack = rand((4, 9, 11), np.uint16)
    path = tmp_path / "z stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    src = FrameSource.from_inputs(path)
    assert len(src) == 4 and src.shape == (9, 11) and src.dtype == np.uint16
    assert src.paths == [path] * 4
    assert [src.meta(i).page for i in range(4)] == [0, 1, 2, 3]
    for i in range(len(src)):
        np.testing.assert_array_equal(src.read(i), stack[i])
    np.testing.assert_array_equal(read_image(path, page=2)[0], stack[2])
    assert read_meta(path).page == 0
    with pytest.raises(InputError, match="z stack.tif"):
        read_image(path, page=9)


def test_pillow_multipage_and_rgb_volume_tiffs(tmp_path):
    frames = [rand((8, 10, 3)) for _ in range(3)]
    Image.fromarray(frames[0]).save(
        tmp_path / "pil.tif", save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]]
    )
    src = FrameSource.from_inputs([tmp_path / "pil.tif"])
    assert len(src) == 3 and src.shape == (8, 10, 3)
    np.testing.assert_array_equal(src.read(2), frames[2])

    vol = rand((3, 8, 10, 3))
    tifffile.imwrite(tmp_path / "vol.tif", vol, photometric="rgb")
    src = FrameSource.from_inputs(tmp_path / "vol.tif")
    np.testing.assert_array_equal(np.stack([src.read(i) for i in range(len(src))]), vol)


def test_imagej_zcyx_tiff(tmp_path):
    zcyx = rand((4, 3, 8, 10))
    tifffile.imwrite(tmp_path / "ij.tif", zcyx, imagej=True, metadata={"axes": "ZCYX"})
    src = FrameSource.from_inputs(tmp_path / "ij.tif")
    assert len(src) == 4 and src.shape == (8, 10, 3)
    np.testing.assert_array_equal(src.read(1), np.moveaxis(zcyx[1], 0, -1))
