"""The Batch dock widget: detect stacks, run with progress, cancel, open results."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_focus_stack._napari.batch_widget import BatchWidget  # noqa: E402

SHAPE = (64, 80)


def make_scan(folder: Path, poses: int, shape=SHAPE, frames: int = 4) -> None:
    """OpenScan-named frames ``Ella_0_<pose>-<frame>.jpg``."""
    from napari_focus_stack.synthetic import make_stack

    folder.mkdir(parents=True, exist_ok=True)
    for pose in range(poses):
        stack = make_stack("pcb", shape=shape, n_frames=frames, seed=pose % 2)
        for i, frame in enumerate(stack.frames, start=1):
            Image.fromarray(frame).save(folder / f"Ella_0_{pose}-{i}.jpg", quality=95)


def run_and_wait(qtbot, widget, timeout=60000) -> str:
    with qtbot.waitSignal(widget.run_finished, timeout=timeout) as blocker:
        widget.run_button.click()
    return blocker.args[0]


def test_detect_lists_stacks_and_problems(tmp_path, batch_widget):
    scan = tmp_path / "scan"
    make_scan(scan, poses=3)
    (scan / "notes.txt").write_text("x")
    (scan / "Ella_0_1-4.jpg").unlink()
    batch_widget.set_folders(scan)
    assert batch_widget.output_folder() == str(scan.with_name("scan-stacked"))  # next to the scan
    table = batch_widget.table
    assert table.rowCount() == 3
    assert [table.item(r, 0).text() for r in range(3)] == ["Ella_0_0", "Ella_0_1", "Ella_0_2"]
    assert table.item(1, 1).text() == "3"
    assert batch_widget.status_of("Ella_0_0") == "to do"
    assert "openscan" in batch_widget.plan_label.text()
    problems = batch_widget.problems_label.text()
    assert "notes.txt" in problems and "Ella_0_1 has 3 frames" in problems
    assert table.item(0, 4).text() == "Ella_0_0.jpg"

    batch_widget.format_combo.setCurrentIndex(batch_widget.format_combo.findData("tif"))
    assert table.item(0, 4).text() == "Ella_0_0.tif"  # the plan follows the options


def test_run_shows_progress_and_opens_results(tmp_path, viewer, qtbot, batch_widget):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)
    (scan / "Ella_0_2-2.jpg").write_bytes(b"")  # this stack fails, the others finish
    batch_widget.depth_check.setChecked(True)
    batch_widget.set_folders(scan, out)
    assert run_and_wait(qtbot, batch_widget) == "failed"
    assert batch_widget.status_of("Ella_0_0") == "done"
    assert batch_widget.status_of("Ella_0_2") == "failed"
    assert "0 bytes" in batch_widget.table.item(2, 2).toolTip()
    assert batch_widget.progress_of("Ella_0_1") == 1000
    assert batch_widget.progress_bar.value() == batch_widget.progress_bar.maximum()
    assert "2 done" in batch_widget.status_label.text()
    assert (out / "Ella_0_1.jpg").is_file() and (out / "batch-report.json").is_file()

    batch_widget.table.cellDoubleClicked.emit(1, 0)
    layer = viewer.layers["Ella_0_1"]
    assert layer.rgb and layer.data.shape == (*SHAPE, 3)
    assert viewer.layers["Ella_0_1 depth"].visible is False

    batch_widget.detect()  # a rerun has only the failed stack left to do
    assert [batch_widget.status_of(n) for n in ("Ella_0_0", "Ella_0_1", "Ella_0_2")] == [
        "complete", "complete", "to do"
    ]


def test_cancel(tmp_path, qtbot, batch_widget):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=4, shape=(192, 240), frames=5)
    batch_widget.engine.scale_factor.value = 2
    batch_widget.set_folders(scan, out)
    batch_widget._bridge.progress.connect(
        lambda stack, done, total, stage: batch_widget.cancel() if stack == "Ella_0_1" else None
    )
    assert run_and_wait(qtbot, batch_widget) == "cancelled"
    statuses = [batch_widget.status_of(f"Ella_0_{i}") for i in range(4)]
    assert statuses[0] == "done"
    assert statuses[1:] == ["cancelled"] * 3
    assert sorted(p.name for p in out.glob("*.jpg")) == ["Ella_0_0.jpg"]
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()]
    assert batch_widget.run_button.isEnabled() and not batch_widget.cancel_button.isEnabled()


def test_open_result_before_run_says_so(tmp_path, batch_widget):
    from napari_focus_stack.errors import FocusStackError

    make_scan(tmp_path / "scan", poses=1)
    batch_widget.set_folders(tmp_path / "scan", tmp_path / "out")
    with pytest.raises(FocusStackError, match="no result yet"):
        batch_widget.open_result("Ella_0_0")


def test_engine_form_sets_the_batch_options(batch_widget):
    form = batch_widget.engine
    form.radius.value = 5
    form.smoothing.value = 2.5
    form.method.value = "depthmap"
    form.align.value = "translation"
    form.reference.value = 1
    form.prefer.value = "far"
    engine = batch_widget.options().engine_kwargs()
    assert {k: engine[k] for k in form.option_names} == {
        "method": "depthmap", "radius": 5, "smoothing": 2.5, "scale_factor": 1, "align": "translation",
        "reference": 1, "device": "cpu", "prefer": "far",
    }


def test_the_plugin_does_not_import_the_cli():
    import ast

    import napari_focus_stack._napari as plugin

    for path in Path(plugin.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}"] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not [n for n in names if "cli" in n.split(".")], (path.name, names)


def test_a_user_error_in_the_batch_is_a_notification(tmp_path, qtbot, batch_widget, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_focus_stack._napari import batch_widget as module
    from napari_focus_stack.errors import OutputError

    def refuse(*args, **kwargs):
        raise OutputError("cannot write the report in out/: the disk is full. Free some space")

    monkeypatch.setattr(module, "run_batch", refuse)
    make_scan(tmp_path / "scan", poses=1)
    batch_widget.set_folders(tmp_path / "scan", tmp_path / "out")
    before = len(notification_manager.records)
    assert run_and_wait(qtbot, batch_widget) == "error"
    assert any("disk is full" in n.message for n in notification_manager.records[before:])
    assert "disk is full" in batch_widget.status_label.text()


def test_a_bug_in_the_batch_is_raised(tmp_path, qtbot, batch_widget, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_focus_stack._napari import batch_widget as module

    def bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(module, "run_batch", bug)
    make_scan(tmp_path / "scan", poses=1)
    batch_widget.set_folders(tmp_path / "scan", tmp_path / "out")
    before = len(notification_manager.records)
    with qtbot.capture_exceptions() as raised:
        assert run_and_wait(qtbot, batch_widget) == "error"
    assert any(isinstance(exc, ValueError) for _, exc, _ in raised), raised
    assert not any("Batch failed" in n.message for n in notification_manager.records[before:])
    assert "unexpected error" in batch_widget.status_label.text()


def test_manifest_registers_the_widget():
    import yaml

    manifest = Path(__file__).resolve().parents[2] / "napari.yaml"
    names = [c["python_name"] for c in yaml.safe_load(manifest.read_text())["contributions"]["commands"]]
    assert "napari_focus_stack._napari.batch_widget:BatchWidget" in names


# ------------------------------------------------------------- microscope files


@pytest.fixture
def positions(tmp_path):
    """A folder of three calibrated microscope files (T 3, C 2, Z 9), as a microscope writes them."""
    from hyperstacks import write_imagej
    from napari_focus_stack.synthetic import make_hyperstack

    folder = tmp_path / "positions"
    folder.mkdir()
    for k in range(3):
        hyper = make_hyperstack("patches", shape=(40, 48), n_z=9, n_t=3, n_c=2, seed=k)
        write_imagej(folder / f"pos{k}.tif", hyper.data, "TCZYX")
    return folder


def test_the_widget_is_one_batch_for_photos_and_microscope_files(viewer):
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "napari.yaml").read_text())
    (entry,) = [w for w in manifest["contributions"]["widgets"] if w["command"].endswith("batch_widget")]
    assert entry["display_name"] == "Batch"
    _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Batch")
    assert isinstance(widget, BatchWidget)


def test_microscope_files_are_counted_honestly_and_written_next_to_the_data(viewer, qtbot, batch_widget, positions):
    before = sorted(p.name for p in positions.iterdir())
    batch_widget.set_folders(positions)
    out = positions.parent / "positions-stacked"
    assert batch_widget.output_folder() == str(out)  # next to the data, not inside it
    table = batch_widget.table
    assert table.rowCount() == 3
    assert table.item(0, 1).text() == "9 × 3"  # 9 z planes, 3 time points: not "1" file
    assert table.item(0, 1).toolTip() == "pos0.tif: 9 z planes, 3 time points, 2 channels"
    assert batch_widget.depth_check.isChecked()  # microscope data: the height map is wanted
    assert run_and_wait(qtbot, batch_widget, timeout=180000) == "done"
    assert sorted(p.name for p in positions.iterdir()) == before
    assert (out / "pos1.tif").is_file() and (out / "pos1_depth.tif").is_file()
    layers = batch_widget.open_result("pos1")  # calibrated, through the plugin's reader
    assert [layer.name for layer in layers] == ["pos1 channel 0", "pos1 channel 1", "pos1 depth"]
    for layer in layers:
        assert layer.data.shape == (3, 1, 40, 48)
        assert tuple(layer.scale) == pytest.approx((1.0, 4.5, 0.1, 0.1))  # 9 planes of 0.5 µm in one
        assert str(layer.units[-1]) == "micrometer"
    assert [layer.colormap.name for layer in layers] == ["red", "green", "turbo"]
    assert not layers[2].visible


def test_a_user_choice_of_depth_maps_is_kept(batch_widget, positions):
    batch_widget.depth_check.click()
    batch_widget.depth_check.click()  # ticked and unticked by the user...
    batch_widget.set_folders(positions)
    assert not batch_widget.depth_check.isChecked()  # ... stays unticked for microscope data


def test_the_table_and_device_note_fit_a_normal_dock(viewer, qtbot, positions):
    viewer.window._qt_window.resize(1280, 800)
    viewer.window._qt_window.show()
    _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack", "Batch")
    widget.set_folders(positions)
    qtbot.wait(200)
    table = widget.table
    rows = table.viewport().height() / table.rowHeight(0)
    assert rows >= 5, f"only {rows:.1f} rows of the table are visible"
    height = viewer.window._qt_window.height()
    widget.engine_toggle.click()  # the engine options unfolded: they scroll, the table keeps its rows
    qtbot.wait(200)
    assert table.viewport().height() / table.rowHeight(0) >= 5
    assert viewer.window._qt_window.height() == height  # the window did not grow to fit them
    note = widget.engine.device_status.native  # and the device note is not clipped
    assert note.isVisible() and note.height() >= note.heightForWidth(note.width())
