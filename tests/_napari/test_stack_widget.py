"""The Focus stack dock widget: runs, results, re-runs, cancel, responsiveness, clicks, errors."""
from __future__ import annotations

import gc
import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_focus_stack import FocusStacker
from napari_focus_stack._napari.stack_widget import SELECTED, FocusStackWidget
from napari_focus_stack.errors import AlignmentError

from .conftest import N_FRAMES, PCB, PCB_SMALL, SHAPE, result_by_role, run_and_wait

pytestmark = pytest.mark.napari




def test_run_on_a_stack_layer_adds_result_layers(viewer, widget, stack_layer, synthetic):
    widget.set_input("stack")
    values = []
    widget.progress_bar.valueChanged.connect(values.append)
    assert run_and_wait(widget._qtbot, widget) == "done"
    assert values == sorted(values) and values[-1] == widget.progress_bar.maximum() == 2 * N_FRAMES
    res = result_by_role(viewer)
    assert set(res) == {"fused", "depth", "confidence"}
    fused, depth, conf = res["fused"], res["depth"], res["confidence"]
    assert fused.name == "stack fused" and fused.rgb
    assert fused.data.shape == (*SHAPE, 3) and fused.data.dtype == np.uint8
    assert depth.data.shape == SHAPE and depth.data.dtype == np.float32
    assert depth.colormap.name == "turbo"
    assert tuple(depth.contrast_limits) == (0.0, N_FRAMES - 1)
    assert conf.data.dtype == np.float32 and 0 <= conf.data.min() and conf.data.max() <= 1
    assert not conf.visible
    # alignment is visible: a table row per frame, and the report in the metadata
    assert widget.table.rowCount() == N_FRAMES
    report = fused.metadata["focus_stack_report"]
    assert [f["name"] for f in report["frames"]] == [f"frame {k}" for k in range(N_FRAMES)]
    assert {"scale", "rotation_deg", "shift_x", "shift_y", "quality"} <= set(report["frames"][0])
    ref = report["reference"]
    assert widget.table.item(ref, widget.table.columnCount() - 1).text() == "reference"
    # the fused image is sharper than the reference frame and close to the truth
    err_fused = np.abs(fused.data.astype(float) - synthetic.truth).mean()
    err_ref = np.abs(synthetic.frames[ref].astype(float) - synthetic.truth).mean()
    assert err_fused < err_ref


def test_rerun_replaces_result_layers(viewer, widget, stack_layer):
    widget.set_input("stack")
    run_and_wait(widget._qtbot, widget)
    first = result_by_role(viewer)
    n_layers = len(viewer.layers)
    widget.engine.method.value = "depthmap"
    widget.engine.radius.value = 3
    assert run_and_wait(widget._qtbot, widget) == "done"
    second = result_by_role(viewer)
    assert len(viewer.layers) == n_layers
    assert sorted(layer.name for layer in viewer.layers) == sorted(
        ["stack", "stack fused", "stack depth", "stack confidence"]
    )
    for role in ("fused", "depth", "confidence"):
        assert second[role] is first[role]  # same layer, new data
    assert second["fused"].metadata["focus_stack_report"]["parameters"]["method"] == "depthmap"


def test_aligned_stack_option(viewer, widget, stack_layer, synthetic):
    widget.set_input("stack")
    widget.aligned_check.setChecked(True)
    assert run_and_wait(widget._qtbot, widget) == "done"
    aligned = result_by_role(viewer)["aligned"]
    assert aligned.data.shape == np.stack(synthetic.frames).shape and aligned.data.dtype == np.uint8
    ref = synthetic.reference
    np.testing.assert_array_equal(aligned.data[ref], synthetic.frames[ref])
    # a warped neighbour matches the reference better than the raw frame (focus breathing undone)
    inner = (slice(10, -10), slice(10, -10))
    k = ref + 1
    raw = np.abs(synthetic.frames[k][inner].astype(float) - synthetic.truth[inner]).mean()
    warped = np.abs(aligned.data[k][inner].astype(float) - synthetic.truth[inner]).mean()
    assert warped < raw


