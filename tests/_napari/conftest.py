"""Fixtures for the napari plugin tests: small synthetic stacks on disk and a docked widget.

Every test module here skips itself when napari or a Qt binding is missing.
They need a display: pytest-xvfb starts Xvfb for the run (napari's canvas
needs OpenGL, which the offscreen Qt platform lacks). They run on Qt6:
pytest-qt's ``qt_api`` (pyproject.toml) and qtpy's ``QT_API`` (set here, before
any test module imports qtpy) both name PyQt6.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PCB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "focus-stack-pcb"
PCB_SMALL = Path(__file__).resolve().parents[1] / "data" / "pcb-small"  # 512 x 384 copy shipped with the tests
SHAPE = (96, 128)
N_FRAMES = 5

os.environ.setdefault("QT_API", "pyqt6")


@pytest.fixture(scope="session")
def synthetic():
    """A 5-frame 96x128 RGB synthetic stack with ground truth."""
    from napari_focus_stack.synthetic import make_stack

    return make_stack("astronaut", shape=SHAPE, n_frames=N_FRAMES, seed=2)


@pytest.fixture
def frame_folder(tmp_path, synthetic) -> Path:
    """The synthetic frames as PNG files (lossless) in a folder."""
    from napari_focus_stack.synthetic import save_stack

    folder = tmp_path / "stack"
    save_stack(synthetic, folder, fmt="png", prefix="frame")
    return folder


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer, qtbot):
    """The focus-stack widget, docked the way napari docks plugin widgets."""
    dock, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Focus stack")
    widget.engine.scale_factor.value = 1
    widget.engine.device.value = "cpu"
    widget._qtbot = qtbot
    yield widget
    if widget.busy:  # never leave a thread running into the next test
        widget.cancel()
        qtbot.waitUntil(lambda: not widget.busy, timeout=20000)


@pytest.fixture
def batch_widget(viewer, qtbot):
    """The Batch widget, docked, on the CPU at scale factor 1."""
    from napari_focus_stack._napari.batch_widget import BatchWidget

    widget = BatchWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Batch")
    widget.engine.scale_factor.value = 1
    widget.engine.device.value = "cpu"
    yield widget
    if widget.worker is not None:  # never leave a thread running into the next test
        widget.cancel()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


@pytest.fixture
def stack_layer(viewer, synthetic):
    """The synthetic stack as an RGB stack layer named 'stack'."""
    return viewer.add_image(np.stack(synthetic.frames), name="stack", rgb=True)


def run_and_wait(qtbot, widget, timeout=30000) -> str:
    """Click Run and wait for the run to end; returns "done", "cancelled" or "error"."""
    with qtbot.waitSignal(widget.run_finished, timeout=timeout) as blocker:
        widget.run_button.click()
    return blocker.args[0]


def results_by_role(viewer, key: str) -> dict[str, list]:
    """The result layers made from input `key`, by role ("fused", "depth"...): a list each (channel layers
    give one fused layer per channel)."""
    out: dict = {}
    for layer in viewer.layers:
        if layer.metadata.get("focus_stack_input") == key and "focus_stack_role" in layer.metadata:
            out.setdefault(layer.metadata["focus_stack_role"], []).append(layer)
    return out


def result_by_role(viewer, key: str = "stack") -> dict:
    """:func:`results_by_role` for a single-channel input: one layer per role."""
    return {role: layers[-1] for role, layers in results_by_role(viewer, key).items()}
