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


# ----------------------------------------------------------------- microscope data

PIXEL, Z_STEP = 0.1, 0.5  # µm


@pytest.fixture(scope="module")
def tczyx():
    """(T 2, C 2, Z 5, 48 x 64) uint16 with known relief."""
    from napari_focus_stack.synthetic import make_hyperstack

    return make_hyperstack("patches", shape=(48, 64), n_z=5, n_t=2, n_c=2, seed=4).data


def _lut(rgb):
    return np.round(np.outer(rgb, np.arange(256))).astype(np.uint8)


def _imagej(path, tczyx):
    """ImageJ hyperstack TZCYX, 0.1 µm pixels, 0.5 µm z step, green and magenta channels."""
    tifffile.imwrite(path, np.ascontiguousarray(tczyx.transpose(0, 2, 1, 3, 4)), imagej=True,
                     resolution=(1 / PIXEL, 1 / PIXEL),
                     metadata={"axes": "TZCYX", "unit": "micron", "spacing": Z_STEP, "mode": "composite",
                               "LUTs": [_lut((0, 1, 0)), _lut((1, 0, 1))]})
    return path


def _ome_zarr(folder, tczyx):
    """OME-Zarr (NGFF 0.4, zarr format 2), named and coloured channels, first plane at z = 3 µm."""
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(folder), mode="w", zarr_format=2)
    root.create_array("0", data=tczyx, chunks=(1, 1, 1, *tczyx.shape[3:]))
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    transforms = [{"type": "scale", "scale": [1.0, 1.0, Z_STEP, PIXEL, PIXEL]},
                  {"type": "translation", "translation": [0, 0, 3.0, 0, 0]}]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes,
                                  "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]
    root.attrs["omero"] = {"channels": [{"label": "DAPI", "color": "0000FF"}, {"label": "GFP", "color": "FF8000"}]}
    return folder


def test_imagej_hyperstack_opens_calibrated_and_split_into_channels(viewer, tmp_path, tczyx):
    dask_array = pytest.importorskip("dask.array")
    path = _imagej(tmp_path / "cells.tif", tczyx)
    assert get_reader(str(path)) is read_stacks
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["cells channel 0", "cells channel 1"]
    for c, layer in enumerate(layers):
        assert isinstance(layer.data, dask_array.Array)  # lazy: planes are read when shown
        assert layer.data.shape == (2, 5, 48, 64) and layer.data.chunksize[:2] == (1, 1)
        np.testing.assert_array_equal(np.asarray(layer.data[1, 3]), tczyx[1, c, 3])
        assert tuple(layer.scale) == pytest.approx((1.0, Z_STEP, PIXEL, PIXEL))
        assert [str(u) for u in layer.units] == ["dimensionless", "micrometer", "micrometer", "micrometer"]
        assert tuple(layer.axis_labels) == ("t", "z", "y", "x")
        assert layer.metadata[md.CHANNEL_GROUP] == str(path)
    assert [layer.colormap.name for layer in layers] == ["green", "magenta"]
    assert [layer.blending for layer in layers] == ["translucent_no_depth", "additive"]  # napari's channel_axis
    assert [str(u) for u in viewer.layers.units] == ["dimensionless", "micrometer", "micrometer", "micrometer"]


def test_ome_zarr_opens_with_names_colours_and_z_origin(viewer, tmp_path, tczyx):
    folder = _ome_zarr(tmp_path / "cells.zarr", tczyx)
    assert get_reader(str(folder)) is read_stacks
    dapi, gfp = viewer.open(str(folder), plugin=PLUGIN)
    assert (dapi.name, gfp.name) == ("cells DAPI", "cells GFP")
    assert dapi.colormap.name == "blue" and tuple(np.round(gfp.colormap.colors[-1][:3], 3)) == (1.0, 0.502, 0.0)
    assert tuple(dapi.translate) == pytest.approx((0.0, 3.0, 0.0, 0.0))
    np.testing.assert_array_equal(np.asarray(gfp.data[0, 2]), tczyx[0, 1, 2])


def test_ome_tiff_with_one_channel_is_one_layer(viewer, tmp_path, tczyx):
    path = tmp_path / "one.ome.tif"
    tifffile.imwrite(path, tczyx[:, 0], ome=True,
                     metadata={"axes": "TZYX", "PhysicalSizeX": PIXEL, "PhysicalSizeY": PIXEL,
                               "PhysicalSizeZ": Z_STEP})
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer.name == "one" and layer.data.shape == (2, 5, 48, 64)
    assert tuple(layer.scale) == pytest.approx((1.0, Z_STEP, PIXEL, PIXEL))
    assert md.CHANNEL_GROUP not in layer.metadata and layer.colormap.name == "gray"


def test_microscope_data_that_cannot_be_stacked_is_refused_with_the_reason(viewer, tmp_path, tczyx):
    from napari.utils.notifications import notification_manager

    path, why = _ome_zarr(tmp_path / "series.zarr", tczyx[:, :, :1]), "single z plane"
    assert get_reader(str(path)) is read_stacks
    before = len(notification_manager.records)
    assert viewer.open(str(path), plugin=PLUGIN) == []  # no layer, and no "refused the file" error
    messages = [n.message for n in notification_manager.records[before:]]
    assert any(path.name in m and why in m for m in messages), messages


def test_single_plane_imagej_image_is_left_to_other_readers(tmp_path):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), imagej=True)
    assert get_reader(str(path)) is None


def test_an_image_without_z_opens_with_its_calibration_and_time_step(viewer, tmp_path):
    series = tmp_path / "series.tif"  # a time series, no z: opened as it is, not refused
    tifffile.imwrite(series, np.arange(3 * 48 * 64, dtype=np.uint16).reshape(3, 48, 64), imagej=True,
                     resolution=(1 / PIXEL, 1 / PIXEL), metadata={"axes": "TYX", "unit": "micron", "finterval": 2.5})
    assert get_reader(str(series)) is read_stacks
    (layer,) = viewer.open(str(series), plugin=PLUGIN)
    assert layer.data.shape == (3, 48, 64) and tuple(layer.axis_labels) == ("t", "y", "x")
    assert tuple(layer.scale) == pytest.approx((2.5, PIXEL, PIXEL))
    assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer"]
    plain = tmp_path / "plain.tif"  # no interval: the time points are counted, not pixels
    tifffile.imwrite(plain, np.zeros((3, 48, 64), np.uint16), imagej=True, metadata={"axes": "TYX"})
    (layer,) = viewer.open(str(plain), plugin=PLUGIN)
    assert [str(u) for u in layer.units] == ["dimensionless", "pixel", "pixel"]
    one = tmp_path / "one.tif"  # a single calibrated plane (Fiji's, or a fused image): opened at its pixel size
    tifffile.imwrite(one, np.zeros((48, 64), np.uint16), imagej=True, resolution=(1 / PIXEL, 1 / PIXEL),
                     metadata={"unit": "micron"})
    assert get_reader(str(one)) is read_stacks
    (layer,) = viewer.open(str(one), plugin=PLUGIN)
    assert tuple(layer.scale) == pytest.approx((PIXEL, PIXEL)) and str(layer.units[0]) == "micrometer"
