"""Retouching in napari: paint a frame over the fused image, live; sharpest-frame brush, eraser, undo, save and open."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_focus_stack._napari._reader import get_reader, read_retouch_layers
from napari_focus_stack.io.mask import mask_info
from napari_focus_stack.retouch import REACH, apply_retouch

from .conftest import N_FRAMES, SHAPE, result_by_role, run_and_wait

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"
REGION = (20, 76, 30, 100)  # y0, y1, x0, x1



def _same_to_rounding(a, b) -> bool:
    """Equal but for a level in a few pixels: a window's bicubic warp and a whole frame's differ by float rounding."""
    d = np.abs(np.asarray(a).astype(np.int64) - np.asarray(b).astype(np.int64))
    return int(d.max()) <= 1 and float((d > 0).mean()) < 1e-3



def _rectangle(region=REGION):
    y0, y1, x0, x1 = region
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return yy.ravel(), xx.ravel()


@pytest.fixture
def retouching(viewer, widget, stack_layer):
    """A finished run on the synthetic stack, with its retouch layer added (the Retouch button)."""
    widget.set_input("stack")
    assert run_and_wait(widget._qtbot, widget) == "done"
    panel = widget.retouch
    assert panel.start_button.isEnabled() and not panel.frame_spin.isEnabled()
    panel.start_button.click()
    widget._qtbot.waitUntil(lambda: panel.layer is not None, timeout=10000)
    panel.wait_until_idle(widget._qtbot)
    return panel


def test_painting_a_frame_shows_it_in_the_fused_image(viewer, widget, synthetic, retouching):
    panel, qtbot = retouching, widget._qtbot
    res = result_by_role(viewer)
    layer, fused, depth, conf = res["retouch"], res["fused"], res["depth"], res["confidence"]
    assert layer is panel.layer and layer.name == "stack retouch" and layer.data.shape == SHAPE
    assert type(layer).__name__ == "Labels" and layer.mode == "paint"
    assert tuple(layer.scale) == tuple(fused.scale) and tuple(layer.translate) == tuple(fused.translate)
    assert viewer.layers.selection.active is layer and viewer.layers.index(layer) > viewer.layers.index(fused)
    automatic = panel.retouch.automatic
    shown = fused.data  # updated in place: the same array, refreshed
    assert np.array_equal(shown, automatic.image)

    panel.frame_spin.setValue(2)
    assert layer.selected_label == 2 and panel.frame_name.text() == "frame 1"
    redrawn = []
    fused.events.set_data.connect(lambda e: redrawn.append(e))
    layer.data_setitem(_rectangle(), 2)  # as a fill or a stroke does: a paint event
    panel.wait_until_idle(qtbot)
    assert redrawn  # the fused layer was refreshed, not only its array changed
    mask = np.asarray(layer.data)
    want = apply_retouch(automatic, synthetic.frames, mask)
    assert fused.data is shown and _same_to_rounding(fused.data, want.image)
    assert np.array_equal(depth.data, want.depth) and np.array_equal(conf.data, want.confidence)
    painted = mask == 2
    assert np.all(depth.data[painted] == 1) and np.all(conf.data[painted] == 1.0)
    y0, y1, x0, x1 = REGION
    assert np.abs(fused.data[y0 + REACH // 2: y1 - REACH // 2, x0 + REACH: x1 - REACH].astype(int)
                  - automatic.image[y0 + REACH // 2: y1 - REACH // 2, x0 + REACH: x1 - REACH]).max() > 5

    # live: during a stroke (its paint event comes when it ends) the image follows each dab
    with layer.block_history():
        layer.brush_size = 9
        layer.paint((85, 110), 4)
        panel.wait_until_idle(qtbot)
        assert _same_to_rounding(fused.data, apply_retouch(automatic, synthetic.frames, layer.data).image)
        assert depth.data[85, 110] == 3
    panel.wait_until_idle(qtbot)

    # the eraser (label 0) gives the automatic pixels back, exactly; undo brings the painting back
    layer.data_setitem(_rectangle((y0, y1, x0, x0 + 35)), 0)
    layer.paint((85, 110), 0)
    panel.wait_until_idle(qtbot)
    assert _same_to_rounding(fused.data, apply_retouch(automatic, synthetic.frames, layer.data).image)
    panel.erase_all()
    panel.wait_until_idle(qtbot)
    assert np.array_equal(fused.data, automatic.image) and np.array_equal(depth.data, automatic.depth)
    layer.undo()
    panel.wait_until_idle(qtbot)
    assert _same_to_rounding(fused.data, apply_retouch(automatic, synthetic.frames, layer.data).image)
    assert layer.data[y0, x1 - 1] == 2 and layer.data[y0, x0] == 0

    # a label that is no frame is refused in the panel, and the image left as it was
    before = fused.data.copy()
    layer.data_setitem(_rectangle((0, 4, 0, 4)), N_FRAMES + 3)
    panel.wait_until_idle(qtbot)
    assert f"label {N_FRAMES + 3} is no frame" in panel.status.text()
    assert np.array_equal(fused.data, before)


def _drag(panel, layer, points):
    """Drive the sharpest-frame brush's drag callback as napari does: press, moves, release."""
    event = SimpleNamespace(type="mouse_press", button=1, position=points[0])
    drag = panel._sharpest_drag(layer, event)
    next(drag)
    for p in points[1:]:
        event.type, event.position = "mouse_move", p
        next(drag)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(drag)


