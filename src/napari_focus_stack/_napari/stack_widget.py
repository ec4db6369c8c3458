"""The Focus stack dock widget.

Built from one-file parts: the input chooser (:mod:`.input_picker`), the
engine form (:mod:`.engine_form`), the alignment table
(:mod:`.report_table`) and the results-to-layers conversion
(:mod:`.layers`). This module runs :meth:`FocusStacker.stack` in a napari
worker thread, shows progress, and puts the result layers in the viewer:

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
    Optional: every frame warped into reference geometry
    (:meth:`FocusStacker.warp_to_reference`), hidden at first.

Running again on the same input replaces these layers. The alignment report
(per-frame quality, scale, rotation, shift, excluded frames) is shown in the
table and kept in ``layer.metadata["focus_stack_report"]``.

Errors: a :class:`~napari_focus_stack.errors.FocusStackError` (bad input,
failed alignment...) is shown as a notification; anything else is a bug and
is raised with its traceback.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..errors import FocusStackError
from ..io import FrameSource
from ..stacker import Cancelled, FocusStacker, StackResult
from . import layer_metadata as md
from ._notify import defuse_notification_timers, notify
from .engine_form import EngineForm
from .input_picker import SELECTED, InputPicker
from .layers import find_result, layers_source, put_result, result_layers, reusable, stack_source
from .report_table import AlignmentTable

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["FocusStackWidget", "SELECTED"]

# Shortest time between two progress-bar updates.
_PROGRESS_MS = 200
# Pause between the GUI steps that add result layers, so that paints and timers run in between.
_STEP_PAUSE_MS = 10


@dataclass
class _Job:
    """Everything a run needs, gathered on the main thread."""

    source: FrameSource
    key: str  # names the result layers: "<key> fused"...
    layer: Any  # the input stack layer, or None for selected 2-D layers
    scale: tuple[float, float]
    translate: tuple[float, float]
    contrast_limits: list[float] | None
    aligned: bool


@dataclass
class _Outcome:
    """What a run produced: a result, or the user-facing error to show."""

    result: StackResult | None = None
    aligned: np.ndarray | None = None
    error: FocusStackError | None = None


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
    engine : EngineForm
        The engine options (magicgui form); ``engine.kwargs()`` makes the stacker.
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
        self._build()
        self.input_combo.currentIndexChanged.connect(self._update_reference_range)
        self._update_reference_range()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        self.input_combo = InputPicker(self.viewer)
        self.engine = EngineForm()
        self.engine.margins = (0, 0, 0, 0)
        self.aligned_check = QCheckBox("Add the aligned stack as a layer")

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
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status_label.setMinimumHeight(3 * self.status_label.fontMetrics().lineSpacing() + 4)
        self.excluded_label = QLabel()
        self.excluded_label.setWordWrap(True)
        self.excluded_label.setStyleSheet("color: #e8a33d;")
        self.table = AlignmentTable()

        self.setMinimumWidth(440)  # room for the alignment table without scrolling
        layout = QVBoxLayout(self)
        layout.addWidget(_row("Input", self.input_combo))
        layout.addWidget(self.engine.native)
        layout.addWidget(self.aligned_check)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.excluded_label)
        layout.addWidget(self.table, 1)

    def _update_reference_range(self, *_: Any) -> None:
        self.engine.set_frame_count(self.input_combo.frame_count())

    def set_input(self, name: str) -> None:
        """Choose the input by layer name (or :data:`SELECTED`)."""
        self.input_combo.choose(name)

    # -------------------------------------------------------------- inputs
    def _make_job(self) -> _Job:
        entry = self.input_combo.currentData()
        aligned = self.aligned_check.isChecked()
        if entry is None:
            raise FocusStackError(
                "Nothing to stack: open a folder of frames or a multi-page TIFF (File > Open Folder...), "
                "or select two or more 2-D image layers."
            )
        if entry == SELECTED:
            layers = self.input_combo.selected_2d()
            if len(layers) < 2:
                raise FocusStackError("Select two or more 2-D image layers to stack them.")
            first = layers[0]
            return _Job(layers_source(layers), "focus stack", None, tuple(first.scale[-2:]),
                        tuple(first.translate[-2:]), None, aligned)
        if entry not in self.viewer.layers:
            self.input_combo.refresh()
            raise FocusStackError(f"The layer {entry!r} is gone; choose the input again.")
        layer = self.viewer.layers[entry]
        if layer.multiscale:
            raise FocusStackError(f"{entry!r} is a multiscale (pyramid) layer; open the full-resolution stack.")
        return _Job(stack_source(layer), layer.name, layer, tuple(layer.scale[-2:]), tuple(layer.translate[-2:]),
                    list(layer.contrast_limits), aligned)

    def _make_stacker(self) -> FocusStacker:
        return FocusStacker(**self.engine.kwargs())

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Start focus stacking the chosen input in a worker thread."""
        from napari.qt.threading import create_worker

        if self.busy:
            return
        try:
            job = self._make_job()
            stacker = self._make_stacker()
        except FocusStackError as exc:
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
        # an exception other than FocusStackError is a bug: napari re-raises it here with its traceback
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
        except Exception:  # a bug: end the run cleanly, then let it surface
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
            self.status_label.setText("Failed with an unexpected error (see the traceback).")
        self.run_finished.emit(status)

    @property
    def busy(self) -> bool:
        """True from Run until the result layers are all shown."""
        return not self.run_button.isEnabled()

    def _show_error(self, exc: FocusStackError) -> None:
        self.status_label.setText(f"Error: {exc}")
        notify(f"Focus stacking failed: {exc}", "error")

    # ------------------------------------------------------------- results
    def _result_steps(self, job: _Job, result: StackResult, aligned: np.ndarray | None) -> list:
        """The GUI-thread work that shows a result, as small steps."""
        specs = result_layers(result, job.key, job.source, scale=job.scale, translate=job.translate,
                              contrast_limits=job.contrast_limits, aligned=aligned)
        layers: dict[str, Image] = {}

        def put(items: list) -> Any:
            def step() -> None:
                for spec in items:
                    layers[spec[0]] = put_result(self.viewer.layers, spec)
            return step

        # Refilling the layers of an earlier run is cheap: one step for all of
        # them. Creating a layer is not: one step (one event-loop turn) each.
        refill = {s[0] for s in specs if reusable(self.viewer.layers, s) is not None}
        steps = [put([s for s in specs if s[0] in refill])] if refill else []
        steps += [put([s]) for s in specs if s[0] not in refill]

        def finish() -> None:
            fused, depth = layers["fused"], layers["depth"]
            for layer in (fused, depth):
                if self._on_click not in layer.mouse_drag_callbacks:
                    layer.mouse_drag_callbacks.append(self._on_click)
            self.viewer.layers.selection.active = fused
            self._show_report(job, result.report, fused.name)

        last = steps.pop()
        steps.append(lambda: (last(), finish()))
        return steps

    def _show_report(self, job: _Job, report: dict, fused_name: str) -> None:
        n = len(job.source)
        self.table.show_report(report)
        excluded = report.get("excluded", [])
        t = report.get("timings", {}).get("total_s", float("nan"))
        self.status_label.setText(
            f"Done in {t:.2f} s on {report.get('device', report.get('backend', '?'))}: "
            f"{n - len(excluded)} of {n} frames fused into '{fused_name}'. "
            "Click the fused image or the depth map to jump to the sharpest frame."
        )
        if excluded:
            why = {f["name"]: f.get("reason", "alignment failed") for f in report.get("frames", [])}
            text = f"Excluded {len(excluded)} frame(s): " + "; ".join(
                f"{name} ({why.get(name, 'alignment failed')})" for name in excluded
            )
            self.excluded_label.setText(text)
            notify(f"{job.key}: {text}.", "warning")

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
        key = layer.metadata.get(md.INPUT)
        depth_layer = find_result(self.viewer.layers, key, "depth")
        if depth_layer is None:
            return None
        r, c = (int(round(v)) for v in depth_layer.world_to_data(world_position)[-2:])
        depth = depth_layer.data
        if not (0 <= r < depth.shape[0] and 0 <= c < depth.shape[1]):
            return None
        names = depth_layer.metadata.get(md.NAMES, [])
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


