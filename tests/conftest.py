"""Shared fixtures: backends, small synthetic stacks, the real PCB frames."""
from __future__ import annotations

from pathlib import Path

import pytest

from napari_focus_stack._backend import get_backend, gpu_status, reference_backend

SHARED_PCB = Path(__file__).resolve().parents[2] / "shared" / "data" / "focus-stack-pcb"
SMALL_PCB = Path(__file__).resolve().parent / "data" / "pcb-small"


def _backend_params():
    ok, why = gpu_status()
    return [
        pytest.param("cpu", id="cpu"),
        # the GPU's kernels (ndimage API) on NumPy: GPU code paths checked everywhere
        pytest.param("ndimage", id="ndimage"),
        pytest.param("gpu", id="gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(not ok, reason=f"no GPU: {why}")]),
    ]


@pytest.fixture(params=_backend_params())
def backend(request):
    """Every available backend: the CPU always, the GPU where cupy sees one."""
    return reference_backend() if request.param == "ndimage" else get_backend(request.param)


@pytest.fixture(scope="session")
def small_stack():
    """A 6-frame 160x200 RGB synthetic stack with ground truth."""
    from napari_focus_stack.synthetic import make_stack

    return make_stack("astronaut", shape=(160, 200), n_frames=6, seed=3)


@pytest.fixture(scope="session")
def pcb_paths() -> list[Path]:
    """The real 7-frame PCB stack from ../shared, or skip."""
    if not SHARED_PCB.is_dir():
        pytest.skip("../shared/data/focus-stack-pcb is not present")
    return sorted(SHARED_PCB.glob("pcb_0*.jpg"))


@pytest.fixture(scope="session")
def pcb_small_paths() -> list[Path]:
    """The same real PCB frames downscaled to 512 x 384, shipped with the tests."""
    return sorted(SMALL_PCB.glob("pcb_0*.jpg"))
