"""The Batch widget's Watch: Run keeps watching until Cancel, the table grows as stacks are stacked."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from scans import openscan3_position, stacked  # noqa: E402


def test_watch_stacks_arriving_positions_until_cancel(tmp_path, viewer, qtbot, batch_widget):
    source, scan, out = tmp_path / "camera", tmp_path / "scan01", tmp_path / "out"
    for position in range(3):
        openscan3_position(source, position)
    scan.mkdir()
    batch_widget.watch_check.setChecked(True)
    batch_widget.set_folders(scan, out)
    assert batch_widget.table.rowCount() == 0 and batch_widget.run_button.isEnabled()  # nothing there yet

    def arrive(position):
        for frame in sorted(source.glob(f"scan01_{position:03d}_*")):
            shutil.copy(frame, scan / frame.name)

    with qtbot.waitSignal(batch_widget.run_finished, timeout=240000) as finished:
        batch_widget.run_button.click()
        assert batch_widget.cancel_button.isEnabled() and "Watching" in batch_widget.status_label.text()
        arrive(0)
        arrive(1)  # the first position is complete: its row appears once it is stacked
        qtbot.waitUntil(lambda: batch_widget.table.rowCount() == 1, timeout=120000)
        assert batch_widget.status_of("scan01_000") == "done" and stacked(out, 0).is_file()
        arrive(2)
        qtbot.waitUntil(lambda: batch_widget.table.rowCount() == 2, timeout=120000)
        assert batch_widget.status_of("scan01_001") == "done"
        batch_widget.cancel()  # the last position waits for its settle time: Cancel ends the watch
    assert finished.args == ["cancelled"]
    rows = batch_widget.table.rowCount()  # 3 only where the machine took longer than the settle time to get here
    assert rows == 2 or (rows == 3 and stacked(out, 2).is_file())
    assert batch_widget.table.item(1, 4).text() == "stacked_scan01_001.jpg"
    assert f"{rows} done" in batch_widget.status_label.text()
    batch_widget.table.cellDoubleClicked.emit(1, 0)  # a row added while watching opens like the others
    assert viewer.layers["scan01_001"].data.shape[:2] == (64, 80)
    assert batch_widget.run_button.isEnabled() and not batch_widget.cancel_button.isEnabled()
