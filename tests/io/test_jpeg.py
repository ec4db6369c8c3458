"""The JPEG structure check in front of OpenCV's decoder (io.jpeg, io.pillow).

OpenCV decodes a JPEG with garbage inside it without an error; the check
sends such a file to Pillow, which refuses it. Valid files of every layout
a camera or an editor writes must pass, or they lose the fast decoder.
"""
from __future__ import annotations

import io as stdio

import cv2
import numpy as np
import pytest
from io_helpers import camera_exif
from PIL import Image

from napari_focus_stack.errors import InputError
from napari_focus_stack.io import pillow, read_image
from napari_focus_stack.io.jpeg import jpeg_damage
from napari_focus_stack.synthetic import make_stack


@pytest.fixture(scope="module")
def photo():
    return make_stack("pcb", shape=(96, 128), n_frames=2, seed=3).frames[0]


def _pil(a: np.ndarray, **kw) -> bytes:
    buf = stdio.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _valid_files(a: np.ndarray) -> dict[str, bytes]:
    return {
        "baseline": _pil(a, quality=90),
        "progressive": _pil(a, progressive=True),
        "optimised": _pil(a, optimize=True),
        "4:4:4": _pil(a, subsampling=0),
        "gray": _pil(a[..., 1]),
        "restart markers": _pil(a, restart_marker_blocks=3),
        "progressive, restart markers": _pil(a, progressive=True, restart_marker_rows=1),
        "EXIF": _pil(a, exif=camera_exif(6).tobytes()),
        "OpenCV": cv2.imencode(".jpg", a)[1].tobytes(),
        "OpenCV, restart markers": cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_RST_INTERVAL, 5])[1].tobytes(),
        "OpenCV, progressive": cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        "data after the end": _pil(a) + b"\x00" * 64 + b"vendor trailer",
    }


def test_valid_jpegs_pass_the_check(photo):
    for name, data in _valid_files(photo).items():
        assert jpeg_damage(np.frombuffer(data, np.uint8)) is None, name


def _with_garbage(data: bytes, seed: int, size: int = 2000) -> bytes:
    rng = np.random.default_rng(seed)
    at = len(data) // 2
    return data[:at] + rng.integers(0, 256, size, dtype=np.uint8).tobytes() + data[at:]


def test_garbage_inside_the_compressed_data_is_found(photo):
    for name, data in _valid_files(photo).items():
        for seed in range(5):
            bad = _with_garbage(data, seed)
            assert jpeg_damage(np.frombuffer(bad, np.uint8)) is not None, (name, seed)
    data = _pil(photo)
    assert "truncated" in jpeg_damage(np.frombuffer(data[: len(data) // 2], np.uint8))
    assert jpeg_damage(np.frombuffer(b"\xff\xd8\xff\xd9", np.uint8)) is not None  # no image at all


def test_a_damaged_jpeg_is_refused_by_name(tmp_path, photo):
    # OpenCV alone decodes this file without an error (libjpeg only prints a warning)
    bad = _with_garbage(_pil(photo, quality=90), seed=0)
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None
    (tmp_path / "IMG 7.jpg").write_bytes(bad)
    for reduce in (1, 2):
        with pytest.raises(InputError, match=r"IMG 7\.jpg is not a readable image \(damaged JPEG: corrupt"):
            read_image(tmp_path / "IMG 7.jpg", reduce=reduce)


def test_valid_jpegs_keep_the_fast_decoder(tmp_path, photo):
    """The check must not send good files to Pillow's slower decoder."""
    for k, (name, data) in enumerate(_valid_files(photo).items()):
        path = tmp_path / f"{k}.jpg"
        path.write_bytes(data)
        a, damage = pillow._decode_jpeg_opencv(path, name != "gray", 1)
        assert damage is None and a is not None, name
