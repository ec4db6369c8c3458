import subprocess
import sys

import numpy as np
import pytest

from napari_focus_stack._backend import get_backend, gpu_status
from napari_focus_stack.errors import BackendError


def test_cpu_backend_is_numpy():
    bk = get_backend("cpu")
    assert bk.xp is np and bk.name == "cpu" and not bk.is_gpu
    a = np.arange(4.0)
    assert bk.to_numpy(a) is a and bk.asarray(a) is a


def test_auto_matches_gpu_availability():
    ok, why = gpu_status()
    bk = get_backend("auto")
    assert bk.name == ("gpu" if ok else "cpu")
    assert bk.reason.startswith("auto: ") and why in bk.reason


def test_auto_without_cupy_falls_back_to_the_cpu_and_says_why(monkeypatch):
    monkeypatch.delenv("NAPARI_FOCUS_STACK_NO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", None)  # "import cupy" raises ImportError
    ok, why = gpu_status()
    assert not ok and why.startswith("cupy is not installed") and "napari-focus-stack[gpu]" in why
    bk = get_backend("auto")
    assert bk.name == "cpu" and bk.reason == f"auto: {why}"
    with pytest.raises(BackendError, match="cupy is not installed"):
        get_backend("gpu")


def test_bad_device_names_valid_choices():
    from napari_focus_stack.options import option

    with pytest.raises(ValueError, match=r"\('auto', 'cpu', 'gpu'\), got 'tpu'"):
        get_backend("tpu")
    # every device the options offer resolves: to a backend, or to a clear BackendError
    for device in option("device").choices:
        try:
            assert get_backend(device).name in ("cpu", "gpu")
        except BackendError:
            assert device == "gpu" and not gpu_status()[0]


def test_gpu_request_without_gpu_is_clear(monkeypatch):
    monkeypatch.setenv("NAPARI_FOCUS_STACK_NO_GPU", "1")
    with pytest.raises(BackendError, match="device='cpu'"):
        get_backend("gpu")
    assert get_backend("auto").name == "cpu"


def test_cpu_install_never_imports_cupy():
    code = (
        "import sys; import napari_focus_stack as n; from napari_focus_stack import FocusStacker;"
        "from napari_focus_stack.synthetic import make_stack;"
        "s = make_stack('checker', shape=(64, 80), n_frames=3);"
        "FocusStacker(scale_factor=1, device='cpu').stack(s.frames);"
        "print('cupy' in sys.modules, 'napari' in sys.modules, 'qtpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_warp_affine_matches_ndimage(backend):
    import scipy.ndimage as ndi

    rng = np.random.default_rng(0)
    a = rng.random((40, 50)).astype(np.float32)
    m = np.array([[1.01, 0.02, 2.3], [-0.01, 0.99, 1.2], [0, 0, 1.0]])
    rc = np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]], [0, 0, 1.0]])
    expected = ndi.affine_transform(a, rc, output_shape=(30, 45), order=1, mode="nearest")
    got = backend.to_numpy(backend.warp_affine(backend.asarray(a), m, (30, 45)))
    np.testing.assert_allclose(got, expected, atol=1e-4)


# The OpenCV kernels (CPU) against the ndimage ones the GPU runs, on NumPy.
# The tiny ones are the shapes OpenCV's bindings may read as a Scalar (4 x 1 and less, see
# _backend._read_as_scalar): CI installs the newest OpenCV the bounds allow, and these catch drift.
SHAPES = [(1, 1), (2, 1), (4, 1), (4, 1, 1), (1, 4), (1, 1, 3), (2, 3), (5, 4), (63, 81), (64, 80, 3), (33, 20, 1),
          (150, 37, 2), (70, 65, 5)]


