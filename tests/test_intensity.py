"""Float data at any intensity scale fuses as the same data in 0..1 would (intensity.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from napari_focus_stack import FocusStacker
from napari_focus_stack.cli import main
from napari_focus_stack.intensity import Intensity, float_range
from napari_focus_stack.synthetic import make_stack

# (forward, back): data as a camera, a microscope or a calibration might deliver it
MAPS = {
    "x1e-6": (lambda a: a * 1e-6, lambda a: a / 1e-6),
    "x1e15": (lambda a: a * 1e15, lambda a: a / 1e15),
    "x1e18": (lambda a: a * 1e18, lambda a: a / 1e18),
    "-200": (lambda a: a - 200, lambda a: a + 200),
}


@pytest.fixture(scope="module")
def unit_frames():
    return [f.astype(np.float32) / 255 for f in make_stack("pcb", shape=(96, 128), n_frames=5, seed=1).frames]


def _quiet(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.mark.parametrize("name", MAPS)
def test_photos_fuse_alike_at_any_scale(unit_frames, name):
    forward, back = MAPS[name]
    expected = FocusStacker(device="cpu").stack(unit_frames)
    res, warned = _quiet(lambda: FocusStacker(device="cpu").stack([forward(f).astype(np.float32) for f in unit_frames]))
    assert warned == [] and res.report.excluded == []
    assert res.image.dtype == np.float32
    np.testing.assert_allclose(back(res.image.astype(np.float64)), expected.image, atol=1e-4)
    np.testing.assert_allclose(res.depth_raw, expected.depth_raw, atol=1e-3)
    # the regularised map is guided by the fused image as restored: float32 around -200 keeps 1e-5 of it
    np.testing.assert_allclose(res.depth, expected.depth, atol=5e-3)


@pytest.mark.parametrize("name", MAPS)
def test_hyperstacks_fuse_alike_at_any_scale(unit_frames, name):
    forward, back = MAPS[name]
    tzyx = np.stack([f[..., 1] for f in unit_frames])[None]
    expected = FocusStacker(device="cpu").stack_nd(tzyx, "TZYX", z_step=0.5)
    res, warned = _quiet(lambda: FocusStacker(device="cpu").stack_nd(forward(tzyx).astype(np.float32), "TZYX",
                                                                      z_step=0.5))
    assert warned == []
    np.testing.assert_allclose(back(res.image.astype(np.float64)), expected.image, atol=1e-4)
    # the height is the regularised depth (z step 0.5): as in the test above, 5e-3 of a frame
    np.testing.assert_allclose(res.height, expected.height, atol=2.5e-3)


def test_a_float_tiff_far_from_0_to_1_on_the_command_line(tmp_path, unit_frames, capsys):
    gray = np.stack([f[..., 1] for f in unit_frames])
    for name, scale in (("unit", 1.0), ("big", 1e15)):
        tifffile.imwrite(tmp_path / f"{name}.tif", (gray * scale).astype(np.float32))
        assert main(["stack", str(tmp_path / f"{name}.tif"), "-o", str(tmp_path / f"{name}-fused.tif"),
                     "--depth-map", str(tmp_path / f"{name}-depth.tif"), "--device", "cpu"]) == 0
    assert "Warning" not in capsys.readouterr().err  # no RuntimeWarning (overflow)
    big, unit = tifffile.imread(tmp_path / "big-fused.tif"), tifffile.imread(tmp_path / "unit-fused.tif")
    np.testing.assert_allclose(big / 1e15, unit, atol=1e-4)
    depth = [tifffile.imread(tmp_path / f"{name}-depth.tif") for name in ("big", "unit")]
    np.testing.assert_allclose(*depth, atol=1e-3)


def test_the_range_ignores_hot_pixels_and_blank_references():
    a = np.linspace(0, 1, 100_000, dtype=np.float32)
    a[:5] = 1e30  # hot pixels
    lo, hi = float_range(a)
    assert lo == pytest.approx(0.001, abs=1e-3) and hi == pytest.approx(0.999, abs=1e-3)
    assert float_range(np.full(10, 3.0)) is None and float_range(np.full(10, np.nan)) is None
    sparse = np.zeros(100_000, np.float32)
    sparse[:20] = 7.0  # a few bright cells on a black background: the percentiles coincide, the extremes do not
    assert float_range(sparse) == (0.0, 7.0)
    m = Intensity(offset=-200.0, scale=4.0)
    y = m.normalise(np.array([-200.0, -196.0, np.nan, np.inf], np.float32))
    assert y[:2].tolist() == [0.0, 1.0] and np.isnan(y[2]) and y[3] == np.inf  # missing data stays missing
    assert m.restore(y)[:2].tolist() == [-200.0, -196.0]
