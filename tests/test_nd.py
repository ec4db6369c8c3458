"""N-D data: z-stacks per time point, channels by one decision, heights in units, reuse."""
import numpy as np
import pytest

from napari_focus_stack import FocusStacker, InputError, StackError
from napari_focus_stack.nd import Calibration, Hyperstack
from napari_focus_stack.synthetic import make_hyperstack, make_stack


def _cpu(**kw):
    kw.setdefault("device", "cpu")
    return FocusStacker(**kw)


class CountingArray:
    """An array that records what is read from it (like a lazy file), and checks planes come one at a time."""

    def __init__(self, a, z_axis):
        self.a, self.z_axis, self.reads = a, z_axis, 0
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, key):
        assert isinstance(key[self.z_axis], int), "a whole z-stack was requested at once"
        self.reads += 1
        return self.a[key]


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("rocks", shape=(96, 128), n_z=6, n_t=3, n_c=2, seed=4)


@pytest.mark.parametrize("breathing", [0.0, 0.03])
def test_channel_relation_is_kept(breathing):
    st = make_stack("pcb", shape=(96, 128), n_frames=5, seed=2, gray=True, dtype=np.uint16, breathing=breathing)
    ch0 = np.stack(st.frames).astype(np.float32) / 65535
    a, b = -0.6, 0.8  # channel 1 = a * channel 0 + b in every frame
    zcyx = np.stack([ch0, a * ch0 + b], axis=1)
    res = _cpu().stack_nd(zcyx, "ZCYX")
    assert res.axes == "CYX" and res.image.shape == (2, 96, 128) and res.image.dtype == np.float32
    np.testing.assert_allclose(res.image[1], a * res.image[0] + b, atol=2e-5)
    # and the fusion did something: the result is sharper than the middle frame
    assert np.abs(res.image[0] - ch0[2]).mean() > 1e-3


def test_channel_relation_in_16_bit(hyper):
    data = hyper.data[:1].astype(np.float64)
    data[:, 1] = 0.5 * data[:, 0] + 1000  # exact in uint16: even values only
    data[:, 0] = 2 * np.floor(data[:, 0] / 2)
    data[:, 1] = 0.5 * data[:, 0] + 1000
    res = _cpu().stack_nd(data.astype(np.uint16), "TCZYX")
    assert res.image.dtype == np.uint16 and res.axes == "TCYX"
    fused = res.image[0].astype(np.float64)
    # rounding only, except where channel 0 clips: a pyramid can overshoot saturated pixels
    unclipped = fused[0] < 65535
    assert unclipped.mean() > 0.99
    assert np.abs(fused[1] - (0.5 * fused[0] + 1000))[unclipped].max() <= 1.0
    assert res.reports[0].exposure_matched is False


@pytest.mark.parametrize(
    "axes, shape_of",
    [("ZYX", "YX"), ("TZYX", "TYX"), ("ZCYX", "CYX"), ("TZCYX", "TCYX"), ("CZYX", "CYX")],
)
def test_output_axes(hyper, axes, shape_of):
    tczyx = hyper.data[:2, :, :4, :48, :64]
    src = "TCZYX"
    keep = [src.index(a) for a in axes]
    drop = tuple(0 if a not in axes else slice(None) for a in src)
    data = np.transpose(tczyx[drop], np.argsort(np.argsort(keep)))
    res = _cpu(align="none").stack_nd(data, axes)
    sizes = {"T": 2, "C": 2, "Y": 48, "X": 64}
    assert res.axes == shape_of
    assert res.image.shape == tuple(sizes[a] for a in shape_of)
    assert res.height.shape == tuple(sizes[a] for a in shape_of if a != "C")
    assert res.height_axes == shape_of.replace("C", "")


def test_heights_in_units_and_in_frames(hyper):
    data = hyper.data[0, 0]  # ZYX
    cal = Calibration(pixel_size=(0.1, 0.1), unit="µm", z0=12.0)
    frames = _cpu().stack_nd(data, "ZYX")
    assert frames.unit == "frame"
    metric = _cpu().stack_nd(data, "ZYX", z_step=0.5, calibration=cal)
    assert metric.unit == "µm" and metric.calibration.z_step == 0.5
    np.testing.assert_allclose(metric.height, 12.0 + 0.5 * frames.height, rtol=1e-6)
    np.testing.assert_allclose(metric.height_raw, 12.0 + 0.5 * frames.height_raw, rtol=1e-6)
    within = np.abs(metric.height - (12.0 + 0.5 * hyper.depth_index)) <= 0.5
    assert within[hyper.texture_mask].mean() > 0.9


