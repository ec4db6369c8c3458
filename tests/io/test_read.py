"""read_image and read_meta on damaged files: only InputError naming the file (io.read, io.checks)."""
from __future__ import annotations

import io as stdio

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_helpers import blocky, camera_exif, rand
from PIL import Image

from napari_focus_stack.errors import InputError
from napari_focus_stack.io import ImageMeta, read_image, read_meta, write_image


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