def _row(label: str, widget: QWidget) -> QWidget:
    """`widget` with a label on its left, for rows above the magicgui form."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(QLabel(label))
    row.addWidget(widget, 1)
    return box


def _stack_job(job: _Job, stacker: FocusStacker, cancel: threading.Event, progress) -> _Outcome:
    """Worker-thread body: stack, then optionally warp the aligned stack.

    A :class:`FocusStackError` (including :class:`Cancelled`) is returned to
    be shown; any other exception propagates: it is a bug.
    """
    try:
        result = stacker.stack(job.source, progress=progress, cancel=cancel)
        result.depth  # the regularised depth is computed on first use: here, not in the GUI thread
        aligned = _aligned_stack(stacker, job.source, result, cancel, progress) if job.aligned else None
    except FocusStackError as exc:
        return _Outcome(error=exc)
    return _Outcome(result=result, aligned=aligned)


def _aligned_stack(stacker: FocusStacker, source: FrameSource, result: StackResult, cancel, progress) -> np.ndarray:
    """Every frame in reference geometry, as one array (black for excluded frames)."""
    n = len(source)
    out = np.zeros((n, *result.image.shape[:2], *source.shape[2:]), source.dtype)
    for i, frame in enumerate(stacker.warp_to_reference(source, result.transforms)):
        if frame is not None:
            out[i] = frame
        progress(2 * n + i + 1, 3 * n, "aligned")
        if cancel.is_set():
            raise Cancelled("cancelled by the user")
    return out
