"""Tests for napari_focus_stack.io: reading, natural order, stacks, safe writing."""
from __future__ import annotations

import errno
import io as stdio
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile, ImageOps

from napari_focus_stack.errors import InputError, OutputError, StackError
from napari_focus_stack.io import (
    IMAGE_EXTENSIONS,
    FrameSource,
    ImageMeta,
    exif_from,
    expand_inputs,
    natural_sort_key,
    natural_sorted,
    read_image,
    read_meta,
    write_image,
)

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


# --------------------------------------------------------------------------
# natural order
# --------------------------------------------------------------------------


def test_natural_sort_numbers_case_and_name_first():
    names = ["scan_10.jpg", "scan_2.jpg", "Scan_1.jpg", "scan_1a.jpg"]
    assert natural_sorted(names) == ["Scan_1.jpg", "scan_1a.jpg", "scan_2.jpg", "scan_10.jpg"]
    assert natural_sort_key("IMG_3.JPG") < natural_sort_key("img_4.jpg")
    # the file name decides before the folder
    assert natural_sorted(["b/img_10.png", "a/img_2.png"]) == ["a/img_2.png", "b/img_10.png"]
    # ties on the name fall back to the full path, then the raw string
    assert natural_sorted(["z/f1", "a/f1"]) == ["a/f1", "z/f1"]
    assert natural_sorted(["f01", "f1"]) == ["f01", "f1"]
    paths = [Path("x/p_100.tif"), Path("x/p_20.tif")]
    assert natural_sorted(paths) == paths[::-1]


def test_image_extensions():
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


def test_truncated_images_flag_untouched():
    import napari_focus_stack.io  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --------------------------------------------------------------------------
# JPEG: EXIF, ICC, orientation
# --------------------------------------------------------------------------


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
    assert exif_from(src) == meta.exif == exif_from(meta)

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


# --------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------


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


def test_lzw_tiff(tmp_path):
    # tifffile needs imagecodecs for LZW; without it Pillow decodes the page
    a = rand((9, 10, 3))
    Image.fromarray(a).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif")[0], a)
    g = rand((9, 10), np.uint16)
    Image.fromarray(g).save(tmp_path / "lzw16.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw16.tif")[0], g)


def test_bmp_and_webp(tmp_path):
    a = rand((6, 7, 3))
    write_image(tmp_path / "x.bmp", a)
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp")[0], a)
    write_image(tmp_path / "x.webp", blocky(16, 16), quality=100)
    assert read_image(tmp_path / "x.webp")[0].shape == (16, 16, 3)


# --------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------


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


def test_float_and_16bit_conversions_on_write(tmp_path):
    f = np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)
    as8 = read_image(write_image(tmp_path / "f.png", f))[0]
    np.testing.assert_array_equal(as8, [[0, 128, 255, 255]])
    as16 = read_image(write_image(tmp_path / "f16.png", f, bit_depth=16))[0]
    np.testing.assert_array_equal(as16, [[0, 32768, 65535, 65535]])
    u16 = np.array([[0, 128, 129, 257, 65535]] * 8, np.uint16)
    as8 = read_image(write_image(tmp_path / "u.png", u16, bit_depth=8))[0]
    np.testing.assert_array_equal(as8[0], [0, 0, 1, 1, 255])
    flat = np.full((16, 16, 3), 257 * 100, np.uint16)
    jpg = read_image(write_image(tmp_path / "u.jpg", flat))[0]
    assert jpg.dtype == np.uint8 and abs(int(jpg.mean()) - 100) <= 1


def test_multipage_tiff_is_a_stack(tmp_path):
    stack = rand((4, 9, 11), np.uint16)
    path = tmp_path / "z stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    src = FrameSource.from_inputs(path)
    assert len(src) == 4 and src.shape == (9, 11) and src.dtype == np.uint16
    assert src.paths == [path] * 4
    assert [src.meta(i).page for i in range(4)] == [0, 1, 2, 3]
    for i, frame in src.iter_frames():
        np.testing.assert_array_equal(frame, stack[i])
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
    np.testing.assert_array_equal(np.stack([f for _, f in src.iter_frames()]), vol)