def test_excluded_frames_are_named(viewer, widget, synthetic):
    from napari.utils.notifications import notification_manager

    frames = np.stack(synthetic.frames)
    frames[-1] = np.random.default_rng(0).integers(0, 256, frames[-1].shape, dtype=np.uint8)  # not this scene
    viewer.add_image(frames, name="odd", rgb=True)
    widget.set_input("odd")
    before = len(notification_manager.records)
    assert run_and_wait(widget._qtbot, widget) == "done"
    report = result_by_role(viewer, "odd")["fused"].metadata["focus_stack_report"]
    assert report["excluded"] == [f"frame {N_FRAMES - 1}"]
    status = widget.table.item(N_FRAMES - 1, widget.table.columnCount() - 1)
    assert status.text() == "excluded" and "quality" in status.toolTip()
    assert f"frame {N_FRAMES - 1}" in widget.excluded_label.text()
    assert any(f"frame {N_FRAMES - 1}" in n.message for n in notification_manager.records[before:])


def test_selected_2d_layers_as_input(viewer, widget, synthetic):
    layers = [viewer.add_image(f, name=f"f{k}", rgb=True) for k, f in enumerate(synthetic.frames)]
    viewer.layers.selection.clear()
    viewer.layers.selection.update(layers)
    widget.set_input(SELECTED)
    assert run_and_wait(widget._qtbot, widget) == "done"
    res = result_by_role(viewer, "focus stack")
    assert res["fused"].data.shape == (*SHAPE, 3)
    frames = res["fused"].metadata["focus_stack_report"]["frames"]
    assert [f["name"] for f in frames] == [layer.name for layer in layers]


def test_gray_16_bit_stack_stays_16_bit(viewer, widget, synthetic):
    gray = np.stack([f.astype(np.uint16).sum(axis=2) * 85 for f in synthetic.frames])
    viewer.add_image(gray, name="gray16")
    widget.set_input("gray16")
    assert run_and_wait(widget._qtbot, widget) == "done"
    fused = result_by_role(viewer, "gray16")["fused"]
    assert fused.data.dtype == np.uint16 and fused.data.shape == SHAPE and not fused.rgb


def test_cancel_stops_within_one_frame(viewer, widget, qtbot, monkeypatch):
    from napari_focus_stack._napari import stack_widget
    from napari_focus_stack.synthetic import make_stack

    big = make_stack("pcb", shape=(240, 320), n_frames=8, seed=5)
    viewer.add_image(np.stack(big.frames), name="big", rgb=True)
    widget.set_input("big")
    widget.engine.scale_factor.value = 2
    ticks = []  # (frames done, was cancel already set), seen in the worker thread
    threads = []
    real_job = stack_widget._stack_job

    def spy_job(job, options, cancel, progress):
        threads.append(FocusStacker(**options.kwargs()).workers)  # the job's default threads

        def spy(done, total, stage):
            ticks.append((done, cancel.is_set()))
            progress(done, total, stage)

        return real_job(job, options, cancel, spy)

    monkeypatch.setattr(stack_widget, "_stack_job", spy_job)
    widget._bridge.progress.connect(lambda done, total, stage: done >= 2 and widget.cancel_button.click())
    assert run_and_wait(qtbot, widget) == "cancelled"
    after = [done for done, was_set in ticks if was_set]
    # each thread in flight finishes the frame it is on, then stops
    assert len(after) <= max(2, threads[0]), ticks
    assert max(done for done, _ in ticks) < 2 * 8
    assert not result_by_role(viewer, "big")
    assert widget.status_label.text() == "Cancelled."
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_ui_stays_responsive_during_a_run(viewer, widget, qtbot):
    from qtpy.QtCore import QTimer

    from napari_focus_stack.synthetic import make_stack

    stack = make_stack("coffee", shape=(192, 256), n_frames=6, seed=4)
    viewer.add_image(np.stack(stack.frames), name="beats", rgb=True)
    widget.set_input("beats")
    widget.engine.scale_factor.value = 2
    widget.aligned_check.setChecked(True)
    # A full (generation 2) garbage collection of a napari process takes ~170 ms here and
    # can fall anywhere, whatever the GUI does; start from a collected heap so that this
    # measures the widget's own blocking, not when the interpreter's next full collection falls.
    gc.collect()
    beats = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start()
    try:
        t0 = time.perf_counter()
        assert run_and_wait(qtbot, widget) == "done"
        qtbot.wait(30)  # let the last layer draw
        t1 = time.perf_counter()
    finally:
        timer.stop()
    times = np.array([t0, *beats, t1])
    gaps = np.diff(times)
    worst = int(gaps.argmax())
    assert len(beats) >= 10, "the run was too short to test anything"
    assert gaps.max() < 0.2, (
        f"the GUI froze for {gaps.max() * 1000:.0f} ms, {times[worst] - t0:.2f} s into a {t1 - t0:.2f} s run"
    )


