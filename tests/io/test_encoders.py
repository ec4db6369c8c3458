"""write_image: pixel conversions per format, protected inputs, bad destinations (io.encoders)."""
from __future__ import annotations

import numpy as np
import pytest
from io_helpers import make_folder, rand

from napari_focus_stack.errors import InputError, OutputError
from napari_focus_stack.io import FrameSource, read_image, write_image


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