def test_imagej_zcyx_tiff(tmp_path):
    zcyx = rand((4, 3, 8, 10))
    tifffile.imwrite(tmp_path / "ij.tif", zcyx, imagej=True, metadata={"axes": "ZCYX"})
    src = FrameSource.from_inputs(tmp_path / "ij.tif")
    assert len(src) == 4 and src.shape == (8, 10, 3)
    np.testing.assert_array_equal(src.read(1), np.moveaxis(zcyx[1], 0, -1))


# --------------------------------------------------------------------------
# FrameSource
# --------------------------------------------------------------------------


def make_folder(folder: Path, names, shape=(10, 12), dtype=np.uint8) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    frames = {}
    for name in names:
        a = rand(shape, dtype)
        write_image(folder / name, a)
        frames[name] = a
    return frames


def test_framesource_from_folder_natural_order(tmp_path):
    frames = make_folder(tmp_path / "stack", ["img_10.png", "img_2.png", "IMG_1.png"])
    (tmp_path / "stack" / "notes.txt").write_text("not an image")
    (tmp_path / "stack" / "._img_3.png").write_bytes(b"AppleDouble junk")
    (tmp_path / "stack" / "sub").mkdir()
    src = FrameSource.from_inputs(tmp_path / "stack")
    assert src.names == ["IMG_1.png", "img_2.png", "img_10.png"]
    assert src.paths == [tmp_path / "stack" / n for n in src.names]
    for i, frame in src.iter_frames():
        np.testing.assert_array_equal(frame, frames[src.names[i]])
    assert expand_inputs(str(tmp_path / "stack" / "*.png")) == src.paths


def test_framesource_from_list_keeps_order(tmp_path):
    make_folder(tmp_path, ["a_1.png", "a_2.png", "a_10.png"])
    order = [tmp_path / "a_10.png", tmp_path / "a_1.png", str(tmp_path / "a_2.png")]
    src = FrameSource.from_inputs(order)
    assert src.names == ["a_10.png", "a_1.png", "a_2.png"]
    assert [i for i, _ in src.iter_frames(order=[2, 0], prefetch=1)] == [2, 0]
    assert [i for i, _ in src.iter_frames(prefetch=0)] == [0, 1, 2]


def test_framesource_from_arrays(tmp_path):
    zyx = rand((3, 5, 6))
    src = FrameSource.from_inputs(zyx)
    assert len(src) == 3 and src.shape == (5, 6) and src.paths == [None] * 3
    assert src.names == ["frame 0", "frame 1", "frame 2"]
    frame = src.read(1)
    np.testing.assert_array_equal(frame, zyx[1])
    frame[:] = 0  # a copy: the caller's data is untouched
    assert zyx[1].any()

    zyxc = rand((2, 5, 6, 4), np.uint16)
    src = FrameSource.from_inputs(zyxc)
    assert src.shape == (5, 6, 3) and src.dtype == np.uint16
    np.testing.assert_array_equal(src.read(-1), zyxc[1, ..., :3])

    listed = FrameSource.from_inputs([np.zeros((4, 4)), np.ones((4, 4))])
    assert listed.dtype == np.float32 and listed.shape == (4, 4)
    ints = FrameSource.from_inputs([np.full((4, 4), 7, np.int64), np.zeros((4, 4), np.int64)])
    assert ints.dtype == np.uint8
    with pytest.raises(StackError, match="frame 1"):
        FrameSource.from_inputs([np.zeros((4, 4)), np.zeros((4, 5))])
    with pytest.raises(StackError, match="at least 2 frames"):
        FrameSource.from_inputs(np.zeros((4, 4)))


