"""The GPU path's logic, checked on the CPU: transfers, tiling, out-of-memory.

A simulated device backend runs NumPy but counts every frame-sized upload
and download, so the "each frame uploaded once, result downloaded once"
rule is tested on machines without a GPU. Real-GPU parity lives in
test_stacker.py::test_gpu_matches_cpu (skipped without a device).
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import psnr
from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import NdimageBackend, reference_backend
from napari_focus_stack.synthetic import make_stack

BIG = 1000  # elements: anything smaller (4x4 normal equations, gains) is not a frame transfer


class DeviceArray(np.ndarray):
    """Marks arrays that "live on the simulated device" (results of numpy ops keep the mark)."""


class SimulatedDevice(NdimageBackend):
    """NumPy dressed up as a device: copies on transfer, counts the big ones.

    Its kernels are the GPU's (ndimage on NumPy instead of cupyx on CuPy).
    """

    def available_memory(self) -> int:
        return 8 << 30

    def release_memory(self) -> None:
        self.counts["released"] += 1


def simulated_device() -> SimulatedDevice:
    ref = reference_backend()
    counts = {"up": 0, "down": 0, "released": 0}

    def up(a):
        if isinstance(a, DeviceArray):  # already there: no transfer, like cupy.asarray
            return a
        a = np.asarray(a)
        counts["up"] += a.size >= BIG
        return a.copy().view(DeviceArray)

    def down(a):
        # library code drops the DeviceArray mark, so every big download counts
        a = np.asarray(a)
        counts["down"] += a.size >= BIG
        return a.copy()

    dev = SimulatedDevice(
        xp=np, name="gpu", device_name="simulated", _to_device=up, _to_numpy=down, ndi_module=ref.ndi_module
    )
    object.__setattr__(dev, "counts", counts)
    return dev


@pytest.fixture(scope="module")
def stack():
    return make_stack("rocks", shape=(384, 512), n_frames=5, seed=2)


def test_each_frame_uploaded_once_result_downloaded_once(stack):
    dev = simulated_device()
    res = FocusStacker(device=dev).stack(stack.frames, depth=False)
    n = len(stack.frames)
    assert dev.counts["up"] == n  # pass 2 reads the device-side cache
    assert dev.counts["down"] == 3  # image, depth, confidence
    assert res.report.cache_hits == n and res.report.tiles == 1
    cpu = FocusStacker(device="cpu").stack(stack.frames)
    assert psnr(res.image, cpu.image) > 50


def test_without_cache_frames_are_uploaded_per_pass(stack):
    dev = simulated_device()
    FocusStacker(device=dev, cache_bytes=0).stack(stack.frames, depth=False)
    assert dev.counts["up"] == 2 * len(stack.frames)


def test_cache_budget_is_respected(stack):
    dev = simulated_device()
    frame_bytes = stack.frames[0].nbytes
    res = FocusStacker(device=dev, cache_bytes=2 * frame_bytes).stack(stack.frames)
    assert res.report.cache_hits == 2


@pytest.mark.parametrize("method", ["pyramid", "depthmap"])
def test_tiles_have_no_seams(stack, method):
    whole = FocusStacker(device="cpu", method=method).stack(stack.frames)
    tiled = FocusStacker(device="cpu", method=method, tile_size=256).stack(stack.frames)
    assert tiled.report.tiles == 4
    assert psnr(tiled.image, whole.image) > 50
    assert (np.abs(tiled.depth - whole.depth) < 0.5).mean() > 0.995


def test_out_of_memory_falls_back_to_tiles(stack, monkeypatch):
    from napari_focus_stack import fusion

    full = stack.frames[0].shape[0] * stack.frames[0].shape[1]
    original = fusion.PyramidFusion.prepare

    def tight(self, frame, valid=None):
        if frame.shape[0] * frame.shape[1] >= full:
            raise MemoryError("simulated device out of memory")
        return original(self, frame, valid)

    monkeypatch.setattr(fusion.PyramidFusion, "prepare", tight)
    dev = simulated_device()
    seen = []
    res = FocusStacker(device=dev).stack(stack.frames, progress=lambda d, t, s: seen.append(d))
    assert res.report.tiles > 1 and dev.counts["released"] == 1
    assert seen[-1] == 2 * len(stack.frames)
    monkeypatch.setattr(fusion.PyramidFusion, "prepare", original)
    ref = FocusStacker(device="cpu").stack(stack.frames)
    assert psnr(res.image, ref.image) > 50


def test_tile_size_validated():
    with pytest.raises(ValueError, match="tile_size"):
        FocusStacker(tile_size=16)
