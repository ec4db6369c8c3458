"""The input chooser of the Focus stack widget: a stack layer, or several selected 2-D layers."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QComboBox

from . import layer_metadata as md

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["InputPicker", "SELECTED"]

#: The entry that stands for the 2-D layers selected in the layer list.
SELECTED = "Selected 2D layers"


class InputPicker(QComboBox):
    """Combo box of the viewer's stack layers, kept up to date as layers come and go.

    An entry's data is the layer name, or :data:`SELECTED` when two or more
    2-D image layers are selected (their layer-list order, bottom to top, is
    the frame order). Result layers of this plugin are never offered.
    """

    def __init__(self, viewer: napari.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.setToolTip(
            "A stack layer (Z, Y, X) or (Z, Y, X, RGB), or several 2-D layers selected in the layer list"
        )
        self.refresh()
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            event.connect(self.refresh)
        viewer.layers.selection.events.changed.connect(self.refresh)

    def stack_layers(self) -> list[Image]:
        """Image layers that hold a stack of at least two frames."""
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and not layer.multiscale
            and layer.ndim == 3
            and layer.data.shape[0] >= 2
            and layer.metadata.get(md.ROLE) is None
        ]

    def selected_2d(self) -> list[Image]:
        """The selected 2-D image layers, bottom to top."""
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if layer in self.viewer.layers.selection
            and isinstance(layer, Image)
            and not layer.multiscale
            and layer.ndim == 2
        ]

    def refresh(self, *_: Any) -> None:
        """List the current candidates, keeping the choice (else the active layer, else the first)."""
        current = self.currentData()
        selected = len(self.selected_2d())
        self.blockSignals(True)
        self.clear()
        for layer in self.stack_layers():
            self.addItem(layer.name, layer.name)
        if selected >= 2:
            self.addItem(f"{SELECTED} ({selected})", SELECTED)
        keep = self.findData(current) if current is not None else -1
        if keep < 0:
            active = self.viewer.layers.selection.active
            keep = self.findData(active.name) if active is not None else -1
        if keep < 0 and self.count():
            keep = 0
        self.setCurrentIndex(keep)
        self.blockSignals(False)
        self.currentIndexChanged.emit(keep)  # the frame count may have changed

    def frame_count(self) -> int:
        """Frames of the chosen input (0 without one)."""
        entry = self.currentData()
        if entry is None:
            return 0
        if entry == SELECTED:
            return len(self.selected_2d())
        layer = self.viewer.layers[entry] if entry in self.viewer.layers else None
        return 0 if layer is None else int(layer.data.shape[0])

    def choose(self, name: str) -> None:
        """Choose the input by layer name (or :data:`SELECTED`).

        Raises
        ------
        ValueError
            `name` is not offered.
        """
        self.refresh()
        index = self.findData(name)
        if index < 0:
            raise ValueError(
                f"{name!r} is not a stack layer of this viewer (or fewer than two 2-D layers are selected)"
            )
        self.setCurrentIndex(index)
