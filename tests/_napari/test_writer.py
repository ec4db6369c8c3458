"""Writer: TIFF/PNG/JPEG round trips, 16-bit kept, EXIF and ICC copied, float maps, atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")
import tifffile
from PIL import Image, ImageCms

from napari_focus_stack._napari._writer import write_image_layer
from napari_focus_stack.errors import OutputError
from napari_focus_stack.io import FrameSource, read_image

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def exif() -> bytes:
    e = Image.Exif()
    e[0x010F] = "FocusCam"  # Make
    e[0x0110] = "Model 7"  # Model
    return e.tobytes()


def _no_temp_files(folder):
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("ext", [".tif", ".png"])
def test_16_bit_is_kept(tmp_path, ext):
    image = np.random.default_rng(1).integers(0, 65535, (30, 40), dtype=np.uint16)
    (out,) = write_image_layer(str(tmp_path / f"gray{ext}"), image, {"rgb": False, "metadata": {}})
    back, meta = read_image(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)
    assert _no_temp_files(tmp_path)


def test_jpeg_quality_95_with_exif_and_icc(tmp_path, synthetic, exif, icc):
    image = synthetic.truth
    meta = {"rgb": True, "metadata": {"exif": exif, "icc": icc}}
    (out,) = write_image_layer(str(tmp_path / "fused.jpg"), image, meta)
    back, info = read_image(out)
    assert back.dtype == np.uint8 and back.shape == image.shape
    assert np.abs(back.astype(float) - image).mean() < 2.5  # quality 95, 4:4:4
    assert b"FocusCam" in info.exif and b"Model 7" in info.exif
    assert info.icc == icc


def test_png_and_tiff_keep_the_icc_profile(tmp_path, synthetic, exif, icc):
    for ext in (".png", ".tif"):
        meta = {"rgb": True, "metadata": {"exif": exif, "icc": icc}}
        (out,) = write_image_layer(str(tmp_path / f"fused{ext}"), synthetic.truth, meta)
        back, info = read_image(out)
        np.testing.assert_array_equal(back, synthetic.truth)
        assert info.icc == icc


def test_float_maps_go_to_float32_tiff(tmp_path):
    depth = np.random.default_rng(2).random((30, 40)).astype(np.float32) * 6
    (out,) = write_image_layer(str(tmp_path / "depth.tif"), depth, {"rgb": False, "metadata": {}})
    back = tifffile.imread(out)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_float_maps_refuse_8_bit_formats(tmp_path, ext):
    with pytest.raises(OutputError, match=r"\.tif"):
        write_image_layer(str(tmp_path / f"depth{ext}"), np.zeros((4, 4), np.float32),
                          {"name": "depth", "metadata": {}})
    assert not list(tmp_path.iterdir())


def test_stack_becomes_a_multipage_tiff(tmp_path, synthetic, icc):
    stack = np.stack(synthetic.frames)
    (out,) = write_image_layer(str(tmp_path / "stack.tif"), stack, {"rgb": True, "metadata": {"icc": icc}})
    src = FrameSource.from_inputs(out)
    assert len(src) == len(stack) and src.shape == stack.shape[1:]
    np.testing.assert_array_equal(src.read(2), stack[2])
    assert _no_temp_files(tmp_path)
    with pytest.raises(OutputError, match="stack"):
        write_image_layer(str(tmp_path / "stack.png"), stack, {"rgb": True, "metadata": {}})


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_image_layer(str(tmp_path / "missing" / "x.tif"), np.zeros((4, 4), np.uint8), {"metadata": {}})
    with pytest.raises(OutputError, match="does not exist"):
        write_image_layer(str(tmp_path / "missing" / "s.tif"), np.zeros((2, 4, 4), np.uint8), {"metadata": {}})
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_file_atomically(tmp_path):
    target = tmp_path / "out.png"
    write_image_layer(str(target), np.zeros((8, 8), np.uint8), {"metadata": {}})
    write_image_layer(str(target), np.full((8, 8), 200, np.uint8), {"metadata": {}})
    assert read_image(target)[0].min() == 200
    assert _no_temp_files(tmp_path)


def test_refuses_to_overwrite_a_source_frame(tmp_path):
    frame = tmp_path / "frame.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(frame)
    with pytest.raises(OutputError, match="refusing to overwrite"):
        write_image_layer(str(frame), np.ones((8, 8), np.uint8), {"metadata": {"paths": [str(frame)]}})


def test_layers_save_through_napari(viewer, tmp_path, exif, icc):
    image = np.random.default_rng(3).integers(0, 4095, (20, 30), dtype=np.uint16)
    layer = viewer.add_image(image, name="fused", metadata={"exif": exif, "icc": icc})
    depth = viewer.add_image(np.linspace(0, 4, 600, dtype=np.float32).reshape(20, 30), name="depth")
    layer.save(str(tmp_path / "fused.tif"), plugin=PLUGIN)
    depth.save(str(tmp_path / "depth.tif"), plugin=PLUGIN)
    back, info = read_image(tmp_path / "fused.tif")
    np.testing.assert_array_equal(back, image)
    assert info.icc == icc
    assert tifffile.imread(tmp_path / "depth.tif").dtype == np.float32


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the umask from /proc (Linux)")
def test_the_process_umask_is_never_changed(tmp_path, monkeypatch):
    """The writer runs on napari's GUI thread beside worker threads: os.umask is process-wide."""
    def no_umask(*args):
        raise AssertionError("the writer changed the process umask")

    with open("/proc/self/status") as fh:
        mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    monkeypatch.setattr(os, "umask", no_umask)
    (stack,) = write_image_layer(str(tmp_path / "s.tif"), np.zeros((2, 4, 4), np.uint8), {"metadata": {}})
    (image,) = write_image_layer(str(tmp_path / "i.png"), np.zeros((4, 4), np.uint8), {"metadata": {}})
    for out in (stack, image):
        assert os.stat(out).st_mode & 0o777 == 0o666 & ~mask  # as any new file, not the temp file's 0600


