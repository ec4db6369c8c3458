"""The alignment table of the Focus stack widget: one row per frame of the engine's report."""
from __future__ import annotations

import math
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from ..result import StackReport

__all__ = ["AlignmentTable", "COLUMNS"]

COLUMNS = ("frame", "quality", "scale", "rot °", "dx px", "dy px", "status")


class AlignmentTable(QTableWidget):
    """Each frame's alignment quality, scale, rotation, shift and status (reference, ok, excluded)."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # long names are elided, not scrolled
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setToolTip(
            "Alignment of each frame to the reference: quality is the correlation after alignment, "
            "scale the focus breathing, rot the rotation in degrees, dx/dy the shift of the centre in pixels"
        )

    def show_report(self, report: StackReport) -> None:
        """Fill the table from a :class:`~napari_focus_stack.StackReport`."""
        frames = report.frames
        self.setRowCount(len(frames))
        for row, f in enumerate(frames):
            if f.excluded:
                status = "excluded"
            elif f.index == report.reference:
                status = "reference"
            else:
                status = "ok"
            values = (
                f.name,
                _fmt(f.quality, "{:.2f}"),
                _fmt(f.scale, "{:.4f}"),
                _fmt(f.rotation_deg, "{:+.2f}"),
                _fmt(f.shift_x, "{:+.1f}"),
                _fmt(f.shift_y, "{:+.1f}"),
                status,
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if f.excluded:
                    item.setToolTip(f"excluded: {f.reason or 'alignment failed'}")
                if 0 < col < len(values) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, col, item)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = spec.format(value)
    if text[0] == "-" and not text.strip("-+0."):  # "-0.00": rounds to zero
        text = ("+" if "+" in spec else "") + text[1:]
    return text
