"""Calibrated microscope data: ImageJ hyperstacks, OME-TIFF, OME-Zarr (io.hyperstack, io.microscopy, io.calibrated)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from helpers import stack_to_files
from hyperstacks import (
    GREEN,
    PIXEL,
    RED,
    Z_STEP,
    edit_description,
    lut,
    write_imagej,
    write_ome,
    write_ome_zarr,
)
from napari_focus_stack.errors import FocusStackWarning, InputError, OutputError, ParameterError
from napari_focus_stack.io import (
    Calibration,
    FrameSource,
    is_hyperstack_file,
    read_hyperstack,
    write_calibrated_tiff,
)
from napari_focus_stack.io.hyperstack import normalise_unit
from napari_focus_stack.synthetic import make_hyperstack


@pytest.fixture(scope="module")
def hyper():
    """(T 2, C 2, Z 6, 64 x 80) uint16 with known relief."""
    return make_hyperstack("rocks", shape=(64, 80), n_z=6, n_t=2, n_c=2, seed=7)


def test_units_are_symbols():
    assert normalise_unit("micron") == normalise_unit("um") == normalise_unit("micrometer") == "µm"
    assert normalise_unit("\\u00B5m") == "µm" and normalise_unit("nanometer") == "nm"
    assert normalise_unit("pixel") is None and normalise_unit(None) is None


def test_imagej_hyperstack(tmp_path, hyper):
    path = write_imagej(tmp_path / "cells.tif", hyper.data)
    assert is_hyperstack_file(path)
    with read_hyperstack(path) as hs:
        assert hs.axes == "TZCYX" and hs.shape == (2, 6, 2, 64, 80)
        cal = hs.calibration
        assert cal.pixel_size == pytest.approx((PIXEL, PIXEL)) and cal.unit == "µm"
        assert cal.z_step == pytest.approx(Z_STEP) and cal.z_unit == "µm" and cal.height_unit == "µm"
        assert cal.channel_colors == (RED, GREEN)
        # planes come one at a time, in the engine's layout
        np.testing.assert_array_equal(hs.read_frame((1,), 4), np.moveaxis(hyper.data[1, :, 4], 0, -1))


def test_ome_tiff(tmp_path, hyper):
    path = write_ome(tmp_path / "cells.ome.tif", hyper.data)
    assert is_hyperstack_file(path)
    with read_hyperstack(path) as hs:
        assert hs.axes == "TCZYX"
        cal = hs.calibration
        assert cal.pixel_size == pytest.approx((PIXEL, PIXEL)) and cal.unit == "µm"
        assert cal.z_step == pytest.approx(Z_STEP) and cal.channel_names == ("DAPI", "GFP")
        assert cal.channel_colors == (RED, GREEN)  # OME colours are RGBA integers
        np.testing.assert_array_equal(hs.read_frame((0,), 2), np.moveaxis(hyper.data[0, :, 2], 0, -1))


def test_ome_zarr_reads_the_first_level_lazily(tmp_path, hyper):
    folder = write_ome_zarr(tmp_path / "cells.zarr", hyper.data)
    assert is_hyperstack_file(folder)
    hs = read_hyperstack(folder)
    assert hs.axes == "TCZYX" and hs.shape == hyper.data.shape
    assert not isinstance(hs.data, np.ndarray)  # a zarr array: nothing read yet
    cal = hs.calibration
    assert cal.pixel_size == pytest.approx((PIXEL, PIXEL)) and cal.z_step == Z_STEP and cal.z0 == 3.0
    assert cal.channel_names == ("DAPI", "GFP")
    np.testing.assert_array_equal(hs.read_frame((1,), 0), np.moveaxis(hyper.data[1, :, 0], 0, -1))


def test_plain_tiff_stack_is_not_a_hyperstack(tmp_path, hyper):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, hyper.data[0, 0])
    assert not is_hyperstack_file(path)
    assert len(FrameSource.from_inputs(path)) == 6
    with read_hyperstack(path) as hs:  # still readable as one: a generic sequence is z
        assert hs.axes == "ZYX" and hs.calibration.pixel_size is None
    with pytest.raises(InputError, match="not a TIFF"):
        read_hyperstack(_text_file(tmp_path))


def _text_file(folder):
    p = folder / "notes.tif"
    p.write_text("not an image")
    return p


@pytest.mark.parametrize("name", ["fused.tif", "fused.ome.tif"])
def test_calibration_round_trip_through_the_engine(tmp_path, hyper, name):
    src = write_imagej(tmp_path / "in.tif", hyper.data) if "ome" in name else write_ome(
        tmp_path / "in.ome.tif", hyper.data)
    out, height, conf = tmp_path / name, tmp_path / name.replace("fused", "height"), tmp_path / "conf.tif"
    done = stack_to_files(src, out, depth=height, confidence=conf)
    assert done.axes == "TCYX" and done.unit == "µm"
    assert done.outputs == {"image": out, "depth": height, "confidence": conf}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name, height.name, "conf.tif"])
    with tifffile.TiffFile(out) as tif:
        fused = tif.asarray()
        assert fused.shape == (2, 2, 64, 80) and fused.dtype == np.uint16 and tif.series[0].axes == "TCYX"
        assert _pixel_size(tif) == pytest.approx(PIXEL)
        if tif.is_ome:
            px = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
            # an ImageJ input: its LUT colours become OME channel colours
            assert px["PhysicalSizeXUnit"] == "µm" and [c["Color"] for c in px["Channel"]] == [-16776961, 16711935]
        else:
            assert tif.imagej_metadata["unit"] == "micron" and tif.imagej_metadata["mode"] == "composite"
            # an OME input: its channel colours become LUTs
            np.testing.assert_array_equal(tif.imagej_metadata["LUTs"][1], lut(GREEN))
    with tifffile.TiffFile(height) as tif:
        heights = tif.asarray()
        assert heights.shape == (2, 64, 80) and heights.dtype == np.float32
        assert _pixel_size(tif) == pytest.approx(PIXEL)
        if tif.is_ome:
            px = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
            assert px["Channel"]["Name"] == "height (µm)"
        else:
            assert tif.imagej_metadata["vunit"] == "micron"
    ok = np.abs(heights - Z_STEP * hyper.depth_index) <= Z_STEP
    assert ok[:, hyper.texture_mask].mean() > 0.9
    assert tifffile.imread(conf).shape == (2, 64, 80)


def _pixel_size(tif) -> float:
    page = tif.pages[0]
    num, den = page.tags["XResolution"].value
    size = den / num
    unit = page.tags["ResolutionUnit"].value
    return size * 1e4 if unit == 3 else size  # OME-TIFF resolution tags are per centimetre


def test_outputs_never_replace_the_input_and_come_all_or_none(tmp_path, hyper):
    src = write_imagej(tmp_path / "in.tif", hyper.data[:1])
    before = src.read_bytes()
    with pytest.raises(OutputError, match="overwrite input"):
        stack_to_files(src, tmp_path / "out.tif", depth=src, align="none")
    with pytest.raises(OutputError, match="give a .tif name"):
        stack_to_files(src, tmp_path / "out.png", align="none")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]

    def stop(done, total, stage):
        if done > 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        stack_to_files(src, tmp_path / "out.tif", depth=tmp_path / "h.tif", progress=stop, align="none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_failed_writer_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match="ImageJ"):
        write_calibrated_tiff(tmp_path / "x.tif", np.zeros((2, 4, 4), np.int32), "TYX")
    assert list(tmp_path.iterdir()) == []


def test_rgb_and_folded_positions(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (2, 3, 6, 7, 3), np.uint8)  # (P, T, Y, X, S)
    path = write_calibrated_tiff(tmp_path / "rgb.tif", rgb, "PTYXS", Calibration((0.2, 0.2), "µm"))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "TYXS" and tif.series[0].shape == (6, 6, 7, 3)
        np.testing.assert_array_equal(tif.asarray(), rgb.reshape(6, 6, 7, 3))


def test_z_step_in_another_unit_and_axes_order(tmp_path):
    data = np.zeros((3, 2, 4, 5), np.uint16)
    cal = Calibration((0.1, 0.1), "µm", z_step=250.0, z_unit="nm", z0=-500.0)
    path = write_calibrated_tiff(tmp_path / "zc.tif", data, "ZCYX", cal)
    with read_hyperstack(path) as hs:  # ImageJ has one unit: the step comes back in µm
        c = hs.calibration
        assert hs.axes == "ZCYX" and c.unit == c.z_unit == "µm"
        assert c.z_step == pytest.approx(0.25) and c.z0 == pytest.approx(-0.5)
    with read_hyperstack(write_calibrated_tiff(tmp_path / "zc.ome.tif", data, "ZCYX", cal)) as hs:
        c = hs.calibration
        assert (c.z_step, c.z_unit, c.z0) == (250.0, "nm", -500.0)
    with pytest.raises(OutputError, match="TZCYXS"):
        write_calibrated_tiff(tmp_path / "cz.tif", data, "CZYX", cal)


def _tifffile_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("tifffile")]


def test_planes_the_file_does_not_hold_are_refused(tmp_path, hyper, caplog):
    """OME-XML claiming 20 planes for 9: tifffile would read 11 black planes (and say so on stderr)."""
    path = write_ome(tmp_path / "short.ome.tif", hyper.data[0, 0, :].repeat(2, axis=0)[:9], axes="ZYX")
    edit_description(path, lambda xml: xml.replace('SizeZ="9"', 'SizeZ="20"'))
    assert is_hyperstack_file(path)
    incomplete = r"short\.ome\.tif is incomplete: its metadata describes 20 planes but 11 of them are not in the file"
    with pytest.raises(InputError, match=incomplete):
        read_hyperstack(path)
    with pytest.raises(InputError, match=incomplete):
        FrameSource.from_inputs(path)
    assert _tifffile_records(caplog) == []


def test_what_tifffile_works_around_is_one_warning_naming_the_file(tmp_path, hyper, caplog):
    path = write_imagej(tmp_path / "cells.tif", hyper.data[0, 0], axes="ZYX")
    edit_description(path, lambda text: text.replace("images=6", "images=20").replace("slices=6", "slices=20"))
    with pytest.warns(FocusStackWarning, match=r"cells\.tif: ImageJ series metadata invalid or corrupted file"):
        with read_hyperstack(path) as hs:
            assert hs.size("Z") == 6
    assert _tifffile_records(caplog) == []


@pytest.mark.parametrize("bad", [
    {"pixel_size": (float("nan"), 0.1)}, {"pixel_size": (0.0, 0.1)}, {"pixel_size": (0.1, 1e308)},
    {"z_step": float("inf")}, {"z_step": 0.0}, {"z0": float("nan")},
])
def test_a_calibration_given_in_python_is_checked_before_any_work(tmp_path, hyper, bad):
    """Refused at once, not by the TIFF writer after the work ("cannot convert NaN to integer ratio")."""
    with pytest.raises(ParameterError, match=f"{next(iter(bad))} must be"):
        Calibration(**{"pixel_size": (0.1, 0.1), "unit": "µm", **bad})
    src = write_ome(tmp_path / "in.ome.tif", hyper.data[0, 0], "ZYX")
    with pytest.raises(ParameterError, match="z_step must be a positive number from 1e-12 to 1e"):
        stack_to_files(src, tmp_path / "f.tif", z_step=1e308)  # planned, refused: the job never ran
    assert [p.name for p in tmp_path.iterdir()] == ["in.ome.tif"]


def test_axes_that_run_the_other_way_keep_their_sizes(tmp_path):
    """A napari layer's negative scale: kept, and written as the size (TIFF and OME hold no sign)."""
    flipped = Calibration(pixel_size=(-0.1, 0.1), unit="µm", z_step=-0.5)
    for name in ("flipped.tif", "flipped.ome.tif"):
        write_calibrated_tiff(tmp_path / name, np.zeros((2, 8, 8), np.uint16), "ZYX", flipped)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing written that the reader would have to ignore
            with read_hyperstack(tmp_path / name) as hs:
                cal = hs.calibration
        assert cal.pixel_size == pytest.approx((0.1, 0.1)) and cal.z_step == pytest.approx(0.5)
