"""Calibrated images without a z axis (io.calibrated_image): what io.calibrated writes comes back."""
import numpy as np
import pytest
import tifffile

from napari_focus_stack.io import Calibration, read_hyperstack, write_calibrated_tiff
from napari_focus_stack.io.calibrated import collapsed_z
from napari_focus_stack.io.calibrated_image import image_info, is_calibrated_image, read_calibrated_image

CAL = Calibration((0.1, 0.1), "µm", 0.5, "µm", 2.0, None, ((0.0, 1.0, 0.0),))


@pytest.mark.parametrize("name", ["h.tif", "h.ome.tif"])
def test_a_height_series_reads_back_with_its_plane_time_step_and_value(tmp_path, name):
    data = np.random.default_rng(0).random((3, 1, 6, 7)).astype(np.float32)
    path = write_calibrated_tiff(tmp_path / name, data, "TZYX", collapsed_z(CAL, 4), value_unit="µm",
                                 value_name="height", display_range=(2.0, 3.5), time_step=90.0)
    assert is_calibrated_image(path)
    image = read_calibrated_image(path)
    try:
        assert image.axes == "TYX"  # the z of one plane is not an axis to tifffile, nor to Fiji
        np.testing.assert_array_equal(np.asarray(image.data), data[:, 0])
        cal = image.calibration
        assert cal.pixel_size == pytest.approx((0.1, 0.1)) and cal.unit == "µm"
        assert (cal.z_step, cal.z0) == pytest.approx((2.0, 2.75))  # the plane spans 4 planes of 0.5 µm
        info = image.info
        assert (info.value_name, info.value_unit, info.time_step) == ("height", "µm", 90.0)
        assert info.display_range == ((2.0, 3.5) if name == "h.tif" else None)  # OME has no display range
    finally:
        image.close()
    assert image_info(path) == info


def test_a_single_channel_keeps_its_colour_and_a_plain_tiff_is_not_calibrated(tmp_path):
    path = write_calibrated_tiff(tmp_path / "gfp.tif", np.zeros((6, 7), np.uint16), "YX", CAL)
    image = read_calibrated_image(path)
    assert image.calibration.channel_colors == ((0.0, 1.0, 0.0),)
    image.close()
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((6, 7), np.uint16))
    fiji = tmp_path / "fiji.tif"
    tifffile.imwrite(fiji, np.zeros((6, 7), np.uint16), imagej=True)  # in pixels
    assert not is_calibrated_image(plain) and not is_calibrated_image(fiji)
    assert not is_calibrated_image(tmp_path / "missing.tif")


def test_a_single_channel_z_stack_with_a_lut_opens(tmp_path):
    lut = np.round(np.outer((1, 0, 1), np.arange(256))).astype(np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 6, 7), np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "LUTs": [lut]})
    with read_hyperstack(tmp_path / "z.tif") as hs:
        assert hs.calibration.channel_colors == ((1.0, 0.0, 1.0),)