def _similarity(scale: float, deg: float, tx: float, ty: float) -> np.ndarray:
    th = np.deg2rad(deg)
    c, s = scale * np.cos(th), scale * np.sin(th)
    return np.array([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def kernels():
    from napari_focus_stack._backend import reference_backend

    return get_backend("cpu"), reference_backend()


@pytest.mark.parametrize("shape", SHAPES)
def test_opencv_kernels_match_the_reference(kernels, shape):
    cv, ref = kernels
    rng = np.random.default_rng(sum(shape))
    a = rng.random(shape).astype(np.float32)
    small = ref.pyr_down(a)
    up_shape = (2 * small.shape[0] - 1, 2 * small.shape[1])
    m = _similarity(1.01, 0.7, 2.3, -1.2)
    fine = rng.random(shape[:2]).astype(np.float32)
    coarse = rng.random(((shape[0] + 1) // 2, (shape[1] + 1) // 2)).astype(np.float32)
    cases = {
        "pyr_down": lambda bk: bk.pyr_down(a),
        "pyr_up": lambda bk: bk.pyr_up(small, up_shape),
        "pyr_up_add": lambda bk: bk.pyr_up_add(a.copy(), small, -1.0),
        "gaussian_filter": lambda bk: bk.gaussian_filter(a, 1.7),
        "box_filter": lambda bk: bk.box_filter(a, 5),
        "max_filter": lambda bk: bk.max_filter(fine, 5),
        "max_filter, wide": lambda bk: bk.max_filter(fine, 41),
        "resize": lambda bk: bk.resize(a, (2 * shape[0] + 1, 2 * shape[1])),
        "warp_affine": lambda bk: bk.warp_affine(a, m, (shape[0] + 3, shape[1]), 1),
        "warp_frame": lambda bk: bk.warp_frame((a * 255).astype(np.uint8), m, shape[:2], 1, 1 / 255),
        "to_gray": lambda bk: bk.to_gray(a),
        "block_energy": lambda bk: bk.block_energy(a, 2),
        "scale_channels": lambda bk: bk.scale_channels(a.copy(), 1.5),
        "multiply_blocks": lambda bk: bk.multiply_blocks(a.copy(), coarse, 2),
        "multiply_blocks, 1x": lambda bk: bk.multiply_blocks(a.copy(), fine, 1),
        "multiply_blocks into": lambda bk: bk.multiply_blocks(a, coarse, 2, acc=a[::-1].copy()),
    }
    for name, run in cases.items():
        got, want = run(cv), run(ref)
        assert got.shape == want.shape and got.dtype == np.float32, name
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=name)


def test_masked_copy_and_point_sampling_match(kernels):
    cv, ref = kernels
    rng = np.random.default_rng(3)
    for shape in [(7, 9), (7, 9, 3), (30, 40, 5)]:
        dst, src = rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)
        mask = rng.random(shape[:2]) > 0.5
        a, b = dst.copy(), dst.copy()
        cv.copy_where(a, src, mask)
        ref.copy_where(b, src, mask)
        np.testing.assert_array_equal(a, b)
    image = rng.random((50, 60)).astype(np.float32)
    ys = rng.uniform(-2, 51, 4000).astype(np.float32)
    xs = rng.uniform(-2, 61, 4000).astype(np.float32)
    got, want = cv.sample_bilinear(image, ys, xs), ref.sample_bilinear(image, ys, xs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # NaN off the image, both
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-6)


def test_bicubic_warp_keeps_subpixel_shifts(backend):
    # order 3 must resample a quarter-pixel shift well: error relative to the
    # mean gradient about 0.016 (cubic spline) and 0.019 (Lanczos-4, the CPU's),
    # where OpenCV's own bicubic gives 0.047 and bilinear 0.057
    rng = np.random.default_rng(1)
    import scipy.ndimage as ndi

    a = ndi.gaussian_filter(rng.random((96, 128)), 2.0).astype(np.float32)
    shifted = np.real(np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * np.fft.fftfreq(128) * 0.25)[None]))
    m = np.array([[1, 0, -0.25], [0, 1, 0], [0, 0, 1.0]])
    got = backend.to_numpy(backend.warp_affine(backend.asarray(a), m, a.shape, order=3))
    err = np.abs(got - shifted)[8:-8, 8:-8].mean() / np.abs(np.diff(a, axis=1)).mean()
    assert err < 0.025


def _sinusoid_gain(bk, order: int, period: float, m: np.ndarray) -> float:
    """The in-phase gain of a warp of a sinusoid along x (period in px) by ``m``, inside a border."""
    x = np.arange(400, dtype=np.float64)
    a = np.repeat(np.sin(2 * np.pi * x / period)[None], 24, axis=0).astype(np.float32)
    got = bk.to_numpy(bk.warp_affine(bk.asarray(a), m, a.shape, order=order))[12, 40:-40]
    xs = m[0, 0] * np.arange(400) + m[0, 1] * 12 + m[0, 2]
    want = np.sin(2 * np.pi * xs / period)[40:-40]
    return float((got * want).sum() / (want * want).sum())


@pytest.mark.parametrize("period", [3.0, 4.0])
def test_cubic_warp_keeps_fine_detail_that_bilinear_loses(backend, period):
    # a half-pixel shift is the worst case: bilinear keeps 0.50 of a 3 px period's
    # amplitude and 0.71 of a 4 px one; cubic convolution 0.78 and 0.97
    m = np.array([[1, 0, 0.5], [0, 1, 0], [0, 0, 1.0]])

    def gain(order):
        return _sinusoid_gain(backend, order, period, m)

    assert gain(1) < (0.55 if period == 3 else 0.75)
    assert gain(2) > (0.75 if period == 3 else 0.95)
    assert gain(2) > gain(1) + 0.2