def test_click_on_depth_map_moves_the_dims_slider(viewer, widget, stack_layer):
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.events import Event
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    stack_layer.scale = (1, 0.5, 0.5)  # microscope-like pixel size: world != data coordinates
    widget.set_input("stack")
    run_and_wait(widget._qtbot, widget)
    depth = result_by_role(viewer)["depth"]
    assert tuple(depth.scale) == (0.5, 0.5)
    z_axis = 0
    for frame in (0, N_FRAMES - 1):
        r, c = np.argwhere(np.rint(depth.data) == frame)[0]
        world = (viewer.dims.point[0], r * 0.5, c * 0.5)
        for kind in ("mouse_press", "mouse_release"):
            event = ReadOnlyWrapper(
                Event(type_name=kind, position=world, button=1, is_dragging=False, modifiers=[],
                      view_direction=None, dims_displayed=[1, 2]),
                exceptions=("handled",),
            )
            (mouse_press_callbacks if kind == "mouse_press" else mouse_release_callbacks)(depth, event)
        assert viewer.dims.current_step[z_axis] == frame
        assert f"frame {frame}" in viewer.status


def test_drag_on_depth_map_does_not_jump(viewer, widget, stack_layer):
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.events import Event
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    widget.set_input("stack")
    run_and_wait(widget._qtbot, widget)
    depth = result_by_role(viewer)["depth"]
    viewer.dims.set_current_step(0, 2)
    r, c = np.argwhere(np.rint(depth.data) == 0)[0]

    def ev(kind, dragging):
        return ReadOnlyWrapper(Event(type_name=kind, position=(2, r, c), button=1, is_dragging=dragging,
                                     modifiers=[], view_direction=None, dims_displayed=[1, 2]),
                               exceptions=("handled",))

    mouse_press_callbacks(depth, ev("mouse_press", False))
    mouse_move_callbacks(depth, ev("mouse_move", True))
    mouse_release_callbacks(depth, ev("mouse_release", False))
    assert viewer.dims.current_step[0] == 2


def test_widget_fits_memory_like_the_command_line(viewer, widget, monkeypatch):
    # one job layer: the widget fuses in tiles when memory is short, and says so
    from napari_focus_stack.jobs import memory
    from napari_focus_stack.synthetic import make_stack

    st = make_stack("pcb", shape=(300, 320), n_frames=4, seed=2)
    viewer.add_image(np.stack(st.frames), name="stack", rgb=True)
    widget.set_input("stack")
    assert run_and_wait(widget._qtbot, widget) == "done"
    whole = result_by_role(viewer)["fused"].data.copy()
    monkeypatch.setattr(memory, "TILE_SIZES", (256,))
    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    monkeypatch.setattr(
        memory, "estimate_peak_memory", lambda shape, sf=1, inf=2, tile_size=None: 2**31 if tile_size is None else 2**29
    )
    assert run_and_wait(widget._qtbot, widget) == "done"
    res = result_by_role(viewer)
    assert res["fused"].metadata["focus_stack_report"]["tiles"] > 1
    assert "Memory is short: fused in tiles of 256 px." in widget.status_label.text()
    assert np.abs(res["fused"].data.astype(float) - whole).mean() < 0.5  # the same picture
    monkeypatch.setattr(memory, "estimate_peak_memory", lambda *a, **k: 2**40)  # nothing fits
    assert run_and_wait(widget._qtbot, widget) == "error"
    assert "GiB of memory" in widget.status_label.text()


