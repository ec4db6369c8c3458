"""The focus-stack dock widget.

The widget turns layers into a :class:`~napari_focus_stack.io.FrameSource`,
runs :meth:`FocusStacker.stack` in a napari worker thread and turns the
:class:`StackResult` into layers:

``<input> fused``
    The all-in-focus image, dtype of the input.
``<input> depth``
    Fractional index of the sharpest frame, turbo colormap, contrast limits
    ``0..frames-1``: its colours match the positions of the dims slider.
    Clicking a pixel of it (or of the fused image) moves the slider to the
    frame that was sharpest there.
``<input> confidence``
    0..1, hidden at first.
``<input> aligned``
    Optional: every frame warped into reference geometry, hidden at first.

Running again on the same input replaces these layers. The alignment report
(per-frame quality, scale, rotation, shift, excluded frames) is shown in the
table and kept in ``layer.metadata["focus_stack_report"]``.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._backend import gpu_status
from ..errors import FocusStackError
from ..io import FrameSource
from ..options import option
from ..stacker import Cancelled, FocusStacker, StackResult
from ._notify import defuse_notification_timers, notify

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["FocusStackWidget", "ROLES"]

#: Result layer roles, kept in ``layer.metadata["focus_stack_role"]``.
ROLES = ("fused", "depth", "confidence", "aligned")
SELECTED = "Selected 2D layers"
_ROLE = "focus_stack_role"
_INPUT = "focus_stack_input"
_REPORT = "focus_stack_report"
# The controls start at the engine's defaults, so the widget and the library agree.
_DEFAULTS = {
    name: p.default for name, p in inspect.signature(FocusStacker.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}
# Shortest time between two progress-bar updates.
_PROGRESS_MS = 200
# Pause between the GUI steps that add result layers, so that paints and timers run in between.
_STEP_PAUSE_MS = 10
_COLUMNS = ("frame", "quality", "scale", "rot °", "dx px", "dy px", "status")


@dataclass
class _Job:
    """Everything a run needs, gathered on the main thread."""

    source: FrameSource
    key: str  # names the result layers: "<key> fused"...
    layer: Any  # the input stack layer, or None for selected 2-D layers
    names: list[str]
    scale: tuple[float, float]
    translate: tuple[float, float]
    contrast_limits: list[float] | None
    aligned: bool


@dataclass
class _Outcome:
    """What a run produced: a result, or the error to show."""

    result: StackResult | None = None
    aligned: np.ndarray | None = None
    error: Exception | None = None


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(int, int, str)


class FocusStackWidget(QWidget):
    """Dock widget that focus-stacks a stack layer or several 2-D layers.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are stacked and receive the results.

    Attributes
    ----------
    run_finished : Signal(str)
        Emitted after each run with ``"done"``, ``"cancelled"`` or ``"error"``.
    """

    run_finished = Signal(str)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._cancel = threading.Event()
        cancel = self._cancel  # not self: the slot must outlive the widget
        self.destroyed.connect(lambda *_: cancel.set())  # dock closed mid-run: stop the worker
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._progress = (0, "")
        self._progress_shown = 0.0
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.timeout.connect(self._show_progress)
        self._total = 1
        self._job: _Job | None = None
        self._status = "error"
        self._steps: list = []
        self._gpu_ok, self._gpu_why = gpu_status()
        self._build()
        self._refresh_inputs()
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                      self.viewer.layers.events.moved):
            event.connect(self._refresh_inputs)
        self.viewer.layers.selection.events.changed.connect(self._refresh_inputs)

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        form = QFormLayout()
        self.input_combo = QComboBox()
        self.input_combo.setToolTip(
            "A stack layer (Z, Y, X) or (Z, Y, X, RGB), or several 2-D layers selected in the layer list"
        )
        self.input_combo.currentIndexChanged.connect(self._update_reference_range)
        form.addRow("Input", self.input_combo)

        self.method_combo = QComboBox()
        self.method_combo.addItems(["pyramid", "depthmap"])
        self.method_combo.setCurrentText(_DEFAULTS["method"])
        self.method_combo.setToolTip(
            "pyramid: Laplacian-pyramid fusion (best detail); depthmap: each pixel from its sharpest frame"
        )
        form.addRow("Method", self.method_combo)

        lo, hi = option("radius").range
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(int(lo), int(hi))
        self.radius_spin.setValue(int(_DEFAULTS["radius"]))
        self.radius_spin.setToolTip(f"Window radius (px) of the focus measure, {lo}-{hi}")
        form.addRow("Radius", self.radius_spin)

        lo, hi = option("smoothing").range
        self.smoothing_spin = QDoubleSpinBox()
        self.smoothing_spin.setRange(float(lo), float(hi))
        self.smoothing_spin.setSingleStep(0.5)
        self.smoothing_spin.setDecimals(1)
        self.smoothing_spin.setValue(float(_DEFAULTS["smoothing"]))
        self.smoothing_spin.setToolTip(f"Smoothing (px) of the focus measure, {lo}-{hi}")
        form.addRow("Smoothing", self.smoothing_spin)

        lo, hi = option("scale_factor").range
        self.scale_spin = QSpinBox()
        self.scale_spin.setRange(int(lo), int(hi))
        self.scale_spin.setValue(int(_DEFAULTS["scale_factor"]))
        self.scale_spin.setToolTip(
            f"Work at this multiple of the resolution ({lo}-{hi}): sharper sub-pixel alignment, slower"
        )
        form.addRow("Scale factor", self.scale_spin)

        self.align_combo = QComboBox()
        self.align_combo.addItems(["similarity", "affine", "translation", "none"])
        self.align_combo.setCurrentText(_DEFAULTS["align"])
        self.align_combo.setToolTip(
            "similarity: scale (focus breathing), rotation and shift; affine adds shear; none: frames already aligned"
        )
        form.addRow("Alignment", self.align_combo)

        self.reference_spin = QSpinBox()
        self.reference_spin.setRange(-1, 0)
        self.reference_spin.setSpecialValueText("middle")
        self.reference_spin.setValue(-1)
        self.reference_spin.setToolTip("Frame the others are aligned to (default: the middle one)")
        form.addRow("Reference frame", self.reference_spin)

        self.device_combo = QComboBox()
        for label, value in (("Auto", "auto"), ("CPU", "cpu"), ("GPU", "gpu")):
            self.device_combo.addItem(label, value)
        self.device_combo.setCurrentIndex(self.device_combo.findData(_DEFAULTS["device"]))
        if not self._gpu_ok:
            item = self.device_combo.model().item(2)
            item.setEnabled(False)
            item.setToolTip(f"GPU unavailable: {self._gpu_why}")
        self.device_combo.currentIndexChanged.connect(self._update_device_label)
        form.addRow("Device", self.device_combo)
        self.device_label = QLabel()
        self.device_label.setWordWrap(True)
        form.addRow("", self.device_label)

        self.aligned_check = QCheckBox("Add the aligned stack as a layer")
        form.addRow("", self.aligned_check)

        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)
        # A steady height: a label that grows or shrinks relays out the window and
        # makes napari redraw its canvas, which costs the engine CPU time.
        self.status_label.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.status_label.setMinimumHeight(3 * self.status_label.fontMetrics().lineSpacing() + 4)
        self.excluded_label = QLabel()
        self.excluded_label.setWordWrap(True)
        self.excluded_label.setStyleSheet("color: #e8a33d;")

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)  # long file names are elided, not scrolled
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setToolTip(
            "Alignment of each frame to the reference: quality is the correlation after alignment, "
            "scale the focus breathing, rot the rotation in degrees, dx/dy the shift of the centre in pixels"
        )

        self.setMinimumWidth(440)  # room for the alignment table without scrolling
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.excluded_label)
        layout.addWidget(self.table, 1)
        self._update_device_label()

    def _update_device_label(self, *_: Any) -> None:
        device = self.device_combo.currentData()
        if device == "cpu":
            text = "Runs on the CPU (NumPy/SciPy)."
        elif self._gpu_ok:
            text = f"Runs on the GPU: {self._gpu_why}."
        elif device == "gpu":
            text = f"GPU unavailable: {self._gpu_why}."
        else:
            text = f"Auto: CPU, because {self._gpu_why}."
        self.device_label.setText(text)

    # -------------------------------------------------------------- inputs
    def _stack_layers(self) -> list[Image]:
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and not layer.multiscale
            and layer.ndim == 3
            and layer.data.shape[0] >= 2
            and layer.metadata.get(_ROLE) is None
        ]

    def _selected_2d(self) -> list[Image]:
        from napari.layers import Image

        # layer-list order (bottom to top) is the frame order
        return [
            layer
            for layer in self.viewer.layers
            if layer in self.viewer.layers.selection
            and isinstance(layer, Image)
            and not layer.multiscale
            and layer.ndim == 2
        ]

    def _refresh_inputs(self, *_: Any) -> None:
        current = self.input_combo.currentData()
        selected = len(self._selected_2d())
        self.input_combo.blockSignals(True)
        self.input_combo.clear()
        for layer in self._stack_layers():
            self.input_combo.addItem(layer.name, layer.name)
        if selected >= 2:
            self.input_combo.addItem(f"{SELECTED} ({selected})", SELECTED)
        keep = self.input_combo.findData(current) if current is not None else -1
        if keep < 0:
            active = self.viewer.layers.selection.active
            keep = self.input_combo.findData(active.name) if active is not None else -1
        if keep < 0 and self.input_combo.count():
            keep = 0
        self.input_combo.setCurrentIndex(keep)
        self.input_combo.blockSignals(False)
        self._update_reference_range()

    def _input_frames(self) -> int:
        entry = self.input_combo.currentData()
        if entry is None:
            return 0
        if entry == SELECTED:
            return len(self._selected_2d())
        layer = self.viewer.layers[entry] if entry in self.viewer.layers else None
        return 0 if layer is None else int(layer.data.shape[0])

    def _update_reference_range(self, *_: Any) -> None:
        n = self._input_frames()
        self.reference_spin.setMaximum(max(n - 1, 0))

    def set_input(self, name: str) -> None:
        """Choose the input by layer name (or :data:`SELECTED`)."""
        self._refresh_inputs()
        index = self.input_combo.findData(name)
        if index < 0:
            raise ValueError(f"{name!r} is not a stack layer of this viewer (or fewer than two 2-D layers are selected)")
        self.input_combo.setCurrentIndex(index)

    def _make_job(self) -> _Job:
        entry = self.input_combo.currentData()
        if entry is None:
            raise FocusStackError(
                "Nothing to stack: open a folder of frames or a multi-page TIFF (File > Open Folder...), "
                "or select two or more 2-D image layers."
            )
        if entry == SELECTED:
            layers = self._selected_2d()
            if len(layers) < 2:
                raise FocusStackError("Select two or more 2-D image layers to stack them.")
            source = FrameSource.from_inputs([np.asarray(layer.data) for layer in layers])
            names = [layer.name for layer in layers]
            metas = [
                dataclasses.replace(source.meta(k), exif=layer.metadata.get("exif"), icc=layer.metadata.get("icc"))
                for k, layer in enumerate(layers)
            ]
            source = FrameSource([partial(source.read, k) for k in range(len(layers))], metas, names)
            first = layers[0]
            return _Job(source, "focus stack", None, names, tuple(first.scale[-2:]), tuple(first.translate[-2:]),
                        None, self.aligned_check.isChecked())
        if entry not in self.viewer.layers:
            self._refresh_inputs()
            raise FocusStackError(f"The layer {entry!r} is gone; choose the input again.")
        layer = self.viewer.layers[entry]
        if layer.multiscale:
            raise FocusStackError(f"{entry!r} is a multiscale (pyramid) layer; open the full-resolution stack.")
        source = _layer_source(layer)
        return _Job(source, layer.name, layer, list(source.names), tuple(layer.scale[-2:]),
                    tuple(layer.translate[-2:]), list(layer.contrast_limits), self.aligned_check.isChecked())

    def _make_stacker(self) -> FocusStacker:
        reference = self.reference_spin.value()
        return FocusStacker(
            radius=self.radius_spin.value(),
            smoothing=_whole(self.smoothing_spin.value()),
            scale_factor=self.scale_spin.value(),
            method=self.method_combo.currentText(),
            align=self.align_combo.currentText(),
            reference=None if reference < 0 else reference,
            device=self.device_combo.currentData(),
        )

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Start focus stacking the chosen input in a worker thread."""
        from napari.qt.threading import create_worker

        if self.busy:
            return
        try:
            job = self._make_job()
            stacker = self._make_stacker()
        except (FocusStackError, ValueError) as exc:
            self._show_error(exc)
            return
        self._job = job
        self._cancel.clear()
        defuse_notification_timers()
        n = len(job.source)
        self._total = 2 * n + (n if job.aligned else 0)
        self.progress_bar.setRange(0, self._total)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting...")
        self.status_label.setText(f"Stacking {n} frames of {job.key}...")
        self.excluded_label.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(
            _stack_job, job, stacker, self._cancel, self._bridge.progress.emit, _start_thread=False
        )
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def cancel(self) -> None:
        """Ask the running job to stop; it does so after the frame in progress."""
        if self.worker is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.progress_bar.setFormat("Cancelling after the current frame...")

    def _on_progress(self, done: int, total: int, stage: str) -> None:
        # Every repaint of a widget recomposes napari's whole OpenGL window, which
        # takes CPU from the engine (notably with software GL): the bar shows the
        # latest frame at most every _PROGRESS_MS, and at once when frames are slower.
        self._progress = (done, stage)
        if not self._progress_timer.isActive():
            wait = _PROGRESS_MS - (time.perf_counter() - self._progress_shown) * 1000
            self._progress_timer.start(max(0, int(wait)))

    def _show_progress(self) -> None:
        self._progress_shown = time.perf_counter()
        done, stage = self._progress
        n = len(self._job.source) if self._job is not None else 0
        self.progress_bar.setValue(min(done, self._total))
        if self._cancel.is_set() or n == 0:
            return
        # the text goes into the bar: changing the status label would relayout the dock
        if stage == "align":
            text = f"Aligning: frame {min(done, n)} of {n}"
        elif stage == "fuse":
            text = f"Fusing: frame {min(done - n, n)} of {n}"
        else:
            text = f"Warping the aligned stack: frame {min(done - 2 * n, n)} of {n}"
        self.progress_bar.setFormat(text)

    def _on_returned(self, outcome: _Outcome) -> None:
        self._progress_timer.stop()
        if isinstance(outcome.error, Cancelled):
            self.status_label.setText("Cancelled.")
            self.progress_bar.setValue(0)
            self._status = "cancelled"
        elif outcome.error is not None:
            self._show_error(outcome.error)
            self._status = "error"
        else:
            self.progress_bar.setValue(self._total)
            self.progress_bar.setFormat("Showing the results...")
            self._steps = self._result_steps(self._job, outcome.result, outcome.aligned)
            self._status = "done"

    def _on_finished(self) -> None:
        self.worker = None
        if self._steps:
            QTimer.singleShot(0, self._next_step)
        else:
            self._end_run()

    def _next_step(self) -> None:
        # One result layer per event-loop turn: creating a layer (vispy visual,
        # layer controls) takes tens of ms, and the GUI must keep breathing.
        try:
            self._steps.pop(0)()
        except Exception:
            self._steps = []
            self._status = "error"
            self._end_run()
            raise
        if self._steps:
            QTimer.singleShot(_STEP_PAUSE_MS, self._next_step)
        else:
            self._end_run()

    def _end_run(self) -> None:
        defuse_notification_timers()
        self._progress_timer.stop()
        self.progress_bar.setFormat("%p%")
        status, self._status = self._status, "error"  # an unexpected exception skips _on_returned
        self._job = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if status == "error" and self.status_label.text().startswith("Stacking"):
            self.status_label.setText("Failed (see the notification).")
        self.run_finished.emit(status)

    @property
    def busy(self) -> bool:
        """True from Run until the result layers are all shown."""
        return not self.run_button.isEnabled()

    def _show_error(self, exc: Exception) -> None:
        self.status_label.setText(f"Error: {exc}")
        notify(f"Focus stacking failed: {exc}", "error")

    # ------------------------------------------------------------- results
    def _result_steps(self, job: _Job, result: StackResult, aligned: np.ndarray | None) -> list:
        """The GUI-thread work that shows a result, as small steps."""
        report = result.report
        n = len(job.source)
        meta = result.meta
        common = {"scale": job.scale, "translate": job.translate}
        md = {
            _INPUT: job.key,
            _REPORT: report,
            "names": job.names,
            "exif": None if meta is None else meta.exif,
            "icc": None if meta is None else meta.icc,
            "paths": [str(p) for p in job.source.paths if p is not None],
        }
        outputs: list[tuple[str, np.ndarray, dict]] = []
        if aligned is not None:
            outputs.append(("aligned", aligned, {
                "rgb": aligned.ndim == 4, "visible": False, "axis_labels": ("z", "y", "x"),
                "contrast_limits": job.contrast_limits,
            }))
        outputs.append(("confidence", result.confidence, {
            "colormap": "gray", "contrast_limits": [0.0, 1.0], "visible": False,
        }))
        outputs.append(("depth", result.depth, {
            "colormap": "turbo", "contrast_limits": [0.0, float(max(n - 1, 1))],
        }))
        outputs.append(("fused", result.image, {
            "rgb": result.image.ndim == 3,
            "contrast_limits": job.contrast_limits if result.image.ndim == 2 else None,
        }))
        layers: dict[str, Any] = {}

        def put(items: list[tuple[str, np.ndarray, dict]]):
            def step() -> None:
                for role, data, kwargs in items:
                    layers[role] = self._put_layer(job, role, data, {**common, **kwargs}, md)
            return step

        # Replacing the data of earlier result layers is cheap: one step for all of
        # them. Creating a layer is not: one step (one event-loop turn) each.
        reused = {role for role, data, kwargs in outputs if self._reusable(job, role, data, kwargs) is not None}
        steps = [put([o for o in outputs if o[0] in reused])] if reused else []
        steps += [put([o]) for o in outputs if o[0] not in reused]

        def finish() -> None:
            fused, depth = layers["fused"], layers["depth"]
            for layer in (fused, depth):
                if self._on_click not in layer.mouse_drag_callbacks:
                    layer.mouse_drag_callbacks.append(self._on_click)
            self.viewer.layers.selection.active = fused
            self._fill_table(report)
            excluded = report.get("excluded", [])
            t = report.get("timings", {}).get("total_s", float("nan"))
            self.status_label.setText(
                f"Done in {t:.2f} s on {report.get('device', report.get('backend', '?'))}: "
                f"{n - len(excluded)} of {n} frames fused into '{fused.name}'. "
                "Click the fused image or the depth map to jump to the sharpest frame."
            )
            if excluded:
                why = {f["name"]: f.get("reason", "alignment failed") for f in report.get("frames", [])}
                text = f"Excluded {len(excluded)} frame(s): " + "; ".join(
                    f"{name} ({why.get(name, 'alignment failed')})" for name in excluded
                )
                self.excluded_label.setText(text)
                notify(f"{job.key}: {text}.", "warning")

        last = steps.pop()
        steps.append(lambda: (last(), finish()))
        return steps

    def _reusable(self, job: _Job, role: str, data: np.ndarray, kwargs: dict) -> Image | None:
        """The `role` layer of an earlier run on the same input, if its data can simply be replaced."""
        for layer in self.viewer.layers:
            if layer.metadata.get(_ROLE) == role and layer.metadata.get(_INPUT) == job.key:
                same_kind = layer.rgb == bool(kwargs.get("rgb", False)) and layer.data.ndim == data.ndim
                return layer if same_kind and layer.dtype == data.dtype else None
        return None

    def _put_layer(self, job: _Job, role: str, data: np.ndarray, kwargs: dict, metadata: dict) -> Image:
        """Add the `role` result layer of `job`, or replace the data of the one from an earlier run."""
        from napari.layers import Image

        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        metadata = {**metadata, _ROLE: role}
        old = self._reusable(job, role, data, kwargs)
        if old is not None:
            old.data = data
            old.metadata = metadata
            old.scale, old.translate = kwargs["scale"], kwargs["translate"]
            if "contrast_limits" in kwargs:
                old.contrast_limits_range = kwargs["contrast_limits"]
                old.contrast_limits = kwargs["contrast_limits"]
            return old
        # an earlier layer of another kind (e.g. the input became gray) is replaced in place
        stale = next(
            (layer for layer in self.viewer.layers
             if layer.metadata.get(_ROLE) == role and layer.metadata.get(_INPUT) == job.key),
            None,
        )
        layer = Image(data, name=f"{job.key} {role}", metadata=metadata, **kwargs)
        if stale is not None:
            index = self.viewer.layers.index(stale)
            self.viewer.layers.remove(stale)
            self.viewer.layers.insert(index, layer)
        else:
            self.viewer.layers.append(layer)
        return layer

    def _fill_table(self, report: dict) -> None:
        frames = report.get("frames", [])
        ref = report.get("reference")
        self.table.setRowCount(len(frames))
        for row, f in enumerate(frames):
            if f.get("excluded"):
                status = "excluded"
            elif f.get("index") == ref:
                status = "reference"
            else:
                status = "ok"
            values = (
                f.get("name", str(row)),
                _fmt(f.get("quality"), "{:.2f}"),
                _fmt(f.get("scale"), "{:.4f}"),
                _fmt(f.get("rotation_deg"), "{:+.2f}"),
                _fmt(f.get("shift_x"), "{:+.1f}"),
                _fmt(f.get("shift_y"), "{:+.1f}"),
                status,
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if f.get("excluded"):
                    item.setToolTip(f"excluded: {f.get('reason', 'alignment failed')}")
                if 0 < col < len(values) - 1:
                    item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                self.table.setItem(row, col, item)

    # --------------------------------------------------- depth-map clicks
    def _on_click(self, layer: Image, event: Any):
        """Drag callback: a click (not a drag) jumps to the sharpest frame at that pixel."""
        if getattr(event, "button", 1) != 1 or event.type != "mouse_press":
            return
        position = tuple(event.position)
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            self.jump_to_sharpest(layer, position)

    def jump_to_sharpest(self, layer: Image, world_position) -> int | None:
        """Move the dims slider to the sharpest frame at `world_position`.

        Parameters
        ----------
        layer : napari.layers.Image
            A fused or depth layer made by this widget.
        world_position : sequence of float
            World coordinates of the click.

        Returns
        -------
        int or None
            The frame index, or None outside the map.
        """
        key = layer.metadata.get(_INPUT)
        depth_layer = next(
            (lyr for lyr in self.viewer.layers
             if lyr.metadata.get(_ROLE) == "depth" and lyr.metadata.get(_INPUT) == key),
            None,
        )
        if depth_layer is None:
            return None
        r, c = (int(round(v)) for v in depth_layer.world_to_data(world_position)[-2:])
        depth = depth_layer.data
        if not (0 <= r < depth.shape[0] and 0 <= c < depth.shape[1]):
            return None
        names = depth_layer.metadata.get("names", [])
        z = int(np.clip(np.rint(depth[r, c]), 0, max(len(names) - 1, 0)))
        stack = self.viewer.layers[key] if key in self.viewer.layers else None
        if stack is not None and stack.ndim == 3:
            axis = self.viewer.dims.ndim - stack.ndim
            world_z = stack.data_to_world((z, r, c))[0]
            self.viewer.dims.set_point(axis, world_z)
        name = names[z] if z < len(names) else f"frame {z}"
        self.viewer.status = f"Sharpest at ({r}, {c}): frame {z} ({name})"
        return z


# --------------------------------------------------------------------- helpers


def _whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = spec.format(value)
    if text[0] == "-" and not text.strip("-+0."):  # "-0.00": rounds to zero
        text = ("+" if "+" in spec else "") + text[1:]
    return text


def _layer_source(layer: Image) -> FrameSource:
    """A FrameSource reading the frames of a stack layer one at a time.

    Names, EXIF and ICC come from ``layer.metadata`` when the reader put
    them there, so the fused result keeps the camera's metadata.
    """
    source = FrameSource.from_inputs(layer.data)  # lazy: one plane per read, dask included
    md = layer.metadata or {}
    n = len(source)
    names = md.get("names")
    names = list(names) if names is not None and len(names) == n else list(source.names)
    paths = md.get("paths") or [None] * n
    exifs = md.get("frame_exif") or [md.get("exif")] * n
    if len(paths) != n or len(exifs) != n:
        paths, exifs = [None] * n, [md.get("exif")] * n
    metas = [
        dataclasses.replace(source.meta(k), path=None if paths[k] is None else Path(paths[k]),
                            exif=exifs[k], icc=md.get("icc"))
        for k in range(n)
    ]
    return FrameSource([partial(source.read, k) for k in range(n)], metas, names)


def _stack_job(job: _Job, stacker: FocusStacker, cancel: threading.Event, progress) -> _Outcome:
    """Worker-thread body: stack, then optionally warp the aligned stack."""
    try:
        result = stacker.stack(job.source, progress=progress, cancel=cancel)
        aligned = _aligned_stack(stacker, job.source, result, cancel, progress) if job.aligned else None
    except (FocusStackError, ValueError, MemoryError) as exc:
        return _Outcome(error=exc)
    return _Outcome(result=result, aligned=aligned)


def _aligned_stack(stacker: FocusStacker, source: FrameSource, result: StackResult, cancel, progress) -> np.ndarray:
    """Every frame warped into reference geometry (black for excluded frames)."""
    from ..align import warp_image

    bk = stacker.backend
    n = len(source)
    h, w = result.image.shape[:2]
    fh, fw = source.shape[:2]
    # result pixel u covers reference pixel (u + 0.5) * fh / h - 0.5 (h == fh unless upscaled)
    s = h / fh
    up = np.array([[1 / s, 0, 0.5 / s - 0.5], [0, 1 / s, 0.5 / s - 0.5], [0, 0, 1.0]])
    out = np.zeros((n, h, w) + tuple(source.shape[2:]), source.dtype)
    limit = np.iinfo(source.dtype).max if source.dtype.kind in "ui" else None
    for i, m in enumerate(result.transforms):
        if m is not None:
            frame = bk.asarray(source.read(i).astype(np.float32))
            warped = bk.to_numpy(warp_image(bk, frame, np.asarray(m) @ up, (h, w)))
            out[i] = np.clip(np.rint(warped), 0, limit) if limit is not None else warped
        progress(2 * n + i + 1, 3 * n, "aligned")
        if cancel.is_set():
            raise Cancelled("cancelled by the user")
    return out