def test_iter_frames_prefetches_in_threads_with_a_bound():
    import threading

    started: list[int] = []
    threads: set[str] = set()

    def loader(k):
        def load():
            started.append(k)
            threads.add(threading.current_thread().name)
            return np.full((3, 3), k, np.uint8)

        return load

    n, prefetch = 8, 2
    metas = [ImageMeta(None, (3, 3), np.uint8, None, None) for _ in range(n)]
    src = FrameSource([loader(k) for k in range(n)], metas)
    for position, (k, frame) in enumerate(src.iter_frames(prefetch=prefetch)):
        assert k == position and frame[0, 0] == k
        assert max(started) <= position + prefetch
    assert threading.current_thread().name not in threads


def test_prefetch_propagates_decode_errors(tmp_path):
    make_folder(tmp_path, ["f1.jpg", "f2.jpg", "f3.jpg"], shape=(64, 64, 3))
    data = (tmp_path / "f2.jpg").read_bytes()
    (tmp_path / "f2.jpg").write_bytes(data[: len(data) * 2 // 3])  # header intact
    src = FrameSource.from_inputs(tmp_path)  # headers are fine
    seen = []
    with pytest.raises(InputError, match="f2.jpg"):
        for i, _ in src.iter_frames(prefetch=2):
            seen.append(i)
    assert seen == [0]
    gen = src.iter_frames(order=[0, 0, 0, 0])
    assert next(gen)[0] == 0
    gen.close()  # stopping early shuts the pool down cleanly


@pytest.mark.parametrize(
    "odd, odd_shape, odd_dtype, words",
    [
        ("b_3.png", (10, 13), np.uint8, "same size"),
        ("b_3.png", (10, 12, 3), np.uint8, "grayscale and colour"),
        ("b_3.png", (10, 12), np.uint16, "bit depth"),
    ],
)
def test_mixed_stacks_name_the_odd_file(tmp_path, odd, odd_shape, odd_dtype, words):
    make_folder(tmp_path, ["b_1.png", "b_2.png"])
    make_folder(tmp_path, [odd], shape=odd_shape, dtype=odd_dtype)
    with pytest.raises(StackError, match=words) as err:
        FrameSource.from_inputs(tmp_path)
    assert "b_3.png" in str(err.value) and "b_1.png" in str(err.value)


def test_too_few_frames_and_empty_folder(tmp_path):
    make_folder(tmp_path / "one", ["only.png"])
    with pytest.raises(StackError, match="at least 2 frames; got 1: .*only.png"):
        FrameSource.from_inputs(tmp_path / "one")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="empty"):
        FrameSource.from_inputs(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        FrameSource.from_inputs(tmp_path / "missing")
    with pytest.raises(InputError, match="no image files match"):
        expand_inputs(str(tmp_path / "nothing_*.jpg"))


def test_multipage_tiff_mixed_with_files_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", rand((3, 10, 12)), photometric="minisblack")
    make_folder(tmp_path, ["b.tif"])
    with pytest.raises(StackError, match="a.tif holds 3 frames"):
        FrameSource.from_inputs(tmp_path)


# --------------------------------------------------------------------------
# damaged inputs
# --------------------------------------------------------------------------


def test_damaged_files_raise_input_error_naming_them(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("these are my notes, not a picture\n" * 10)
    write_image(tmp_path / "full.jpg", blocky(64, 64))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    write_image(tmp_path / "full.tif", rand((64, 64), np.uint16))
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])

    for name, words in [
        ("zero.jpg", "empty"),
        ("notes.jpg", "not a readable image"),
        ("cut.jpg", "truncated"),
        ("cut.tif", "not a readable image"),
        ("missing.png", "not found"),
    ]:
        with pytest.raises(InputError, match=words) as err:
            read_image(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(InputError, match="notes.jpg"):
        read_meta(tmp_path / "notes.jpg")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


def test_write_is_atomic_when_encoder_fails(tmp_path, monkeypatch):
    out = tmp_path / "result.jpg"
    out.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8 partial data")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="disk is full") as err:
        write_image(out, blocky(8, 8))
    assert "result.jpg" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jpg"]
    assert out.read_bytes() == b"previous result"

    def broken_tiff(fh, *args, **kwargs):
        fh.write(b"II*\x00half")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(tifffile, "imwrite", broken_tiff)
    with pytest.raises(OutputError, match="new.tif"):
        write_image(tmp_path / "new.tif", rand((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jpg"]


def test_write_refuses_to_overwrite_inputs(tmp_path, monkeypatch):
    make_folder(tmp_path, ["in_1.png", "in_2.png"])
    before = (tmp_path / "in_1.png").read_bytes()
    src = FrameSource.from_inputs(tmp_path)
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        write_image(tmp_path / "in_1.png", rand((10, 12)), protect=src.paths)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        write_image("./sub/../in_2.png", rand((10, 12)), protect=[tmp_path / "in_2.png"])
    assert (tmp_path / "in_1.png").read_bytes() == before
    write_image(tmp_path / "out.png", rand((10, 12)), protect=src.paths)  # other names are fine


def test_write_bad_destinations(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile"):
        write_image(tmp_path / "afile" / "out.png", rand((4, 4)))
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "nope" / "out.png", rand((4, 4)))
    with pytest.raises(OutputError, match="unknown image type"):
        write_image(tmp_path / "out.gif", rand((4, 4)))
    with pytest.raises(InputError, match="shape"):
        write_image(tmp_path / "out.png", np.zeros((4, 4, 2)))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions"
)
def test_write_to_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied") as err:
            write_image(folder / "out.png", rand((4, 4)))
        assert "out.png" in str(err.value)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_non_ascii_and_space_paths(tmp_path):
    folder = tmp_path / "stäck frames"
    folder.mkdir()
    frames = [blocky(16, 16), blocky(16, 16)[::-1].copy()]
    for k, a in enumerate(frames, 1):
        write_image(folder / f"bild {k}.jpg", a)
    image, meta = read_image(folder / "bild 1.jpg")
    assert image.shape == (16, 16, 3) and meta.path == folder / "bild 1.jpg"
    src = FrameSource.from_inputs(str(folder))
    assert src.names == ["bild 1.jpg", "bild 2.jpg"]
    (folder / "bild 3.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="stäck frames/bild 3.jpg"):
        FrameSource.from_inputs(folder)


def test_image_meta_normalises_fields():
    meta = ImageMeta(None, [4, 5], "uint16", None, None)
    assert meta.shape == (4, 5) and meta.dtype == np.dtype(np.uint16) and meta.page is None


# --------------------------------------------------------------------------
# fuzzing: damaged files never escape as anything but InputError
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    seeds = {}
    buf = stdio.BytesIO()
    Image.fromarray(blocky(12, 16)).save(buf, "JPEG", quality=80, exif=camera_exif(6))
    seeds["jpg"] = buf.getvalue()
    write_image(folder / "seed.png", rand((6, 7, 3), np.uint16))  # 16-bit colour path
    seeds["png"] = (folder / "seed.png").read_bytes()
    tifffile.imwrite(folder / "seed.tif", rand((2, 6, 7), np.uint16), compression="zlib")
    seeds["tif"] = (folder / "seed.tif").read_bytes()
    return folder, seeds


@pytest.mark.filterwarnings("ignore")  # Pillow warns about damaged EXIF, large sizes...
@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_files_raise_only_input_error(fuzz_files, ext, data):
    folder, seeds = fuzz_files
    blob = bytearray(seeds[ext])
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8)
    )
    for pos, value in flips:
        blob[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    if cut is not None:
        del blob[cut:]
    path = folder / f"fuzz case.{ext}"
    path.write_bytes(bytes(blob))
    for call in (read_meta, lambda p: read_image(p)[0]):
        try:
            result = call(path)
        except InputError as exc:
            assert "fuzz case." + ext in str(exc)
        else:
            assert isinstance(result, (np.ndarray, ImageMeta))