def test_the_sharpest_frame_brush_and_the_cursor(viewer, widget, synthetic, retouching):
    panel, qtbot = retouching, widget._qtbot
    layer, fused = panel.layer, result_by_role(viewer)["fused"]
    automatic = panel.retouch.automatic
    # a wrong frame painted, then brushed over with the sharpest frame
    layer.data_setitem(_rectangle(), 1)
    panel.wait_until_idle(qtbot)
    panel.sharpest_check.setChecked(True)
    assert layer.mode == "pan_zoom" and not layer.mouse_pan and panel._sharpest_drag in layer.mouse_drag_callbacks
    layer.brush_size = 15
    undo_steps = len(layer._undo_history)
    _drag(panel, layer, [(48.0, 50.0), (48.0, 60.0), (48.0, 70.0)])
    assert len(layer._undo_history) == undo_steps + 1  # one stroke, one undo step
    sharpest = np.clip(np.rint(automatic.depth), 0, N_FRAMES - 1).astype(int) + 1
    brushed = (slice(45, 52), slice(50, 71))
    assert np.array_equal(layer.data[brushed], sharpest[brushed])
    panel.wait_until_idle(qtbot)
    assert _same_to_rounding(fused.data, apply_retouch(automatic, synthetic.frames, layer.data).image)
    # choosing another tool ends the sharpest-frame brush
    layer.mode = "paint"
    assert not panel.sharpest_check.isChecked() and panel._sharpest_drag not in layer.mouse_drag_callbacks

    # the frame under the cursor: the z slider follows it, the status names it
    panel.follow_check.setChecked(True)
    assert panel._on_mouse_move in viewer.mouse_move_callbacks
    assert panel.show_frame_under((REGION[0] + 2, REGION[2] + 2)) == 0  # painted with frame 1
    assert viewer.dims.point[0] == 0 and "frame 1 (frame 0), painted" in viewer.status
    corner = (SHAPE[0] - 3, SHAPE[1] - 3)
    z = panel.show_frame_under(corner)
    assert z == int(np.rint(automatic.depth[corner])) and viewer.dims.point[0] == z and "sharpest" in viewer.status
    panel.follow_check.setChecked(False)
    assert panel._on_mouse_move not in viewer.mouse_move_callbacks


def test_the_mask_saves_and_opens_again_over_its_result(viewer, widget, synthetic, retouching, tmp_path):
    panel, qtbot = retouching, widget._qtbot
    layer, fused = panel.layer, result_by_role(viewer)["fused"]
    automatic = panel.retouch.automatic
    layer.data_setitem(_rectangle(), 4)
    panel.wait_until_idle(qtbot)
    painted = fused.data.copy()
    path = tmp_path / "stack retouch.tif"
    layer.save(str(path), plugin=PLUGIN)
    assert mask_info(path) == {"input": "stack", "frames": [f"frame {k}" for k in range(N_FRAMES)]}
    assert get_reader(str(path)) is read_retouch_layers

    # removing the layer goes back to the automatic result
    viewer.layers.remove(layer)
    panel.wait_until_idle(qtbot)
    assert panel.layer is None and np.array_equal(fused.data, automatic.image)
    assert panel.start_button.isEnabled()

    (opened,) = viewer.open(str(path), plugin=PLUGIN)
    assert type(opened).__name__ == "Labels" and opened.name == "stack retouch"
    qtbot.waitUntil(lambda: panel.layer is opened, timeout=10000)
    panel.wait_until_idle(qtbot)
    assert np.array_equal(fused.data, painted)

    # a rerun keeps the painting and applies it to the new result
    widget.engine.radius.value = 3
    assert run_and_wait(qtbot, widget) == "done"
    qtbot.waitUntil(lambda: panel.layer is opened and panel.retouch is not None, timeout=10000)
    panel.wait_until_idle(qtbot)
    fused = result_by_role(viewer)["fused"]
    new_automatic = panel.retouch.automatic
    assert new_automatic.report.parameters["radius"] == 3
    assert np.array_equal(fused.data, apply_retouch(new_automatic, synthetic.frames, opened.data).image)
    assert not np.array_equal(fused.data, new_automatic.image)
