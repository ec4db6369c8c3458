"""The input chooser of the Focus stack widget: a stack layer, or several selected 2-D layers.

Stack layers are image layers with a z axis: any layer with a slider
(``(Z, Y, X)``, ``(T, Z, Y, X)``, ``(Z, Y, X, RGB)``...) of two planes or
more. :class:`ZAxisPicker` says which slider is z (the one labelled ``"z"``,
else the user's choice); layers that cannot be stacked are listed with the
reason (:meth:`InputPicker.why_not`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QComboBox

from . import layer_metadata as md
from .geometry import default_z_axis, unstackable_reason, z_axis_candidates
from .layers import layer_shape

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["SELECTED", "InputPicker", "ZAxisPicker"]

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
            "An image layer with a z axis ((Z, Y, X), (T, Z, Y, X), RGB...), "
            "or several 2-D layers selected in the layer list"
        )
        self.refresh()
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            event.connect(self.refresh)
        viewer.layers.selection.events.changed.connect(self.refresh)

    def stack_layers(self) -> list[Image]:
        """Image layers with a z axis of at least two planes (results of this plugin aside)."""
        return [layer for layer, why in self._image_layers() if why is None]

    def why_not(self) -> list[tuple[str, str]]:
        """``(layer name, reason)`` for every image layer that is not offered as a stack."""
        return [(layer.name, why) for layer, why in self._image_layers() if why is not None]

    def _image_layers(self) -> list[tuple[Image, str | None]]:
        from napari.layers import Image

        out = []
        for layer in self.viewer.layers:
            if not isinstance(layer, Image) or layer.metadata.get(md.ROLE) is not None:
                continue
            if layer.multiscale:
                why = "a multiscale (pyramid) layer: open its full-resolution data"
            else:
                why = unstackable_reason(layer_shape(layer), layer.axis_labels)
            out.append((layer, why))
        return out

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

    def current_layer(self) -> Image | None:
        """The chosen stack layer (None without one, or for selected 2-D layers)."""
        entry = self.currentData()
        if entry is None or entry == SELECTED or entry not in self.viewer.layers:
            return None
        return self.viewer.layers[entry]

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


class ZAxisPicker(QComboBox):
    """Which slider of the input layer is its z (focus) axis.

    Lists the layer's sliders with their labels and lengths; starts at the
    one labelled ``"z"``, else at one with a length unit or a scale, else at
    the longest (:func:`.geometry.default_z_axis`). Disabled when there is
    nothing to choose (a ``(Z, Y, X)`` layer).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("The slider along which the frames were focused (labelled z, else pick it)")
        self._layer: str | None = None  # by name: napari hands plugins a new proxy at every access

    def set_layer(self, layer: Image | None) -> None:
        """Offer the sliders of `layer`, keeping the choice while the layer stays the same."""
        same = layer is not None and layer.name == self._layer
        keep = self.axis() if same else None
        self._layer = None if layer is None else layer.name
        self.blockSignals(True)
        self.clear()
        if layer is not None:
            shape = layer_shape(layer)
            labels = tuple(layer.axis_labels)
            for k in z_axis_candidates(len(shape)):
                self.addItem(f"{labels[k]} ({shape[k]} planes)", k)
            default = default_z_axis(shape, labels, tuple(layer.scale), tuple(layer.units))
            index = self.findData(keep if keep is not None else default)
            self.setCurrentIndex(max(index, 0))
        self.setEnabled(self.count() > 1)
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def axis(self) -> int | None:
        """The chosen z axis of the layer (None without a layer)."""
        return self.currentData()

    def choose(self, axis: int) -> None:
        """Pick the z axis by index; ValueError when the layer has no such slider."""
        index = self.findData(axis)
        if index < 0:
            raise ValueError(f"axis {axis} is not a slider of the input layer")
        self.setCurrentIndex(index)
