"""Reader: folders, file lists, multi-page TIFFs, OpenScan folders, bad files, lazy stacks."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")
import tifffile
from PIL import Image

from napari_focus_stack._napari import _reader
from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack._napari._reader import get_reader, read_stacks

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"


def _save_frames(folder, frames, names, exif=None):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame, name in zip(frames, names, strict=True):
        path = folder / name
        kwargs = {"exif": exif} if exif is not None else {}
        Image.fromarray(frame).save(path, **kwargs)
        paths.append(path)
    return paths


def _exif(make: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make  # Make
    return exif.tobytes()


@pytest.fixture
def natural_folder(tmp_path, synthetic):
    """Frames named so that natural order (f1, f2, f3, f9, f10) differs from string order."""
    names = ["f1.png", "f2.png", "f3.png", "f9.png", "f10.png"]
    _save_frames(tmp_path / "natural", synthetic.frames, names)
    return tmp_path / "natural"


def test_folder_opens_as_one_stack_in_natural_order(viewer, natural_folder, synthetic):
    layers = viewer.open(str(natural_folder), plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "natural"
    assert layer.rgb and layer.data.shape == (5, 96, 128, 3) and layer.data.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(layer.data), np.stack(synthetic.frames))
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert layer.metadata["names"] == ["f1.png", "f2.png", "f3.png", "f9.png", "f10.png"]
    assert layer.metadata["source"] == str(natural_folder)


def test_list_of_files_is_sorted_naturally_and_keeps_exif(viewer, tmp_path, synthetic):
    names = ["img_10.jpg", "img_2.jpg", "img_1.jpg", "img_3.jpg", "img_4.jpg"]
    paths = _save_frames(tmp_path / "jpgs", synthetic.frames, names, exif=_exif("FocusCam"))
    layers = viewer.open([str(p) for p in paths], stack=True, plugin=PLUGIN)
    (layer,) = layers
    assert layer.metadata["names"] == ["img_1.jpg", "img_2.jpg", "img_3.jpg", "img_4.jpg", "img_10.jpg"]
    assert layer.data.shape == (5, 96, 128, 3)
    # layer frame k is the file holding synthetic frame order[k] (JPEG: closest match)
    order = [2, 1, 3, 4, 0]
    for k, expected in enumerate(order):
        errors = [np.abs(np.asarray(layer.data[k], float) - f).mean() for f in synthetic.frames]
        assert int(np.argmin(errors)) == expected
    assert b"FocusCam" in layer.metadata["exif"]
    assert all(b"FocusCam" in e for e in layer.metadata["frame_exif"])


def test_multipage_tiff_keeps_16_bit(viewer, tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 65535, size=(4, 40, 50), dtype=np.uint16)
    path = tmp_path / "zstack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    assert get_reader(str(path)) is read_stacks
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer.data.dtype == np.uint16 and not layer.rgb
    np.testing.assert_array_equal(np.asarray(layer.data), stack)
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert layer.name == "zstack"


def test_openscan_folder_opens_one_layer_per_stack(viewer, tmp_path, synthetic):
    from napari.utils.notifications import notification_manager

    frames = synthetic.frames[:3]
    names = [f"Ella_0_{pose}-{k}.png" for pose in (1, 2) for k in (1, 2, 10)]
    _save_frames(tmp_path / "scan", frames + frames[::-1], names)
    _save_frames(tmp_path / "scan", frames[:1], ["preview.png"])  # not part of any stack
    before = len(notification_manager.records)
    layers = viewer.open(str(tmp_path / "scan"), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["Ella_0_1", "Ella_0_2"]
    assert all(layer.data.shape == (3, 96, 128, 3) for layer in layers)
    assert layers[1].metadata["names"] == ["Ella_0_2-1.png", "Ella_0_2-2.png", "Ella_0_2-10.png"]
    np.testing.assert_array_equal(np.asarray(layers[1].data[0]), frames[2])
    assert any("preview.png" in n.message for n in notification_manager.records[before:])


def test_corrupt_file_in_folder_is_named_in_a_notification(viewer, frame_folder):
    from napari.utils.notifications import notification_manager

    (frame_folder / "frame_003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # damaged
    (frame_folder / "notes.txt").write_text("not an image")
    before = len(notification_manager.records)
    (layer,) = viewer.open(str(frame_folder), plugin=PLUGIN)
    assert layer.data.shape[0] == 4
    assert "frame_003.png" not in layer.metadata["names"]
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("frame_003.png" in m for m in messages), messages


def test_frame_of_another_size_is_left_out_and_named(tmp_path, synthetic):
    from napari.utils.notifications import notification_manager

    _save_frames(tmp_path / "mixed", synthetic.frames, [f"m{k}.png" for k in range(5)])
    Image.fromarray(synthetic.frames[0][:50]).save(tmp_path / "mixed" / "m9.png")
    before = len(notification_manager.records)
    ((data, kwargs, kind),) = read_stacks(str(tmp_path / "mixed"))
    assert kind == "image" and data.shape[0] == 5 and "m9.png" not in kwargs["metadata"]["names"]
    assert any("m9.png" in n.message for n in notification_manager.records[before:])


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: tmp / "missing.jpg",
        lambda tmp: _write(tmp / "notes.txt", b"hello"),
        lambda tmp: _write(tmp / "broken.jpg", b"not a jpeg at all"),
        lambda tmp: _single_image(tmp / "single.png"),
        lambda tmp: _single_image(tmp / "single.tif"),
        lambda tmp: _mkdir(tmp / "empty"),
    ],
    ids=["missing", "text", "broken", "single-png", "single-tif", "empty-folder"],
)
def test_unsupported_paths_return_none(tmp_path, make):
    assert get_reader(str(make(tmp_path))) is None


def test_list_with_a_non_image_returns_none(tmp_path):
    a = _single_image(tmp_path / "a.png")
    assert get_reader([str(a), str(_write(tmp_path / "b.txt", b"x"))]) is None


def _write(path, content):
    path.write_bytes(content)
    return path


def _single_image(path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def test_large_stacks_open_lazily(viewer, frame_folder, synthetic, monkeypatch):
    dask_array = pytest.importorskip("dask.array")
    monkeypatch.setattr(_reader, "LAZY_BYTES", 0)
    (layer,) = viewer.open(str(frame_folder), plugin=PLUGIN)
    assert isinstance(layer.data, dask_array.Array)
    np.testing.assert_array_equal(np.asarray(layer.data[3]), synthetic.frames[3])


def test_lazy_frame_that_fails_shows_black_and_is_named(frame_folder, monkeypatch):
    from napari.utils.notifications import notification_manager

    monkeypatch.setattr(_reader, "LAZY_BYTES", 0)
    ((data, kwargs, _),) = read_stacks(str(frame_folder))
    # damage a frame after its header was read: decoding fails only when it is displayed
    path = frame_folder / "frame_002.png"
    path.write_bytes(path.read_bytes()[:200])
    before = len(notification_manager.records)
    frame = np.asarray(data[1])
    assert frame.shape == (96, 128, 3) and not frame.any()
    assert any("frame_002.png" in n.message for n in notification_manager.records[before:])


def test_hidden_files_are_not_frames(tmp_path, synthetic):
    """macOS ``._`` companions and our own temporary files: io's image-name test decides."""
    _save_frames(tmp_path / "f", synthetic.frames[:3], ["a1.png", "a2.png", "a3.png"])
    (tmp_path / "f" / "._a1.png").write_bytes(b"\x00\x05\x16\x07")
    ((data, kwargs, _),) = read_stacks(str(tmp_path / "f"))
    assert kwargs["metadata"][md.NAMES] == ["a1.png", "a2.png", "a3.png"]
    assert get_reader([str(tmp_path / "f" / "a1.png"), str(tmp_path / "f" / "._a1.png")]) is None


def test_grouping_that_finds_no_stacks_gives_one_stack(frame_folder, monkeypatch):
    from napari_focus_stack.errors import InputError

    def no_stacks(paths, **kwargs):
        raise InputError("no stacks here")

    monkeypatch.setattr(_reader, "detect_stacks", no_stacks)
    ((data, kwargs, _),) = read_stacks(str(frame_folder))
    assert data.shape[0] == 5


def test_a_bug_in_grouping_is_raised(frame_folder, monkeypatch):
    def bug(paths, **kwargs):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(_reader, "detect_stacks", bug)
    with pytest.raises(KeyError, match="a bug"):
        read_stacks(str(frame_folder))


def test_metadata_keys_are_the_shared_constants(natural_folder):
    ((_, kwargs, _),) = read_stacks(str(natural_folder))
    assert set(kwargs["metadata"]) == {md.SOURCE, md.NAMES, md.PATHS, md.EXIF, md.ICC, md.FRAME_EXIF}