@pytest.mark.parametrize("period", [2.5, 3.3])
def test_cpu_bicubic_is_as_sharp_as_lanczos_on_average(kernels, period, monkeypatch):
    # OpenCV's bicubic alone keeps 0.75 of a 2.5 px period's amplitude on average over
    # sub-pixel offsets (a 1 % scale runs through them all), Lanczos-4 0.90: the CPU's
    # order 2 prefilters to match Lanczos-4 (_backend.cubic_prefilter)
    from napari_focus_stack import _backend

    cv = kernels[0]
    m = np.array([[1.01, 0, 0.3], [0, 1, 0], [0, 0, 1.0]])
    lanczos, cubic = _sinusoid_gain(cv, 3, period, m), _sinusoid_gain(cv, 2, period, m)
    assert abs(cubic - lanczos) < 0.03, (cubic, lanczos)
    monkeypatch.setattr(_backend, "cubic_prefilter", lambda m: None)
    plain = _sinusoid_gain(cv, 2, period, m)
    assert cubic > plain + (0.1 if period == 2.5 else 0.04), (cubic, plain)


def test_cpu_bicubic_leaves_whole_pixel_shifts_exact(kernels):
    from napari_focus_stack._backend import cubic_prefilter

    cv = kernels[0]
    a = np.random.default_rng(4).random((40, 50, 3)).astype(np.float32)
    m = np.array([[1, 0, 3], [0, 1, -2], [0, 0, 1.0]])
    assert cubic_prefilter(m) is None
    got = cv.warp_affine(a, m, (30, 40), order=2)
    np.testing.assert_allclose(got, a[np.clip(np.arange(30) - 2, 0, 39)][:, 3:43], atol=1e-6)
    # a shift along x only: y is left as it is
    kx, ky = cubic_prefilter(np.array([[1, 0, 0.5], [0, 1, 2], [0, 0, 1.0]]))
    assert kx.size == 5 and kx[2] > 1 and ky.tolist() == [1.0]


def test_cpu_bicubic_resamples_a_window_as_the_whole_frame(kernels):
    # tiles and retouched windows must take the very pixels of the whole warp
    cv = kernels[0]
    a = np.random.default_rng(5).random((120, 160, 3)).astype(np.float32)
    for m in (_similarity(1.01, 0.7, 2.3, -1.2), np.array([[1, 0, 0.3], [0, 1, -0.6], [0, 0, 1.0]])):
        whole = cv.warp_affine(a, m, (120, 160), order=2)
        y0, x0 = 37, 51
        window = cv.warp_affine(a, m @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]]), (40, 50), order=2)
        np.testing.assert_allclose(window, whole[y0: y0 + 40, x0: x0 + 50], atol=2e-4)


@pytest.mark.parametrize("shape", SHAPES + [(300, 200, 3)])
def test_cpu_warp_frame_prefilters_like_warp_affine(kernels, shape):
    # warp_frame prefilters strip by strip as it converts; the strips' edges must not show
    cv = kernels[0]
    rng = np.random.default_rng(sum(shape))
    frame = (rng.random(shape) * 255).astype(np.uint8)
    m = _similarity(1.01, 0.7, 2.3, -1.2)
    gain = np.linspace(0.9, 1.1, 1 if len(shape) == 2 else shape[2]) / 255
    got = cv.warp_frame(frame, m, shape[:2], 2, gain)
    want = cv.warp_affine(frame.astype(np.float32) * gain.astype(np.float32).reshape(-1 if len(shape) == 3 else ()),
                          m, shape[:2], 2)
    # OpenCV quantises positions to 1/32 px from each strip's origin: differences of that order
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_buffer_pool_hands_back_what_it_was_given():
    from napari_focus_stack._backend import BufferPool

    pool = BufferPool(np)
    a = pool.empty((4, 5, 3))
    assert a.shape == (4, 5, 3) and a.dtype == np.float32
    pool.give_back(a, a[1:], None)  # views are not the pool's to hand out
    assert pool.empty((4, 5, 3)) is a
    assert pool.empty((4, 5, 3)) is not a  # handed out once only
    assert pool.empty((4, 5), np.uint8).dtype == np.uint8
    pool.give_back(a)
    pool.clear()
    assert pool.empty((4, 5, 3)) is not a


def test_fusion_reuses_frame_buffers(small_stack, monkeypatch):
    # a fresh frame-sized array costs page faults on every frame: after the first
    # frames, warps and pyramid levels must come from the merged frames' buffers
    from napari_focus_stack import FocusStacker
    from napari_focus_stack._backend import BufferPool

    real = BufferPool.empty
    asked = []  # (shape, whether a given-back buffer was there)

    def empty(self, shape, dtype=np.float32):
        asked.append((tuple(shape), bool(self._free.get((tuple(shape), np.dtype(dtype).str)))))
        return real(self, shape, dtype)

    monkeypatch.setattr(BufferPool, "empty", empty)
    frames = list(small_stack.frames)
    FocusStacker(radius=4, workers=1).stack(frames)
    warps = [reused for shape, reused in asked if shape[:2] == frames[0].shape[:2]]
    halves = [reused for shape, reused in asked if shape[:2] == (80, 100)]
    assert len(warps) == len(halves) == len(frames)
    # the first frame's bands become the running sums, so the second frame finds nothing yet
    assert not any(warps[:2]) and all(warps[2:]) and all(halves[2:])
