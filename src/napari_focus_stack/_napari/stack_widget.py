"""The Focus stack dock widget.

Built from one-file parts: the input and z-axis choosers
(:mod:`.input_picker`), the channel layers fused together
(:mod:`.channel_picker`), the engine form (:mod:`.engine_form`), the
alignment table (:mod:`.report_table`), the results-to-layers conversion
(:mod:`.layers`) and the 3D height view (:mod:`.height_view`). This module
runs the engine in a napari worker thread, shows progress, and puts the
result layers in the viewer.

The input is any image layer with a z axis. A single z-stack of photos
``(Z, Y, X[, RGB])`` goes through :meth:`FocusStacker.stack` (EXIF kept,
exposure matched); microscope data, i.e. a layer with more sliders (time,
positions), channel layers fused together, or a z axis with a length unit,
goes through :func:`napari_focus_stack.nd.stack_nd`: every z-stack is
fused, channels share one decision, intensities stay as measured, and the
results keep the input's other sliders (a ``(T, Z, Y, X)`` layer gives
``(T, 1, Y, X)`` results whose single plane spans the z range, see
:mod:`.geometry`), scale, translate and units. The result layers:

``<input> fused``
    The all-in-focus image, dtype of the input.
``<input> depth``
    Fractional index of the sharpest frame, turbo colormap, contrast limits
    ``0..frames-1``: its colours match the positions of the dims slider.
    When the z axis has a length unit (a calibrated microscope stack), the
    height ``z0 + index * z step`` in that unit instead: the world z of the
    sharpest plane. Clicking a pixel of it (or of the fused image) moves the
    z slider to the frame that was sharpest there.
``<channel layer> fused``
    Channel layers fused together: one fused layer each, with the
    channel's colormap, blending and contrast.
``<input> confidence``
    0..1, hidden at first.
``<input> aligned``
    Optional: every frame warped into reference geometry
    (:meth:`FocusStacker.warp_to_reference`), hidden at first.

Running again on the same input replaces these layers. The alignment report
(per-frame quality, scale, rotation, shift, excluded frames) is shown in the
table and kept in ``layer.metadata["focus_stack_report"]``.

After a run on one stack of photos, the **Retouch** panel
(:mod:`.retouch_panel`) paints which frame the fused image shows where the
automatic choice went wrong: a Labels layer ``<input> retouch`` over it,
label k taking frame k (from 1), updated live.

"Show height in 3D" adds the height map as a Surface layer, ``<input>
height 3D`` (:mod:`.height_view`: built on a worker thread, vertically
exaggerated so that the relief shows, tilted, coloured by the fused image or
by height).

Errors: a :class:`~napari_focus_stack.errors.FocusStackError` (bad input,
failed alignment...) is shown as a notification; anything else is a bug and
is raised with its traceback.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..errors import Cancelled, FocusStackError, StackError
from ..io import FrameSource, Hyperstack
from ..jobs import Job, plan_job, run_job
from ..options import EngineOptions
from ..result import StackReport, StackResult
from ..stacker import FocusStacker
from . import layer_metadata as md
from ._notify import defuse_notification_timers, notify
from .background import BackgroundRun
from .channel_picker import ChannelPicker
from .engine_form import EngineForm
from .geometry import suspect_z_axis
from .height_view import HeightView
from .input_picker import SELECTED, InputPicker, ZAxisPicker
from .layers import (
    ChannelStack,
    InputAxes,
    data_index,
    find_result,
    layers_source,
    move_z_slider,
    nd_result_layers,
    put_result,
    result_layers,
    reusable,
    stack_source,
)
from .report_table import AlignmentTable
from .retouch_panel import RetouchPanel

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

__all__ = ["SELECTED", "FocusStackWidget"]

# Shortest time between two progress-bar updates.
_PROGRESS_MS = 200
# Pause between the GUI steps that add result layers, so that paints and timers run in between.
_STEP_PAUSE_MS = 10


@dataclass
class _Job:
    """Everything a run needs, gathered on the main thread.

    One z-stack of photos has a ``source`` (:meth:`FocusStacker.stack`);
    N-D data has a ``hyper`` (:func:`napari_focus_stack.nd.stack_nd`).
    """

    key: str  # names the result layers: "<key> fused"...
    layer: Any  # the input stack layer, or None for selected 2-D layers
    frames: int  # planes per z-stack
    stacks: int = 1  # z-stacks (time points...)
    source: FrameSource | None = None
    hyper: Any = None  # io.Hyperstack
    axes: InputAxes | None = None
    place: dict = field(default_factory=dict)  # selected 2-D layers: scale, translate, units, labels
    looks: list = field(default_factory=list)  # per fused layer: name and display keywords
    channel: int | None = None  # the deciding channel (N-D)
    inputs: list = field(default_factory=list)  # names of the layers fused together (N-D)
    aligned: bool = False


@dataclass
class _Outcome:
    """What a run produced: a result (StackResult or NDResult), or the user-facing error to show."""

    result: Any = None
    aligned: np.ndarray | None = None
    error: FocusStackError | None = None
    notes: list = field(default_factory=list)  # what the plan changed ("memory is short: fused in tiles...")


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(int, int, str)


class FocusStackWidget(BackgroundRun, QWidget):
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
        self._init_run()
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._progress = (0, "")
        self._progress_shown = 0.0
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.timeout.connect(self._show_progress)
        self._total = 1
        self._job: _Job | None = None
        self._notes: list[str] = []  # what the job's plan changed, shown with the result
        self._status = "error"
        self._steps: list = []
        self._build()
        self.input_combo.currentIndexChanged.connect(self._on_input_changed)
        self.z_combo.currentIndexChanged.connect(self._on_axes_changed)
        self.channel_picker.changed.connect(self._on_axes_changed)
        self._on_input_changed()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        self.input_combo = InputPicker(self.viewer)
        self.z_combo = ZAxisPicker()
        self.z_warning = QLabel()  # a z axis of 2-4 planes beside a longer slider: probably channels
        self.z_warning.setWordWrap(True)
        self.z_warning.setStyleSheet("color: #e8a33d;")
        self.z_warning.setVisible(False)
        self.channel_picker = ChannelPicker(self.viewer)
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
        self.height_view = HeightView(self.viewer, self._surface_key)
        self.height_view.status.connect(self.status_label.setText)
        self.surface_button = self.height_view.show_button
        self.status_label.setWordWrap(True)
        # A steady height: a label that grows or shrinks relays out the window and
        # makes napari redraw its canvas, which costs the engine CPU time.
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status_label.setMinimumHeight(3 * self.status_label.fontMetrics().lineSpacing() + 4)
        self.excluded_label = QLabel()
        self.excluded_label.setWordWrap(True)
        self.excluded_label.setStyleSheet("color: #e8a33d;")
        self.table = AlignmentTable()
        self.retouch = RetouchPanel(self.viewer)

        self.setMinimumWidth(440)  # room for the alignment table without scrolling
        layout = QVBoxLayout(self)
        layout.addWidget(_row("Input", self.input_combo))
        layout.addWidget(_row("Z axis", self.z_combo))
        layout.addWidget(self.z_warning)
        layout.addWidget(self.channel_picker)
        layout.addWidget(self.engine.native)
        layout.addWidget(self.aligned_check)
        layout.addLayout(buttons)
        layout.addWidget(self.height_view)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.excluded_label)
        layout.addWidget(self.retouch)
        layout.addWidget(self.table, 1)

    def _on_input_changed(self, *_: Any) -> None:
        layer = self.input_combo.current_layer()
        self.z_combo.set_layer(layer)
        self.channel_picker.set_input(layer)
        self._on_axes_changed()
        if self.input_combo.count() == 0 and not self.busy:
            reasons = self.input_combo.why_not()
            self.status_label.setText(_not_stackable(reasons) if reasons else "Ready.")

    def _on_axes_changed(self, *_: Any) -> None:
        layer = self.input_combo.current_layer()
        z = self.z_combo.axis()
        if self.input_combo.currentData() == SELECTED:
            frames, plain = len(self.input_combo.selected_2d()), True
        elif layer is None or z is None:
            frames, plain = 0, True
        else:
            axes = InputAxes.of(layer, z)
            frames = axes.frames
            plain = axes.is_plain_stack and len(self.channel_picker.channel_layers()) <= 1
        suspect = None if layer is None or z is None else suspect_z_axis(axes.shape, z, axes.axis_labels)
        self.z_warning.setText(suspect or "")
        self.z_warning.setVisible(suspect is not None)
        self.engine.set_frame_count(frames)
        # the aligned stack is one z-stack's: not offered for time series and channel sets
        self.aligned_check.setEnabled(plain)
        self.surface_button.setEnabled(not self.busy and not self.height_view.busy and self._surface_key() is not None)

    def set_input(self, name: str, z_axis: int | None = None, channels: list[str] | None = None,
                  deciding: str | None = None) -> None:
        """Choose the input by layer name (or :data:`SELECTED`), and optionally its z axis and channels.

        Parameters
        ----------
        name : str
            A stack layer's name, or :data:`SELECTED`.
        z_axis : int, optional
            The layer's z axis (default: the one labelled z, else the slider next to y).
        channels : list of str, optional
            Other channel layers to fuse with it (default: those read from the same file).
        deciding : str, optional
            The name of the deciding channel layer (default: all channels).
        """
        self.input_combo.choose(name)
        if z_axis is not None:
            self.z_combo.choose(z_axis)
        if channels is not None:
            self.channel_picker.tick(channels)
        if channels is not None or deciding is not None:
            self.channel_picker.choose_deciding(deciding)

    # -------------------------------------------------------------- inputs
    def _make_job(self) -> _Job:
        entry = self.input_combo.currentData()
        aligned = self.aligned_check.isChecked() and self.aligned_check.isEnabled()
        if entry is None:
            text = ("Nothing to stack: open a folder of frames, a multi-page TIFF or a microscope file "
                    "(File > Open...), or select two or more 2-D image layers.")
            reasons = self.input_combo.why_not()
            raise FocusStackError(f"{text} {_not_stackable(reasons)}" if reasons else text)
        if entry == SELECTED:
            layers = self.input_combo.selected_2d()
            if len(layers) < 2:
                raise FocusStackError("Select two or more 2-D image layers to stack them.")
            first = layers[0]
            place = {"scale": tuple(first.scale[-2:]), "translate": tuple(first.translate[-2:]),
                     "units": tuple(first.units[-2:]), "axis_labels": tuple(first.axis_labels[-2:])}
            return _Job("focus stack", None, len(layers), source=layers_source(layers), place=place,
                        aligned=aligned)
        if entry not in self.viewer.layers:
            self.input_combo.refresh()
            raise FocusStackError(f"The layer {entry!r} is gone; choose the input again.")
        layer = self.viewer.layers[entry]
        if layer.multiscale:
            raise FocusStackError(f"{entry!r} is a multiscale (pyramid) layer; open the full-resolution stack.")
        axes = InputAxes.of(layer, self.z_combo.axis())
        if axes.frames < 2:
            raise StackError(
                f"{entry!r} has a single plane along {axes.axis_labels[axes.z]!r}: a focus stack needs 2 or "
                "more. Pick its z axis in 'Z axis'."
            )
        channels = self.channel_picker.channel_layers() or [layer]
        looks = [_look(c, f"{c.name} fused" if len(channels) > 1 else f"{entry} fused") for c in channels]
        if len(channels) > 1:  # one set of results per set of channels, whichever of them is the input
            entry = channels[0].name
        if len(channels) == 1 and axes.is_plain_stack:
            return _Job(entry, layer, axes.frames, source=stack_source(layer), axes=axes, looks=looks,
                        aligned=aligned)
        if len(channels) > 1:
            names = [c.name for c in channels]
            data, letters = ChannelStack([c.data for c in channels], names), "C" + axes.letters
        else:
            names, data, letters = None, layer.data, axes.letters
        hyper = Hyperstack(data, letters, axes.calibration(names), name=entry)
        return _Job(entry, layer, axes.frames, stacks=axes.stacks, hyper=hyper, axes=axes, looks=looks,
                    channel=self.channel_picker.deciding() if len(channels) > 1 else None,
                    inputs=[c.name for c in channels])

    def _make_options(self) -> EngineOptions:
        return EngineOptions(**self.engine.kwargs())

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Start focus stacking the chosen input in a worker thread."""
        if self.busy:
            return
        try:
            job = self._make_job()
            options = self._make_options()
        except FocusStackError as exc:
            self._show_error(exc)
            self.run_finished.emit("error")  # a run that never started ended too
            return
        self._job = job
        defuse_notification_timers()
        n = job.frames
        self._total = 2 * n * job.stacks + (n if job.aligned else 0)
        self.progress_bar.setRange(0, self._total)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting...")
        what = f"{job.stacks} z-stacks of {n} planes" if job.stacks > 1 else f"{n} frames"
        self.status_label.setText(f"Stacking {what} of {job.key}...")
        self.excluded_label.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.surface_button.setEnabled(False)
        # an exception other than FocusStackError is a bug: napari re-raises it here with its traceback
        self._start(_stack_job, job, options, self._cancel, self._bridge.progress.emit)

    def _show_cancelling(self) -> None:
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
        n = self._job.frames if self._job is not None else 0
        self.progress_bar.setValue(min(done, self._total))
        if self._cancel.is_set() or n == 0:
            return
        # N-D runs name the z-stack: "T 2/5: align"; done counts over all z-stacks
        where, _, stage = stage.rpartition(": ")
        if stage in ("align", "fuse") and done > 0:
            done -= min((done - 1) // (2 * n), self._job.stacks - 1) * 2 * n
        # the text goes into the bar: changing the status label would relayout the dock
        if stage == "align":
            text = f"Aligning: frame {min(done, n)} of {n}"
        elif stage == "fuse":
            text = f"Fusing: frame {min(done - n, n)} of {n}"
        else:
            text = f"Warping the aligned stack: frame {min(done - 2 * n, n)} of {n}"
        self.progress_bar.setFormat(f"{where}: {text}" if where else text)

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
            self._notes = list(outcome.notes)
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
        self.surface_button.setEnabled(self._surface_key() is not None)
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
    def _result_steps(self, job: _Job, result: Any, aligned: np.ndarray | None) -> list:
        """The GUI-thread work that shows a result, as small steps."""
        if job.hyper is not None:
            specs = nd_result_layers(result, job.key, job.axes, job.looks, channel_layers=len(job.looks) > 1,
                                     inputs=job.inputs)
            report = result.reports[0]
        else:
            look = job.looks[0] if job.looks else {}
            specs = result_layers(result, job.key, job.source, aligned=aligned, axes=job.axes,
                                  contrast_limits=look.get("contrast_limits"), colormap=look.get("colormap"),
                                  **job.place)
            report = result.report
        layers: dict[int, Image] = {}

        def put(items: list) -> Any:
            def step() -> None:
                for k, spec in items:
                    layers[k] = put_result(self.viewer.layers, spec)
            return step

        # Refilling the layers of an earlier run is cheap: one step for all of
        # them. Creating a layer is not: one step (one event-loop turn) each.
        numbered = list(enumerate(specs))
        refill = {k for k, s in numbered if reusable(self.viewer.layers, s) is not None}
        steps = [put([(k, s) for k, s in numbered if k in refill])] if refill else []
        steps += [put([(k, s)]) for k, s in numbered if k not in refill]

        def finish() -> None:
            shown = [(spec[0], layers[k]) for k, spec in numbered]
            fused = [layer for role, layer in shown if role == "fused"]
            for role, layer in shown:
                if role in ("fused", "depth") and self._on_click not in layer.mouse_drag_callbacks:
                    layer.mouse_drag_callbacks.append(self._on_click)
            self.viewer.layers.selection.active = fused[-1]
            self._show_report(job, result, report, [layer.name for layer in fused])
            if job.hyper is None:
                self.retouch.attach(job.key, result, job.source, dict(shown))
            else:
                self.retouch.detach()

        last = steps.pop()
        steps.append(lambda: (last(), finish()))
        return steps

    def _show_report(self, job: _Job, result: Any, report: StackReport, fused_names: list[str]) -> None:
        n = job.frames
        self.table.show_report(report)
        excluded = report.excluded_frames
        reports = getattr(result, "reports", [report])
        t = sum(r.timings.total_s for r in reports)
        device = report.device or report.backend
        into = ", ".join(f"'{name}'" for name in fused_names)
        if job.stacks > 1:
            what = f"{job.stacks} z-stacks of {n} planes fused into {into}"
        else:
            what = f"{n - len(excluded)} of {n} frames fused into {into}"
        unit = getattr(result, "unit", "frame")
        height = f" Heights in {unit}." if unit != "frame" else ""
        flat = _flat_depth(job, result)
        notes = "".join(f" {note[:1].upper()}{note[1:]}." for note in [*self._notes, *([flat] if flat else [])])
        self.status_label.setText(
            f"Done in {t:.2f} s on {device}: {what}.{height}{notes} "
            "Click the fused image or the depth map to jump to the sharpest frame."
        )
        if excluded:
            text = f"Excluded {len(excluded)} frame(s): " + "; ".join(
                f"{f.name} ({f.reason or 'alignment failed'})" for f in excluded
            )
            self.excluded_label.setText(text)
            notify(f"{job.key}: {text}.", "warning")
        if flat:
            notify(f"{job.key}: {flat}.", "warning")

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
        """Move the z slider to the sharpest frame at `world_position`.

        Parameters
        ----------
        layer : napari.layers.Image
            A fused or depth layer made by this widget.
        world_position : sequence of float
            World coordinates of the click (the other sliders pick the time point).

        Returns
        -------
        int or None
            The frame index, or None outside the map.
        """
        key = layer.metadata.get(md.INPUT)
        depth_layer = find_result(self.viewer.layers, key, "depth")
        if depth_layer is None:
            return None
        index = data_index(depth_layer, world_position)
        if index is None:
            return None
        r, c = index[-2:]
        meta = depth_layer.metadata
        names = meta.get(md.NAMES, [])
        value = float(np.asarray(depth_layer.data[index]))
        if meta.get(md.Z_STEP):
            value = (value - meta.get(md.Z0, 0.0)) / meta[md.Z_STEP]
        z = int(np.clip(np.rint(value), 0, max(len(names) - 1, 0)))
        move_z_slider(self.viewer, key, meta.get(md.Z_AXIS, 0), z, world_position)
        name = names[z] if z < len(names) else f"frame {z}"
        self.viewer.status = f"Sharpest at ({r}, {c}): frame {z} ({name})"
        return z

    # ------------------------------------------------------ 3D height view
    def _surface_key(self) -> str | None:
        """The input whose height map the 3D button shows: the chosen input's, else the last one made."""
        entry = self.input_combo.currentData()
        key = "focus stack" if entry == SELECTED else entry
        if key is not None and find_result(self.viewer.layers, key, "depth") is not None:
            return key
        depths = [layer for layer in self.viewer.layers
                  if layer.metadata.get(md.ROLE) == "depth" and layer.metadata.get(md.INPUT) is not None]
        return depths[-1].metadata.get(md.INPUT) if depths else None

    def show_height_3d(self, key: str | None = None) -> Any:
        """Show the height map of input `key` as a 3D surface (see :meth:`.height_view.HeightView.show`).

        The mesh is built on a worker thread; ``height_view.shown`` is
        emitted with the Surface layer when it is in the viewer.

        Parameters
        ----------
        key : str, optional
            The input layer's name (default: the chosen input, else the last result).

        Returns
        -------
        worker or None
            None when there is no height map to show (the status says so).
        """
        return self.height_view.show(key)


# --------------------------------------------------------------------- helpers


def _row(label: str, widget: QWidget) -> QWidget:
    """`widget` with a label on its left, for rows above the magicgui form."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(QLabel(label))
    row.addWidget(widget, 1)
    return box


def _not_stackable(reasons: list[tuple[str, str]]) -> str:
    """Why the image layers are not offered as inputs, in one sentence."""
    return "Not stackable: " + "; ".join(f"'{name}' is {why}" for name, why in reasons) + "."


def _look(layer: Image, name: str) -> dict:
    """A fused layer's name and the display settings it takes from its input (channel) layer."""
    if layer.rgb:
        return {"name": name}
    return {"name": name, "colormap": layer.colormap, "blending": layer.blending,
            "contrast_limits": list(layer.contrast_limits), "gamma": layer.gamma}


def _flat_depth(job: _Job, result: Any) -> str | None:
    """Why a depth map that is the same everywhere is suspect (the wrong z axis), or None when it varies."""
    heights = np.asarray(getattr(result, "height", None) if job.hyper is not None else result.depth)
    unit = getattr(result, "unit", "frame")
    step = getattr(getattr(result, "calibration", None), "z_step", None) if unit != "frame" else None
    span = abs(step or 1.0) * max(job.frames - 1, 1)
    maps = heights.reshape(-1, *heights.shape[-2:])
    flat = [k for k, m in enumerate(maps) if not np.isfinite(m).any() or np.nanmax(m) - np.nanmin(m) <= 1e-3 * span]
    if not flat:
        return None
    value = float(np.nanmean(maps[flat[0]])) if np.isfinite(maps[flat[0]]).any() else float("nan")
    where = "" if len(maps) == 1 else f" in {len(flat)} of {len(maps)} z-stacks"
    z = job.axes.axis_labels[job.axes.z] if job.axes is not None and job.axes.axis_labels else "z"
    return (f"the depth map is flat ({value:.4g} {unit} everywhere{where}): no plane was sharper than another. "
            f"Is '{z}' the focus axis? Choose it under 'Z axis'")


def _stack_job(job: _Job, options: EngineOptions, cancel: threading.Event, progress) -> _Outcome:
    """Worker-thread body: plan and run the job (one z-stack, or every z-stack of N-D data), then optionally warp.

    The job layer fits the memory (tiles when it is short) as for the
    command line. A :class:`FocusStackError` (including :class:`Cancelled`)
    is returned to be shown; any other exception propagates: it is a bug.
    """
    try:
        data = job.hyper if job.hyper is not None else job.source
        plan = plan_job(Job(data, options, channel=job.channel, depth=True))
        result = run_job(plan, progress=progress, cancel=cancel).result
        aligned = None
        if job.aligned and job.hyper is None:
            aligned = _aligned_stack(plan.stacker, job.source, result, cancel, progress)
    except FocusStackError as exc:
        return _Outcome(error=exc)
    return _Outcome(result=result, aligned=aligned, notes=plan.notes)


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