def test_time_points_reuse_the_alignment(hyper):
    data = CountingArray(hyper.data, z_axis=2)
    seen = []
    res = _cpu().stack_nd(data, "TCZYX", progress=lambda d, t, s: seen.append((d, t, s)))
    nz = hyper.data.shape[2]
    assert res.image.shape == (3, 2, 96, 128)
    assert [r.reused_alignment for r in res.reports] == [False, True, True]
    assert [r.index for r in res.reports] == [{"T": 0}, {"T": 1}, {"T": 2}]
    # the first z-stack is read twice (align, fuse), the others once, plus each reference frame for the weights
    assert data.reads == 3 * (nz + 1) + nz
    assert seen[-1][:2] == (3 * 2 * nz, 3 * 2 * nz) and seen[-1][2].startswith("T 3/3")
    again = _cpu().stack_nd(CountingArray(hyper.data, 2), "TCZYX", reuse_alignment=False)
    assert not any(r.reused_alignment for r in again.reports)
    for t in range(3):
        ok = np.abs(res.height[t] - hyper.depth_index) <= 1
        assert ok[hyper.texture_mask].mean() > 0.9


def _still_stack() -> np.ndarray:
    """A stack that does not move: symmetric blur only, focused on the left in frame 1, on the right in frame 4."""
    import scipy.ndimage as ndi

    texture = ndi.gaussian_filter(np.random.default_rng(0).random((96, 128)).astype(np.float32), 1.0)
    right = np.clip((np.arange(128) - 40) / 48, 0, 1)[None, :]
    frames = []
    for z in range(6):
        a = ndi.gaussian_filter(texture, 0.2 + 0.8 * abs(z - 1))
        b = ndi.gaussian_filter(texture, 0.2 + 0.8 * abs(z - 4))
        frames.append((1 - right) * a + right * b)
    return np.stack(frames).astype(np.float32)


def test_still_frames_are_not_resampled():
    data = _still_stack()
    still = _cpu().stack_nd(data, "ZYX")
    report = still.reports[0]
    assert len(report.unwarped) == data.shape[0]
    assert all(f.warped is False for f in report.frames)
    # no interpolation at all: the same pixels as with alignment switched off
    np.testing.assert_array_equal(still.image, _cpu(align="none").stack_nd(data, "ZYX").image)
    st = make_stack("rocks", shape=(96, 128), n_frames=4, seed=1, gray=True, breathing=0.03)
    moving = _cpu().stack(st.frames).report
    assert moving.unwarped == [moving.frames[st.reference].name]


def test_unwarped_threshold():
    from napari_focus_stack.fuse_stack import UNWARPED_PX
    from napari_focus_stack.fuse_stack import unwarped as _unwarped

    def shifted(dx):
        return np.array([[1, 0, dx], [0, 1, 0], [0, 0, 1.0]])

    assert UNWARPED_PX == 0.1
    np.testing.assert_array_equal(_unwarped(shifted(0.09), (100, 100)), np.eye(3))
    np.testing.assert_array_equal(_unwarped(shifted(0.11), (100, 100)), shifted(0.11))
    # a rotation about the centre moves the corners most
    a = np.deg2rad(0.1)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    assert _unwarped(rot, (100, 100)) is rot and _unwarped(rot, (10, 10)) is not rot


def test_dask_array_is_read_lazily(hyper):
    da = pytest.importorskip("dask.array")
    data = da.from_array(hyper.data[:2], chunks=(1, 1, 1, 96, 128))
    res = _cpu(align="none").stack_nd(data, "TCZYX")
    ref = _cpu(align="none").stack_nd(hyper.data[:2], "TCZYX")
    np.testing.assert_array_equal(res.image, ref.image)


def test_bad_axes_are_refused_with_reasons(hyper):
    with pytest.raises(StackError, match="no Z axis"):
        _cpu().stack_nd(hyper.data[0], "CTYX")
    with pytest.raises(InputError, match="4 dimensions"):
        _cpu().stack_nd(hyper.data[0], "ZYX")
    with pytest.raises(InputError, match="axes named"):
        _cpu().stack_nd(hyper.data[0])
    with pytest.raises(StackError, match="single z plane"):
        _cpu().stack_nd(hyper.data[0, :, :1], "CZYX")
    with pytest.raises(InputError, match="both channels"):
        Hyperstack(np.zeros((2, 3, 8, 8, 3)), "CZYXS")