def test_refuses_to_overwrite_a_source_stack(tmp_path):
    source = tmp_path / "zstack.tif"
    original = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    tifffile.imwrite(source, original)
    with pytest.raises(OutputError, match="refusing to overwrite"):
        write_image_layer(str(source), original[::-1], {"metadata": {"paths": [str(source), str(source)]}})
    np.testing.assert_array_equal(tifffile.imread(source), original)
    assert _no_temp_files(tmp_path)


def test_stack_write_errors_are_output_errors(tmp_path):
    target = tmp_path / "stack.tif"
    target.mkdir()  # a folder in the way: the rename fails
    with pytest.raises(OutputError, match="could not write"):
        write_image_layer(str(target), np.zeros((2, 4, 4), np.uint8), {"metadata": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


# ------------------------------------------------------------------ calibration


def _result_meta(role, **extra):
    """The state napari passes for a result layer of a (T, Z, Y, X) input: a single z plane kept."""
    return {
        "name": f"cells {role}", "rgb": False, "scale": (1.0, 3.0, 0.1, 0.1), "translate": (0, 4.25, 0, 0),
        "units": ("pixel", "micrometer", "micrometer", "micrometer"), "axis_labels": ("t", "z", "y", "x"),
        "metadata": {"focus_stack_role": role, **extra},
    }


def test_calibrated_fused_layer_is_an_imagej_time_series(tmp_path):
    data = np.random.default_rng(0).integers(0, 60000, (3, 1, 20, 30), dtype=np.uint16)
    (out,) = write_image_layer(str(tmp_path / "fused.tif"), data, _result_meta("fused"))
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TYX"
        assert tif.imagej_metadata["unit"] == "micron"
        x_res = tif.pages[0].tags["XResolution"].value
        assert x_res[0] / x_res[1] == pytest.approx(10.0)  # pixels per µm
        np.testing.assert_array_equal(tif.asarray(), data[:, 0])
    assert _no_temp_files(tmp_path)


def test_height_layer_keeps_its_value_unit(tmp_path):
    heights = np.random.default_rng(1).uniform(2.0, 4.5, (3, 1, 20, 30)).astype(np.float32)
    meta = _result_meta("depth", focus_stack_height_unit="µm")
    (out,) = write_image_layer(str(tmp_path / "height.tif"), heights, meta)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TYX" and tif.imagej_metadata["vunit"] == "micron"
        np.testing.assert_array_equal(tif.asarray(), heights[:, 0])
    (out,) = write_image_layer(str(tmp_path / "height.ome.tif"), heights, meta)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and "height (µm)" in tif.ome_metadata


def test_ome_tiff_keeps_pixel_size_and_channel_colour(tmp_path):
    data = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    meta = {"name": "GFP fused", "rgb": False, "scale": (0.2, 0.2), "units": ("micrometer", "micrometer"),
            "axis_labels": ("y", "x"), "colormap": {"name": "green", "colors": [[0, 0, 0, 1], [0, 1, 0, 1]]},
            "metadata": {}}
    (out,) = write_image_layer(str(tmp_path / "gfp.ome.tif"), data, meta)
    with tifffile.TiffFile(out) as tif:
        xml = tif.ome_metadata
        assert 'PhysicalSizeX="0.2"' in xml and "GFP fused" in xml and 'Color="16711935"' in xml
        np.testing.assert_array_equal(tif.asarray(), data)


def test_uncalibrated_layers_keep_the_plain_writer(tmp_path):
    data = np.zeros((20, 30), np.uint16)
    meta = {"rgb": False, "scale": (1.0, 1.0), "units": ("pixel", "pixel"), "metadata": {}}
    (out,) = write_image_layer(str(tmp_path / "plain.tif"), data, meta)
    with tifffile.TiffFile(out) as tif:
        assert not tif.is_imagej and not tif.is_ome


@pytest.mark.parametrize("name", ["cells.tif", "cells.ome.tif"])
@pytest.mark.parametrize("shape, labels", [((4, 20, 30), ("z", "y", "x")), ((2, 4, 20, 30), ("t", "z", "y", "x"))])
def test_z_calibration_round_trips_through_the_reader(viewer, tmp_path, name, shape, labels):
    from napari_focus_stack._napari._reader import read_stacks

    data = np.random.default_rng(4).integers(0, 60000, shape, dtype=np.uint16)
    scale = (1.0,) * (len(shape) - 3) + (0.5, 0.1, 0.1)
    translate = (0.0,) * (len(shape) - 3) + (3.0, 0.0, 0.0)
    units = ("pixel",) * (len(shape) - 3) + ("micrometer",) * 3
    layer = viewer.add_image(data, name="cells", scale=scale, translate=translate, units=units, axis_labels=labels)
    layer.save(str(tmp_path / name), plugin=PLUGIN)
    with tifffile.TiffFile(tmp_path / name) as tif:
        assert tif.series[0].axes == "".join(labels).upper()
        if tif.is_ome:
            assert 'PhysicalSizeZ="0.5"' in tif.ome_metadata
        else:
            assert tif.imagej_metadata["spacing"] == 0.5 and tif.imagej_metadata["unit"] == "micron"
    ((back, kwargs, _),) = read_stacks(str(tmp_path / name))
    np.testing.assert_array_equal(np.asarray(back), data)
    assert kwargs["axis_labels"] == labels
    np.testing.assert_allclose(kwargs["scale"], scale)
    np.testing.assert_allclose(kwargs["translate"], translate)
    assert [str(u) for u in kwargs["units"]] == [""] * (len(shape) - 3) + ["µm"] * 3  # time points: no unit
