"""Retouch masks on disk: a marked TIFF the reader tells apart, any gray image read back as labels."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_focus_stack.errors import OutputError
from napari_focus_stack.io.mask import RETOUCH_KEY, mask_info, read_retouch_mask, write_retouch_mask


def test_round_trip_keeps_labels_and_marks(tmp_path):
    mask = np.zeros((30, 40), np.int32)
    mask[5:10, 5:10] = 3
    path = write_retouch_mask(tmp_path / "m.tif", mask, input_name="stack", frames=["a", "b", "c"])
    assert mask_info(path) == {"input": "stack", "frames": ["a", "b", "c"]}
    back = read_retouch_mask(path)
    assert back.dtype == np.uint8 and np.array_equal(back, mask)
    assert RETOUCH_KEY in tifffile.TiffFile(path).pages[0].description
    mask[0, 0] = 300
    assert read_retouch_mask(write_retouch_mask(tmp_path / "m16.tiff", mask)).dtype == np.uint16


def test_other_files_are_not_masks(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not really")
    for name in ("plain.tif", "broken.tif", "missing.tif"):
        assert mask_info(tmp_path / name) is None
    write_retouch_mask(tmp_path / "m.tif", np.zeros((8, 8), np.uint8))
    (tmp_path / "m.tif").rename(tmp_path / "m.png")
    assert mask_info(tmp_path / "m.png") is None  # only .tif names are asked


def test_writing_refuses_what_a_mask_cannot_be(tmp_path):
    with pytest.raises(OutputError, match=r"saved as \.tif"):
        write_retouch_mask(tmp_path / "m.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(OutputError, match="2-D image of integer labels"):
        write_retouch_mask(tmp_path / "m.tif", np.zeros((8, 8), np.float32))
    with pytest.raises(OutputError, match="0-65535"):
        write_retouch_mask(tmp_path / "m.tif", np.full((8, 8), -1, np.int32))
    frame = tmp_path / "frame.tif"
    frame.write_bytes(b"x")
    with pytest.raises(OutputError, match="overwrite"):
        write_retouch_mask(frame, np.zeros((8, 8), np.uint8), protect=[frame])
    assert frame.read_bytes() == b"x"
