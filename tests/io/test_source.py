"""FrameSource: stacks from folders, lists, TIFF stacks and arrays; checks naming the odd file (io.source)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_helpers import blocky, make_folder, rand

from napari_focus_stack.errors import InputError, StackError
from napari_focus_stack.io import FrameSource, expand_inputs, read_image, write_image


def test_framesource_from_folder_natural_order(tmp_path):
    frames = make_folder(tmp_path / "stack", ["img_10.png", "img_2.png", "IMG_1.png"])
    (tmp_path / "stack" / "notes.txt").write_text("not an image")
    (tmp_path / "stack" / "._img_3.png").write_bytes(b"AppleDouble junk")
    (tmp_path / "stack" / "sub").mkdir()
    src = FrameSource.from_inputs(tmp_path / "stack")
    assert src.names == ["IMG_1.png", "img_2.png", "img_10.png"]
    assert src.paths == [tmp_path / "stack" / n for n in src.names]
    for i, name in enumerate(src.names):
        np.testing.assert_array_equal(src.read(i), frames[name])
    assert expand_inputs(str(tmp_path / "stack" / "*.png")) == src.paths


def test_framesource_from_list_keeps_order(tmp_path):
    frames = make_folder(tmp_path, ["a_1.png", "a_2.png", "a_10.png"])
    order = [tmp_path / "a_10.png", tmp_path / "a_1.png", str(tmp_path / "a_2.png")]
    src = FrameSource.from_inputs(order)
    assert src.names == ["a_10.png", "a_1.png", "a_2.png"]
    np.testing.assert_array_equal(src.read(0), frames["a_10.png"])
    np.testing.assert_array_equal(src.read(-1), frames["a_2.png"])


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


def test_read_raises_for_a_frame_damaged_after_its_header(tmp_path):
    make_folder(tmp_path, ["f1.jpg", "f2.jpg", "f3.jpg"], shape=(64, 64, 3))
    data = (tmp_path / "f2.jpg").read_bytes()
    (tmp_path / "f2.jpg").write_bytes(data[: len(data) * 2 // 3])  # header intact
    src = FrameSource.from_inputs(tmp_path)  # headers are fine
    assert src.read(0).shape == (64, 64, 3)
    with pytest.raises(InputError, match="f2.jpg"):
        src.read(1)
    assert src.read(2).shape == (64, 64, 3)


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
