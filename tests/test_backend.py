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
