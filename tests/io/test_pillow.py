"""JPEG, PNG, BMP and WebP decoded with Pillow, 16-bit colour PNG kept whole (io.pillow)."""
from __future__ import annotations

import numpy as np
import pytest
from io_helpers import blocky, camera_exif, exif_dict, rand, srgb_icc
from PIL import Image, ImageFile

from napari_focus_stack.io import read_image, read_meta, write_image


def test_truncated_images_flag_untouched():
    import napari_focus_stack.io  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((13, 17), np.uint8),
        ((13, 17, 3), np.uint8),
        ((13, 17), np.uint16),
        ((13, 17, 3), np.uint16),
    ],
)
def test_png_round_trip(tmp_path, shape, dtype):
    a = rand(shape, dtype)
    path = write_image(tmp_path / "x.png", a)
    image, meta = read_image(path)
    assert image.dtype == dtype and image.shape == shape
    np.testing.assert_array_equal(image, a)
    assert (meta.shape, meta.dtype) == (shape, np.dtype(dtype))
    header = read_meta(path)
    assert (header.shape, header.dtype) == (shape, np.dtype(dtype))
    with Image.open(path) as im:  # independent decoder
        if dtype == np.uint16 and len(shape) == 3:
            # Pillow only keeps the high byte of 16-bit colour PNG
            np.testing.assert_array_equal(np.asarray(im), (a >> 8).astype(np.uint8))
        else:
            np.testing.assert_array_equal(np.asarray(im).astype(dtype), a)


def hand_made_png16(a: np.ndarray, colour_type: int, interlace: int) -> bytes:
    """A 16-bit PNG from first principles (filter 0, optional Adam7) as a reference."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    # Adam7 passes: (x0, y0, dx, dy)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4)]
    passes += [(0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes if interlace else [(0, 0, 1, 1)]:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += b"".join(b"\0" + row.astype(">u2").tobytes() for row in sub)
    h, w = a.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, interlace)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("interlace", [0, 1])
@pytest.mark.parametrize("colour_type, channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
def test_png16_from_independent_encoder(tmp_path, colour_type, channels, interlace):
    a = rand((13, 11, channels) if channels > 1 else (13, 11), np.uint16)
    path = tmp_path / "ref.png"
    path.write_bytes(hand_made_png16(a, colour_type, interlace))
    expected = {1: a, 2: a[..., 0] if a.ndim == 3 else a, 3: a, 4: a[..., :3]}[channels]
    image, meta = read_image(path)
    np.testing.assert_array_equal(image, expected)
    assert read_meta(path).shape == image.shape == meta.shape
    assert meta.dtype == np.uint16


def test_png16_rgb_keeps_icc_and_exif(tmp_path):
    icc = srgb_icc()
    a = rand((9, 11, 3), np.uint16)
    path = write_image(tmp_path / "x.png", a, icc=icc, exif=camera_exif(1).tobytes())
    image, meta = read_image(path)
    np.testing.assert_array_equal(image, a)
    assert meta.icc == icc
    assert exif_dict(meta.exif)[271] == "FocusCam"


def test_rgba_alpha_dropped(tmp_path):
    rgba = rand((7, 8, 4))
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image, meta = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image, rgba[..., :3])
    assert read_meta(tmp_path / "a.png").shape == (7, 8, 3)

    rgba16 = rand((7, 8, 4), np.uint16)
    write_image(tmp_path / "a16.png", rgba16)
    image16, _ = read_image(tmp_path / "a16.png")
    np.testing.assert_array_equal(image16, rgba16[..., :3])


def test_palette_and_gray_alpha_converted(tmp_path):
    rgb = blocky(6, 6)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    image, _ = read_image(tmp_path / "p.png")
    assert image.shape == (6, 6, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, rgb)
    Image.fromarray(rand((5, 5))).convert("LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png")[0].shape == (5, 5)


def test_bmp_and_webp(tmp_path):
    a = rand((6, 7, 3))
    write_image(tmp_path / "x.bmp", a)
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp")[0], a)
    write_image(tmp_path / "x.webp", blocky(16, 16), quality=100)
    assert read_image(tmp_path / "x.webp")[0].shape == (16, 16, 3)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("orientation", [1, 6])
def test_jpeg_decodes_to_pillows_pixels(tmp_path, monkeypatch, mode, progressive, orientation):
    # JPEGs are decoded by OpenCV (faster, one array): the pixels, the half-size
    # decode and the orientation must be Pillow's
    from PIL import ImageOps

    from napari_focus_stack.io import pillow

    rng = np.random.default_rng(orientation)
    base = np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)  # 96 x 128, odd blocks
    path = tmp_path / "f.jpg"
    Image.fromarray(noisy).convert(mode).save(path, quality=90, progressive=progressive,
                                              exif=camera_exif(orientation))
    calls = []
    real = pillow._decode_jpeg_opencv
    monkeypatch.setattr(pillow, "_decode_jpeg_opencv", lambda *a: calls.append(a) or real(*a))
    for reduce in (1, 2):
        with Image.open(path) as im:
            if reduce > 1:
                im.draft(im.mode, (im.size[0] // reduce, im.size[1] // reduce))
            expected = np.asarray(ImageOps.exif_transpose(im))
        image, meta = read_image(path, reduce=reduce)
        assert image.shape == expected.shape and image.dtype == np.uint8 and image.flags.writeable
        assert np.abs(image.astype(int) - expected).max() <= 1  # libjpeg-turbo builds may round apart
        assert np.mean(image != expected) < 0.001
    assert len(calls) == 2  # both decodes took the OpenCV path
