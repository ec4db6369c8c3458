"""The GPU path speaks CuPy's API: checked on the CPU against the real CuPy.

The whole engine runs on the GPU's kernel set (:class:`NdimageBackend`) over
NumPy and SciPy, through proxies of ``numpy`` and ``scipy.ndimage`` that
check every function the engine takes from them against ``cupy`` and
``cupyx.scipy.ndimage``: the name must exist there, and the call's
arguments must bind to the CuPy function's signature (for ufuncs: the
number of operands and the ``out``/``dtype``/``casting`` keywords that CuPy
ufuncs take). CuPy imports without a GPU, so this runs wherever it is
installed (``pip install cupy-cuda12x``) and skips where it is not.

Not covered: methods of the arrays themselves (``a.astype``, ``a.mean``),
which the proxies never see. cuCIM is not checked because no engine code
calls it.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import scipy.ndimage

try:
    import cupy
    import cupyx.scipy.ndimage as cupy_ndimage
except Exception as exc:  # noqa: BLE001  (not installed, or a CUDA install that does not import)
    pytest.skip(f"cupy is not importable here ({type(exc).__name__}: {exc})", allow_module_level=True)

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import NdimageBackend
from napari_focus_stack.depth import regularise_depth
from napari_focus_stack.synthetic import make_stack

UFUNC_KEYWORDS = {"out", "dtype", "casting"}  # what cupy.ufunc.__call__ accepts


class CheckedModule:
    """``real`` (NumPy world) whose every attribute is checked against ``twin`` (CuPy world)."""

    def __init__(self, real: Any, twin: Any, label: str, log: CallLog):
        self._real, self._twin, self._label, self._log = real, twin, label, log

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        where = f"{self._label}.{name}"
        if not hasattr(self._twin, name):
            self._log.problem(f"{where} does not exist in {self._twin.__name__}")
            return value
        twin = getattr(self._twin, name)
        if inspect.ismodule(value):
            return CheckedModule(value, twin, where, self._log)
        if callable(value) and not isinstance(value, type):
            return self._log.wrap(where, value, twin)
        return value


class CallLog:
    """Problems found and the functions seen."""

    def __init__(self):
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def wrap(self, where: str, func, twin):
        def checked(*args, **kwargs):
            self.seen.add(where)
            self.check(where, twin, args, kwargs)
            return func(*args, **kwargs)

        return checked

    def check(self, where: str, twin, args: tuple, kwargs: dict) -> None:
        if isinstance(twin, cupy.ufunc):
            extra = set(kwargs) - UFUNC_KEYWORDS
            if extra:
                self.problem(f"{where}: CuPy ufuncs take no {sorted(extra)}")
            if len(args) > twin.nin + twin.nout:
                self.problem(f"{where}: {len(args)} operands for a ufunc of {twin.nin} in, {twin.nout} out")
            return
        try:
            signature = inspect.signature(twin)
        except (TypeError, ValueError):
            self.seen.add(f"{where} (signature not inspectable)")
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            self.problem(f"{where}({', '.join(kwargs)}): {exc} for CuPy's {where}{signature}")


class CheckedDevice(NdimageBackend):
    """The GPU backend's kernels on NumPy, every array-module and ndimage call checked."""

    def available_memory(self) -> int:
        return 8 << 30

    def release_memory(self) -> None:
        pass


@pytest.fixture
def checked():
    log = CallLog()
    device = CheckedDevice(
        xp=CheckedModule(np, cupy, "xp", log),
        name="gpu",
        device_name="checked against CuPy",
        ndi_module=CheckedModule(scipy.ndimage, cupy_ndimage, "ndi", log),
    )
    return device, log


@pytest.mark.parametrize("method", ["pyramid", "depthmap"])
def test_engine_on_gpu_kernels_uses_only_cupy_api(checked, method):
    device, log = checked
    stack = make_stack("coins", shape=(96, 128), n_frames=4, seed=5)
    result = FocusStacker(device=device, method=method).stack(stack.frames)
    assert result.image.shape == stack.truth.shape
    depth = regularise_depth(device, result.depth_raw, result.confidence, result.image.astype(np.float32))
    assert depth.shape == stack.truth.shape[:2]  # the regularised depth map (edge-aware fill) too
    assert not log.problems, "\n".join(log.problems)
    # the kernels really went through the checked modules
    assert {"ndi.affine_transform", "ndi.map_coordinates", "ndi.gaussian_filter", "ndi.zoom",
            "ndi.maximum_filter"} <= log.seen
    assert {"xp.where", "xp.moveaxis", "xp.percentile"} <= log.seen


def test_tiles_and_every_align_model_use_only_cupy_api(checked):
    device, log = checked
    stack = make_stack("checker", shape=(80, 112), n_frames=3, seed=6)
    for align in ("similarity", "affine", "translation", "none"):
        FocusStacker(device=device, align=align).estimate_transforms(stack.frames)
    FocusStacker(device=device, tile_size=256, scale_factor=2).stack(stack.frames)
    assert not log.problems, "\n".join(log.problems)


def test_the_checker_catches_what_cupy_lacks():
    log = CallLog()
    xp = CheckedModule(np, cupy, "xp", log)
    a = np.zeros(3)
    xp.copyto(a, np.ones(3), where=np.array([True, False, True]))  # fine in CuPy
    xp.add(a, 1, out=a, where=a > 0)  # CuPy ufuncs have no where=
    xp.clip(a, 0, 1, dtype=np.float32)  # cupy.clip takes no dtype
    assert len(log.problems) == 2, log.problems