def test_engine_error_becomes_a_notification(viewer, widget, stack_layer, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_focus_stack import stacker

    def fail(self, inputs, **kwargs):
        raise AlignmentError("frame 3.jpg could not be registered; try align='translation'")

    monkeypatch.setattr(stacker.FocusStacker, "stack", fail)
    widget.set_input("stack")
    before = len(notification_manager.records)
    assert run_and_wait(widget._qtbot, widget) == "error"
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("frame 3.jpg could not be registered" in m for m in messages), messages
    assert "could not be registered" in widget.status_label.text()
    assert not result_by_role(viewer)
    assert widget.run_button.isEnabled()


def test_a_bug_is_raised_not_shown_as_a_user_error(viewer, widget, stack_layer, monkeypatch, qtbot):
    """Only FocusStackError is a user error; a NumPy broadcasting bug keeps its traceback."""
    from napari.utils.notifications import notification_manager

    from napari_focus_stack import stacker

    def bug(self, inputs, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(stacker.FocusStacker, "stack", bug)
    widget.set_input("stack")
    before = len(notification_manager.records)
    with qtbot.capture_exceptions() as raised:
        assert run_and_wait(qtbot, widget) == "error"
    assert any(isinstance(exc, ValueError) and "broadcast" in str(exc) for _, exc, _ in raised), raised
    assert not any("Focus stacking failed" in n.message for n in notification_manager.records[before:])
    assert "unexpected error" in widget.status_label.text()
    assert widget.run_button.isEnabled() and not result_by_role(viewer)


def test_input_error_becomes_a_notification(viewer, widget, synthetic):
    from napari.utils.notifications import notification_manager

    a = viewer.add_image(synthetic.frames[0], name="a", rgb=True)
    b = viewer.add_image(synthetic.frames[1][:50], name="b", rgb=True)
    viewer.layers.selection.update([a, b])
    widget.set_input(SELECTED)
    before = len(notification_manager.records)
    widget.run_button.click()
    assert widget.worker is None
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("same size" in m for m in messages), messages


def test_no_input_is_explained(viewer, widget):
    from napari.utils.notifications import notification_manager

    before = len(notification_manager.records)
    widget.run_button.click()
    assert any("Nothing to stack" in n.message for n in notification_manager.records[before:])


def test_reference_range_follows_the_input(viewer, widget, stack_layer, synthetic):
    from napari_focus_stack._napari.engine_form import EngineForm

    assert isinstance(widget.engine, EngineForm)
    widget.set_input("stack")
    assert widget.engine.reference.max == N_FRAMES - 1
    viewer.add_image(np.stack(synthetic.frames[:3]), name="three", rgb=True)
    widget.set_input("three")
    assert widget.engine.reference.max == 2


def test_controls_start_at_the_engine_defaults(viewer):
    from napari_focus_stack.options import EngineOptions

    widget = FocusStackWidget(viewer)
    assert widget._make_options() == EngineOptions()
    widget.deleteLater()


def test_reference_frame_is_passed_to_the_engine(viewer, widget, stack_layer):
    widget.set_input("stack")
    widget.engine.reference.value = 1
    run_and_wait(widget._qtbot, widget)
    assert result_by_role(viewer)["fused"].metadata["focus_stack_report"]["reference"] == 1


def test_sample_data_then_widget(viewer, widget):
    from napari_focus_stack._napari._sample_data import make_sample_data

    for data, kwargs, kind in make_sample_data(shape=(96, 128), n_frames=4, seed=1):
        viewer._add_layer_from_data(data, kwargs, kind)
    assert [layer.name for layer in viewer.layers] == [
        "synthetic stack", "synthetic truth (all in focus)", "synthetic true depth"]
    truth, true_depth = viewer.layers[1], viewer.layers[2]
    assert true_depth.colormap.name == "turbo" and tuple(true_depth.contrast_limits) == (0, 3)
    widget.set_input("synthetic stack")
    assert run_and_wait(widget._qtbot, widget) == "done"
    res = result_by_role(viewer, "synthetic stack")
    # the depth map agrees with the truth where there is texture
    corr = np.corrcoef(res["depth"].data.ravel(), true_depth.data.ravel())[0, 1]
    assert corr > 0.5, corr
    assert res["fused"].data.shape == truth.data.shape


def test_sample_data_contribution(viewer):
    viewer.open_sample("napari-focus-stack", "synthetic")
    stack, truth, depth = viewer.layers
    assert stack.data.ndim == 4 and stack.rgb and tuple(stack.axis_labels) == ("z", "y", "x")
    assert truth.data.shape == stack.data.shape[1:] and not truth.visible
    assert depth.data.shape == stack.data.shape[1:3] and depth.data.dtype == np.float32


def test_real_pcb_stack(viewer, widget, tmp_path):
    """The real PCB frames, read, stacked and saved with their EXIF.

    A half-size JPEG copy (EXIF kept) of ../shared/data/focus-stack-pcb when it
    is there, else the 512 x 384 copy shipped under tests/data.
    """
    from PIL import Image

    from napari_focus_stack._napari._writer import write_image_layer
    from napari_focus_stack.io import read_image

    if PCB.is_dir():
        paths = []
        for src in sorted(PCB.glob("pcb_0*.jpg")):
            with Image.open(src) as im:
                im.reduce(2).save(tmp_path / src.name, quality=95, exif=im.info.get("exif", b""))
            paths.append(tmp_path / src.name)
        shape = (768, 1024)
    elif PCB_SMALL.is_dir():
        paths, shape = sorted(PCB_SMALL.glob("pcb_0*.jpg")), (384, 512)
    else:
        pytest.skip("no PCB frames: neither ../shared/data/focus-stack-pcb nor tests/data/pcb-small")
    (layer,) = viewer.open([str(p) for p in paths], stack=True, plugin="napari-focus-stack")
    assert layer.data.shape == (7, *shape, 3)
    widget.set_input(layer.name)
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    res = result_by_role(viewer, layer.name)
    fused = res["fused"]
    assert fused.data.shape == (*shape, 3) and fused.data.dtype == np.uint8
    report = fused.metadata["focus_stack_report"]
    assert not report["excluded"]
    assert [f["name"] for f in report["frames"]] == [p.name for p in paths]
    scales = [f["scale"] for f in report["frames"]]
    assert max(scales) - min(scales) > 0.005  # focus breathing was measured
    # the depth map spans the stack: near frames at one end, far ones at the other
    assert res["depth"].data.min() < 1.5 and res["depth"].data.max() > 4.5
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out,) = write_image_layer(str(out_dir / "pcb.jpg"), fused.data, {"rgb": True, "metadata": fused.metadata})
    reference_exif = read_image(paths[report["reference"]])[1].exif
    assert read_image(out)[1].exif == reference_exif


def test_notification_busy_timer_is_defused(monkeypatch):
    """napari 0.9: a toast shown while the window is inactive keeps a 0 ms repeating timer."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtCore import QTimer

    from napari_focus_stack._napari._notify import defuse_notification_timers

    class Toast:  # the parts of NapariQtNotification the workaround touches
        DISMISS_AFTER = NapariQtNotification.DISMISS_AFTER
        faded = False

        def __init__(self):
            self.timer = QTimer()  # left as napari's show() leaves it: interval 0, repeating

        def close_with_fade(self):
            self.faded = True

    toast = Toast()
    monkeypatch.setattr(NapariQtNotification, "_instances", [toast])
    toast.timer.start()  # napari starts it on a focus change or when the mouse leaves the toast
    defuse_notification_timers()
    assert toast.timer.isSingleShot() and toast.timer.interval() == Toast.DISMISS_AFTER > 0
    assert toast.timer.isActive()
    toast.timer.stop()
