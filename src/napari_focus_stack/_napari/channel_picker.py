"""Channels given as separate layers: which to fuse with the input, and which channel decides.

napari shows the channels of microscope data as one layer each (the
reader's and napari's ``channel_axis`` convention), each with its colormap
and blending. Fusing them one by one would give each channel its own
focus decision and alignment; fused together, all channels come from the
same frame at every pixel. This part of the Focus stack widget lists the
image layers that are channels of the same data as the input: read from the
same file (the reader's channel group; ticked), or, for layers that come
from no file (arrays, ``channel_axis``), of the same shape, dtype, scale,
translate and units; another file's layers of the same size are not
offered. It offers the deciding channel: one of them, or all of them, each
normalised by its intensity spread.

It stays hidden while no other layer fits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QListWidget, QListWidgetItem, QWidget

from . import layer_metadata as md
from .layers import layer_shape

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["ALL_CHANNELS", "ChannelPicker"]

#: The deciding-channel entry for "every channel, each normalised by its spread".
ALL_CHANNELS = "All channels (each normalised)"


class ChannelPicker(QWidget):
    """Tick the channel layers to fuse with the input, and pick the deciding channel.

    Attributes
    ----------
    list : QListWidget
        One checkable row per layer that can be fused with the input.
    deciding_combo : QComboBox
        :data:`ALL_CHANNELS`, then the fused layers by name.
    changed : Signal()
        Emitted when the ticked layers change.
    """

    changed = Signal()

    def __init__(self, viewer: napari.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        # layers are compared by name: napari hands plugins proxies, a new one at every access
        self._input: Image | None = None
        self.list = QListWidget()
        self.list.setToolTip(
            "Channel layers fused with the input: one alignment and one focus decision for all of them"
        )
        self.list.setMaximumHeight(4 * self.list.fontMetrics().lineSpacing() + 12)
        self.list.itemChanged.connect(self._on_ticked)
        self.deciding_combo = QComboBox()
        self.deciding_combo.setToolTip(
            "The channel whose focus decides for all channels; by default all channels together, "
            "each divided by its intensity spread so that a bright channel does not outvote a dim one"
        )
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Fuse with", self.list)
        form.addRow("Deciding channel", self.deciding_combo)
        self.setVisible(False)

    def candidates(self, layer: Image | None) -> list[Image]:
        """Other channels of `layer`'s data: its file's (channel group), else same-shaped, same-placed arrays.

        Never RGB layers, pyramids or results; always the same shape and dtype.
        """
        from napari.layers import Image

        if layer is None or layer.rgb:
            return []
        shape = layer_shape(layer)
        group = layer.metadata.get(md.CHANNEL_GROUP)

        def sibling(other: Image) -> bool:
            if group is not None or other.metadata.get(md.CHANNEL_GROUP) is not None:
                return other.metadata.get(md.CHANNEL_GROUP) == group
            return (np.allclose(other.scale, layer.scale) and np.allclose(other.translate, layer.translate)
                    and [str(u) for u in other.units] == [str(u) for u in layer.units])

        return [
            other
            for other in self.viewer.layers
            if isinstance(other, Image)
            and other.name != layer.name
            and not other.rgb
            and not other.multiscale
            and other.metadata.get(md.ROLE) is None
            and layer_shape(other) == shape
            and other.dtype == layer.dtype
            and sibling(other)
        ]

    def set_input(self, layer: Image | None) -> None:
        """List the layers that fit `layer`; ticks kept while the input stays the same.

        A new input, and a layer new to the list, starts ticked when it comes
        from the same file as the input (same :data:`~layer_metadata.CHANNEL_GROUP`).
        """
        same = layer is not None and self._input is not None and layer.name == self._input.name
        known = {item.text() for item in self._items()}
        ticked = {item.text() for item in self._items() if item.checkState() == Qt.CheckState.Checked}
        deciding = self.deciding_combo.currentText()
        self._input = layer
        group = None if layer is None else layer.metadata.get(md.CHANNEL_GROUP)
        self.list.blockSignals(True)
        self.list.clear()
        for other in self.candidates(layer):
            item = QListWidgetItem(other.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            sibling = group is not None and other.metadata.get(md.CHANNEL_GROUP) == group
            tick = other.name in ticked if same and other.name in known else sibling
            item.setCheckState(Qt.CheckState.Checked if tick else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.setVisible(self.list.count() > 0)
        self._fill_deciding(deciding if same else None)

    def tick(self, names: list[str]) -> None:
        """Tick exactly the layers named `names` (the others are unticked)."""
        missing = set(names) - {item.text() for item in self._items()}
        if missing:
            raise ValueError(f"cannot be fused with the input (other shape or dtype, or absent): {sorted(missing)}")
        for item in self._items():
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def channel_layers(self) -> list[Image]:
        """The input and the ticked layers, in layer-list order (bottom to top); [] without an input."""
        if self._input is None:
            return []
        names = {item.text() for item in self._items() if item.checkState() == Qt.CheckState.Checked}
        names.add(self._input.name)
        return [layer for layer in self.viewer.layers if layer.name in names]

    def deciding(self) -> int | None:
        """Index (in :meth:`channel_layers`) of the deciding channel; None for all channels."""
        name = self.deciding_combo.currentText()
        names = [layer.name for layer in self.channel_layers()]
        return names.index(name) if name in names else None

    def choose_deciding(self, name: str | None) -> None:
        """Pick the deciding channel by layer name (None: all channels)."""
        index = self.deciding_combo.findText(ALL_CHANNELS if name is None else name)
        if index < 0:
            raise ValueError(f"{name!r} is not one of the fused channel layers")
        self.deciding_combo.setCurrentIndex(index)

    def _items(self) -> list[QListWidgetItem]:
        return [self.list.item(k) for k in range(self.list.count())]

    def _on_ticked(self, *_) -> None:
        self._fill_deciding(self.deciding_combo.currentText())
        self.changed.emit()

    def _fill_deciding(self, keep: str | None) -> None:
        layers = self.channel_layers()
        self.deciding_combo.blockSignals(True)
        self.deciding_combo.clear()
        self.deciding_combo.addItem(ALL_CHANNELS)
        if len(layers) > 1:
            for layer in layers:
                self.deciding_combo.addItem(layer.name)
        index = self.deciding_combo.findText(keep) if keep else -1
        self.deciding_combo.setCurrentIndex(max(index, 0))
        self.deciding_combo.setEnabled(len(layers) > 1)
        self.deciding_combo.blockSignals(False)
