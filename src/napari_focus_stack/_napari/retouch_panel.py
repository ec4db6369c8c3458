"""The Focus stack widget's retouch panel: paint which frame the fused image shows, live.

After a run on one stack of photos, **Retouch** adds a Labels layer
``<input> retouch`` over the fused image (same size, scale and place) and
selects it for painting (see :mod:`napari_focus_stack.retouch`):

- label ``k`` (the **Frame** box, or napari's label control) takes frame
  ``k`` of the input, counted from 1, aligned and exposure-corrected,
  blended in at the stroke's edges; the fused image, the depth map (``k -
  1`` there) and the confidence map (1.0, set by hand) are updated in
  place, stroke by stroke and during a stroke;
- napari's eraser (label 0) gives the automatic result back; **Erase all**
  clears the whole mask; undo and redo work as for any Labels layer;
- **Paint the sharpest frame** turns the brush into one that paints, at
  each pixel, the frame the depth map found sharpest there (fixing a
  region painted with the wrong frame, or cleaning up around it);
- **Show the frame under the cursor** moves the input's z slider, as the
  cursor moves over the image, to the frame the result shows there
  (painted, or the sharpest) and names it in the status bar.

The mask is saved with File > Save Selected Layers (a ``.tif`` marked as a
retouch mask, with the input's name) and opened again with File > Open: the
panel takes up an opened mask whose input is the current result's, and a
rerun of the same input keeps the painting and applies it to the new result.

Updates run on a worker thread, one at a time: paint events are gathered
for :data:`DEBOUNCE_MS`, then the bounding box of what changed (plus the
blend's reach) is recomputed from the automatic result and the cached
frames, and written into the layers on the GUI thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout

from ..errors import FocusStackError
from ..retouch import Retouch, RetouchPatch
from . import layer_metadata as md
from ._notify import notify
from .background import start_worker
from .layers import data_index, move_z_slider

if TYPE_CHECKING:
    import napari

    from ..io import FrameSource
    from ..result import StackResult

__all__ = ["DEBOUNCE_MS", "LABEL_OPACITY", "MAPS_DELAY_MS", "RetouchPanel"]

#: Paint events closer together than this (ms) are handled as one update.
DEBOUNCE_MS = 30
#: The mask layer's opacity: the retouched image shows through (napari's contour mode would too,
#: but redraws a 12 MP mask's outlines in 0.4 s on every undo).
LABEL_OPACITY = 0.4
#: The depth and confidence layers (and the fused layer's thumbnail) are redrawn this long (ms)
#: after the last update: redrawing a 12 MP layer takes napari 0.1-0.2 s of the GUI thread
#: with software OpenGL, and the fused image is what the painting is judged on.
MAPS_DELAY_MS = 400

Region = tuple[int, int, int, int]


class RetouchPanel(QGroupBox):
    """The retouch controls of the Focus stack widget.

    Attributes
    ----------
    updated : Signal()
        Emitted on the GUI thread after an update is shown in the layers.
    retouch : Retouch or None
        The result being retouched.
    layer : napari.layers.Labels or None
        The retouch mask's layer.
    """

    updated = Signal()

    def __init__(self, viewer: napari.Viewer):
        super().__init__("Retouch")
        self.viewer = viewer
        self.key: str | None = None
        self.retouch: Retouch | None = None
        self.layer = None
        self._result: StackResult | None = None
        self._source: FrameSource | None = None
        self._layers: dict[str, Any] = {}
        self._worker = None
        self._start_worker = None
        self._starting = False
        self._regions: list[Region] = []
        self._full = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start_update)
        self._maps_timer = QTimer(self)
        self._maps_timer.setSingleShot(True)
        self._maps_timer.timeout.connect(self._redraw_maps)
        self._build()
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)
        self._show_state()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        self.start_button = QPushButton("Retouch")
        self.start_button.setToolTip(
            "Add a Labels layer over the fused image: painting label k there takes frame k (from 1), "
            "label 0 (the eraser) the automatic result"
        )
        self.start_button.clicked.connect(lambda: self.start())
        self.erase_button = QPushButton("Erase all")
        self.erase_button.setToolTip("Clear the mask: the automatic result everywhere")
        self.erase_button.clicked.connect(self.erase_all)
        self.frame_spin = QSpinBox()
        self.frame_spin.setRange(1, 1)
        self.frame_spin.setToolTip("The frame the brush paints (from 1, in input order)")
        self.frame_spin.valueChanged.connect(self._on_frame_chosen)
        self.frame_name = QLabel()
        self.sharpest_check = QCheckBox("Paint the sharpest frame")
        self.sharpest_check.setToolTip("The brush paints, at each pixel, the frame the depth map found sharpest there")
        self.sharpest_check.toggled.connect(self._on_sharpest_toggled)
        self.follow_check = QCheckBox("Show the frame under the cursor")
        self.follow_check.setToolTip("Move the input's z slider to the frame the result shows under the cursor")
        self.follow_check.toggled.connect(self._on_follow_toggled)
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.erase_button)
        grid = QGridLayout()
        grid.addWidget(QLabel("Frame"), 0, 0)
        grid.addWidget(self.frame_spin, 0, 1)
        grid.addWidget(self.frame_name, 0, 2)
        grid.setColumnStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(grid)
        layout.addWidget(self.sharpest_check)
        layout.addWidget(self.follow_check)
        layout.addWidget(self.status)

    def _show_state(self) -> None:
        ready = self._result is not None
        active = self.retouch is not None and self.layer is not None
        self.start_button.setEnabled(ready and not active and not self._starting)
        for w in (self.erase_button, self.frame_spin, self.sharpest_check, self.follow_check):
            w.setEnabled(active)
        if not ready:
            self.status.setText("Run the focus stack on a stack of photos first.")

    @property
    def busy(self) -> bool:
        """True while an update is waiting or running."""
        return (self._starting or self._worker is not None or self._timer.isActive() or self._maps_timer.isActive()
                or bool(self._regions) or self._full)

    # ------------------------------------------------------------ sessions
    def attach(self, key: str, result: StackResult, source: FrameSource, layers: dict[str, Any]) -> None:
        """Offer retouching of a new result (called by the widget after a photo run).

        Parameters
        ----------
        key : str
            The input's name.
        result : StackResult
            What the layers show; retouching changes its arrays in place.
        source : FrameSource
            The frames that were fused.
        layers : dict
            Role ("fused", "depth", "confidence") -> the result's layer.
        """
        same = key == self.key and self.layer is not None and self.layer in self.viewer.layers
        keep = self.layer if same and tuple(self.layer.data.shape) == tuple(result.image.shape[:2]) else None
        if same and keep is None:
            notify(f"{key}: the fused image changed size; the retouch mask no longer fits and was left alone.")
        self.detach()
        self.key, self._result, self._source, self._layers = key, result, source, dict(layers)
        n = len(source)
        self.frame_spin.setRange(1, max(n, 1))
        self.frame_spin.setValue(min(max(result.report.reference + 1, 1), n))
        self.status.setText("Retouch: paint a frame over the fused image where the automatic choice went wrong.")
        layer = keep or self._find_mask_layer()
        if layer is not None:
            self.start(layer)  # a rerun, or a mask opened before: apply it to this result
        self._show_state()

    def detach(self) -> None:
        """Stop retouching (an N-D result, or a new run): the mask layer stays as it is."""
        self._timer.stop()
        if self._maps_timer.isActive():
            self._maps_timer.stop()
            self._redraw_maps()
        self._regions, self._full = [], False
        if self.layer is not None:
            self._disconnect(self.layer)
        self.sharpest_check.setChecked(False)
        self.follow_check.setChecked(False)
        self.retouch, self.layer = None, None
        self.key, self._result, self._source, self._layers = None, None, None, {}
        self._show_state()

    def start(self, layer: Any = None) -> None:
        """Start retouching: build the retouch state on a worker thread, then add (or take up) the mask layer."""
        if self._result is None or self._starting:
            return
        if self.retouch is not None:  # the layer was removed: a new one over the same session
            self._started(self.retouch, self._result, layer)
            return
        self._starting = True
        self._show_state()
        self.status.setText("Preparing the retouch...")
        result, source = self._result, self._source
        self._start_worker = start_worker(
            lambda: Retouch(result, source, in_place=True),
            returned=lambda retouch: self._started(retouch, result, layer), finished=self._start_finished,
        )

    def _start_finished(self) -> None:
        self._starting = False
        self._start_worker = None
        self._show_state()

    def _started(self, retouch: Retouch, result: StackResult, layer: Any) -> None:
        if result is not self._result:  # a newer run came meanwhile
            return
        self._starting = False
        self.retouch = retouch
        fused = self._layers.get("fused")
        if fused is not None and fused.data is not retouch.image:
            fused.data = retouch.image
        if layer is None or layer not in self.viewer.layers:
            layer = self._find_mask_layer() or self._add_mask_layer()
        self._use_layer(layer)
        painted = bool(np.asarray(layer.data).any())
        if painted:
            self._full = True
            self._timer.start(0)
        self.status.setText(
            "Paint label k to take frame k (from 1) there; the eraser gives the automatic result back."
            + (" Applying the mask..." if painted else "")
        )
        self._show_state()

    def _find_mask_layer(self) -> Any:
        from napari.layers import Labels

        shape = None if self._result is None else tuple(self._result.image.shape[:2])
        for layer in self.viewer.layers:
            meta = layer.metadata
            if (isinstance(layer, Labels) and meta.get(md.ROLE) == "retouch" and meta.get(md.INPUT) == self.key
                    and tuple(layer.data.shape) == shape):
                return layer
        return None

    def _add_mask_layer(self) -> Any:
        from napari.layers import Labels

        fused = self._layers["fused"]
        n = len(self._source)
        mask = np.zeros(self._result.image.shape[:2], np.uint8 if n <= 255 else np.uint16)
        layer = Labels(
            mask, name=f"{self.key} retouch", scale=fused.scale[-2:], translate=fused.translate[-2:],
            units=fused.units[-2:], axis_labels=fused.axis_labels[-2:], opacity=LABEL_OPACITY,
            metadata=self._metadata(),
        )
        self.viewer.layers.append(layer)
        return layer

    def _metadata(self) -> dict:
        source = self._source
        return {md.INPUT: self.key, md.ROLE: "retouch", md.NAMES: list(source.names),
                md.PATHS: [str(p) for p in source.paths if p is not None]}

    def _use_layer(self, layer: Any) -> None:
        self.layer = layer
        layer.metadata = {**layer.metadata, **self._metadata()}
        names = ["automatic"] + list(self._source.names)
        layer.features = {"index": np.arange(len(names)), "frame": names}
        layer.events.paint.connect(self._on_paint)
        layer.events.labels_update.connect(self._on_labels_update)
        layer.events.set_data.connect(self._on_set_data)
        layer.events.selected_label.connect(self._on_selected_label)
        layer.events.mode.connect(self._on_mode)
        layer.selected_label = self.frame_spin.value()
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        self._on_frame_chosen(self.frame_spin.value())

    def _disconnect(self, layer: Any) -> None:
        for event, slot in ((layer.events.paint, self._on_paint), (layer.events.labels_update, self._on_labels_update),
                            (layer.events.set_data, self._on_set_data),
                            (layer.events.selected_label, self._on_selected_label),
                            (layer.events.mode, self._on_mode)):
            event.disconnect(slot)
        if self._sharpest_drag in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._sharpest_drag)

    def _on_inserted(self, event: Any) -> None:
        """A retouch mask opened (File > Open) for the result shown: take it up."""
        from napari.layers import Labels

        layer = event.value
        meta = getattr(layer, "metadata", {}) or {}
        if (not isinstance(layer, Labels) or meta.get(md.ROLE) != "retouch" or layer is self.layer
                or self._result is None or meta.get(md.INPUT) != self.key):
            return
        if tuple(layer.data.shape) != tuple(self._result.image.shape[:2]):
            notify(f"'{layer.name}' is {layer.data.shape[1]} x {layer.data.shape[0]} pixels, the fused image "
                   f"{self._result.image.shape[1]} x {self._result.image.shape[0]}: it is not used.")
            return
        if self.layer is not None:
            old = self.layer
            self._disconnect(old)
            self.layer = None
            self.viewer.layers.remove(old)
        if self.retouch is None:
            self.start(layer)
        else:
            self._use_layer(layer)
            self._full = True
            self._timer.start(0)

    def _on_removed(self, event: Any) -> None:
        if event.value is self.layer:
            self.sharpest_check.setChecked(False)
            self.follow_check.setChecked(False)
            self._disconnect(self.layer)
            self.layer = None
            self.status.setText("The retouch layer was removed: the automatic result again.")
            self._full = True  # no mask: everything back to automatic
            self._schedule()
            self._show_state()

    # ------------------------------------------------------------ controls
    def _on_frame_chosen(self, k: int) -> None:
        if self._source is None:
            return
        names = list(self._source.names)
        frame = self._result.report.frames[k - 1] if self._result is not None else None
        excluded = " (excluded: cannot be painted)" if frame is not None and frame.excluded else ""
        self.frame_name.setText(f"{names[k - 1]}{excluded}" if 0 < k <= len(names) else "")
        if self.layer is not None and self.layer.selected_label != k:
            self.sharpest_check.setChecked(False)
            self.layer.selected_label = k

    def _on_selected_label(self, _event: Any = None) -> None:
        k = int(self.layer.selected_label)
        n = len(self._source)
        if 1 <= k <= n:
            if self.frame_spin.value() != k:
                self.frame_spin.setValue(k)
        elif k > n:
            self.status.setText(f"Label {k} is no frame: the stack has {n} (labels 1-{n}; 0 is the automatic result).")

    def erase_all(self) -> None:
        """Clear the mask (undoable): the automatic result everywhere."""
        layer = self.layer
        if layer is None:
            return
        painted = np.nonzero(np.asarray(layer.data))
        if painted[0].size:
            layer.data_setitem(painted, 0)

    def _on_sharpest_toggled(self, on: bool) -> None:
        layer = self.layer
        if layer is None:
            return
        if on:
            layer.mode = "pan_zoom"
            layer.mouse_pan = False  # a drag paints
            if self._sharpest_drag not in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.append(self._sharpest_drag)
            self.viewer.layers.selection.active = layer
        else:
            if self._sharpest_drag in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._sharpest_drag)
            if layer.mode == "pan_zoom":
                layer.mode = "paint"

    def _on_mode(self, event: Any) -> None:
        if self.sharpest_check.isChecked() and str(getattr(event, "mode", "")) != "pan_zoom":
            self.sharpest_check.setChecked(False)  # the user picked another tool

    def _sharpest_drag(self, layer: Any, event: Any):
        """Drag callback of the sharpest-frame brush: one undo step per stroke."""
        if getattr(event, "button", 1) != 1:
            return
        with layer.block_history():
            self.paint_sharpest(event.position)
            yield
            while event.type == "mouse_move":
                self.paint_sharpest(event.position)
                yield

    def paint_sharpest(self, world_position: Any) -> int:
        """Paint one brush dab at ``world_position``, each pixel with the automatically sharpest frame there.

        Returns the number of pixels changed (undone with the stroke they belong to).
        """
        layer, retouch = self.layer, self.retouch
        if layer is None or retouch is None:
            return 0
        cy, cx = (float(v) for v in layer.world_to_data(tuple(world_position)[-layer.ndim:])[-2:])
        r = float(np.floor(layer.brush_size / 2) + 0.5)
        h, w = retouch.shape
        y0, y1 = max(0, int(np.floor(cy - r))), min(h, int(np.ceil(cy + r)) + 1)
        x0, x1 = max(0, int(np.floor(cx - r))), min(w, int(np.ceil(cx + r)) + 1)
        if y1 <= y0 or x1 <= x0:
            return 0
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disk = (yy - np.round(cy)) ** 2 + (xx - np.round(cx)) ** 2 <= r * r
        sharpest = retouch.sharpest_labels((y0, y1, x0, x1))[disk]
        indices = (yy[disk], xx[disk])
        changed = int((np.asarray(layer.data)[indices] != sharpest).sum())
        layer.data_setitem(indices, sharpest.astype(layer.data.dtype))
        return changed

    def _on_follow_toggled(self, on: bool) -> None:
        callbacks = self.viewer.mouse_move_callbacks
        if on and self._on_mouse_move not in callbacks:
            callbacks.append(self._on_mouse_move)
        elif not on and self._on_mouse_move in callbacks:
            callbacks.remove(self._on_mouse_move)

    def _on_mouse_move(self, _viewer: Any, event: Any) -> None:
        self.show_frame_under(event.position)

    def show_frame_under(self, world_position: Any) -> int | None:
        """Move the input's z slider to the frame the result shows at ``world_position``; that frame (from 0)."""
        retouch, fused = self.retouch, self._layers.get("fused")
        if retouch is None or fused is None:
            return None
        index = data_index(fused, world_position)
        if index is None:
            return None
        y, x = index[-2:]
        z = retouch.frame_at(y, x)
        if z is None:
            return None
        move_z_slider(self.viewer, self.key, fused.metadata.get(md.Z_AXIS, 0), z, world_position)
        how = "painted" if retouch.mask[y, x] else "the sharpest"
        self.viewer.status = f"({y}, {x}): frame {z + 1} ({self._source.names[z]}), {how}"
        return z

    # ------------------------------------------------------------- updates
    def _on_paint(self, event: Any) -> None:
        for atom in event.value or ():
            region = _atom_region(atom)
            if region is not None:
                self._regions.append(region)
        self._schedule()

    def _on_labels_update(self, event: Any) -> None:
        offset, data = getattr(event, "offset", None), getattr(event, "data", None)
        if offset is None or data is None or len(offset) < 2:
            self._full = True
        else:
            y, x = (int(v) for v in offset[-2:])
            self._regions.append((y, y + int(data.shape[0]), x, x + int(data.shape[1])))
        self._schedule()

    def _on_set_data(self, _event: Any = None) -> None:
        # undo, redo, a new array: no region given; the mask is compared with the one applied
        self._full = True
        self._schedule()

    def _schedule(self) -> None:
        if self.retouch is not None and not self._timer.isActive() and self._worker is None:
            self._timer.start(DEBOUNCE_MS)

    def _start_update(self) -> None:
        if self.retouch is None or self._worker is not None:
            return
        if self._full:
            region = None
        elif self._regions:
            regions = np.array(self._regions)
            region = (int(regions[:, 0].min()), int(regions[:, 1].max()), int(regions[:, 2].min()),
                      int(regions[:, 3].max()))
        else:
            return
        self._regions, self._full = [], False
        retouch = self.retouch
        mask = self.layer.data if self.layer is not None else np.zeros(retouch.shape, np.uint8)
        self._worker = start_worker(
            _compute, retouch, mask, region,
            returned=lambda outcome: self._show_update(retouch, outcome), finished=self._update_finished,
        )

    def _show_update(self, retouch: Retouch, outcome: RetouchPatch | _Refused | None) -> None:
        if retouch is not self.retouch:
            return  # a newer result: this patch belongs to the old one
        if isinstance(outcome, _Refused):
            self.status.setText(f"Not applied: {outcome.message}")
            return
        if outcome is None:
            return
        retouch.apply(outcome)
        fused = self._layers.get("fused")
        if fused is not None and fused in self.viewer.layers:
            fused.refresh(thumbnail=False)
        self._maps_timer.start(MAPS_DELAY_MS)
        painted = {int(k) for k in np.flatnonzero(np.bincount(outcome.mask.ravel())) if k}
        if self.status.text().startswith(("Not applied", "Preparing", "Label")) or painted:
            self.status.setText("Retouched." if not painted else
                                "Showing frame " + ", ".join(str(k) for k in sorted(painted)) + " where painted.")

    def _redraw_maps(self) -> None:
        for role in ("depth", "confidence"):
            layer = self._layers.get(role)
            if layer is not None and layer in self.viewer.layers:
                layer.refresh()
        fused = self._layers.get("fused")
        if fused is not None and fused in self.viewer.layers:
            fused.refresh(data_displayed=False)  # its thumbnail

    def _update_finished(self) -> None:
        self._worker = None
        if self._full or self._regions:
            self._timer.start(0)
        self.updated.emit()

    def wait_until_idle(self, qtbot: Any, timeout: int = 10000) -> None:
        """For tests: process events until no update is waiting or running."""
        qtbot.waitUntil(lambda: not self.busy, timeout=timeout)


@dataclass(frozen=True)
class _Refused:
    """An update the engine refused (a label that is no frame...): the message to show.

    Not the exception itself: napari's worker raises an exception it is handed back.
    """

    message: str


def _compute(retouch: Retouch, mask: Any, region: Region | None) -> RetouchPatch | _Refused | None:
    """Worker-thread body: the patch of one update, or the user's error to show (a bug propagates)."""
    try:
        return retouch.compute(mask, region)
    except FocusStackError as exc:
        return _Refused(str(exc))


def _atom_region(atom: Any) -> Region | None:
    """The (y0, y1, x0, x1) a history atom of a Labels layer changed (napari's paint event)."""
    key = getattr(atom, "slice_key", None)
    if key is not None:
        ys, xs = key[-2], key[-1]
        return int(ys.start or 0), int(ys.stop), int(xs.start or 0), int(xs.stop)
    try:
        indices = atom[0]
        ys, xs = np.asarray(indices[-2]), np.asarray(indices[-1])
    except (TypeError, IndexError):
        return None
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
