"""The Focus stack widget with channel layers and failed input checks: one set of results, honest ends."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from hyperstacks import write_imagej
from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack.synthetic import make_hyperstack

from .conftest import run_and_wait

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("patches", shape=(40, 48), n_z=4, n_t=1, n_c=2, seed=5)


def test_running_from_the_other_channel_replaces_the_results(viewer, widget, hyper, tmp_path):
    path = write_imagej(tmp_path / "cells.tif", hyper.data[0], "CZYX")
    first, second = viewer.open(str(path), plugin=PLUGIN)
    widget.set_input(first.name)
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    names = [layer.name for layer in viewer.layers]
    widget.set_input(second.name)  # the same two channels, fused from the other one
    assert [layer.name for layer in widget.channel_picker.channel_layers()] == [first.name, second.name]
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    assert [layer.name for layer in viewer.layers] == names  # replaced: no "... fused [1]"
    assert not any("[" in name for name in names)
    results = [layer for layer in viewer.layers if md.ROLE in layer.metadata]
    assert len(results) == 4  # two fused channels, one depth and one confidence map


def test_a_result_of_the_same_name_is_replaced_not_doubled(viewer, widget, hyper):
    from napari.layers import Image

    viewer.add_image(hyper.data[0, 0], name="cells")
    # a layer named like a result, made by an earlier run (another key): replaced, not "cells fused [1]"
    viewer.add_layer(Image(np.zeros((40, 48), np.uint16), name="cells fused",
                           metadata={md.ROLE: "fused", md.INPUT: "gone"}))
    widget.set_input("cells")
    assert run_and_wait(widget._qtbot, widget) == "done"
    assert [layer.name for layer in viewer.layers if layer.name.startswith("cells fused")] == ["cells fused"]
    assert viewer.layers["cells fused"].metadata[md.INPUT] == "cells"


def test_failed_input_checks_still_end_the_run(viewer, widget, hyper):
    viewer.add_image(hyper.data[0, 0], name="stack")
    widget.set_input("stack")
    viewer.layers.remove("stack")  # gone between choosing and Run
    with widget._qtbot.waitSignal(widget.run_finished, timeout=5000) as blocker:
        widget.run_button.click()
    assert blocker.args == ["error"] and widget.worker is None
    assert "Error:" in widget.status_label.text()


def test_fuse_with_lists_only_the_channels_of_the_input(viewer, widget, hyper, tmp_path):
    a = write_imagej(tmp_path / "a.tif", hyper.data[0], "CZYX")
    b = write_imagej(tmp_path / "b.tif", hyper.data[0], "CZYX")  # another file of the same size
    a0, a1 = viewer.open(str(a), plugin=PLUGIN)
    viewer.open(str(b), plugin=PLUGIN)
    viewer.add_image(hyper.data[0, 0], name="array")  # an array of the same size, from no file
    widget.set_input(a0.name)
    picker = widget.channel_picker
    assert [picker.list.item(k).text() for k in range(picker.list.count())] == [a1.name]
    # arrays fuse with arrays placed alike (napari's channel_axis), not with other-placed ones
    viewer.add_image(hyper.data[0], channel_axis=0, name=["ch0", "ch1"], scale=(0.5, 0.1, 0.1))
    widget.set_input("ch0")
    assert [picker.list.item(k).text() for k in range(picker.list.count())] == ["ch1"]
