"""The "Batch" dock widget: a folder of stacks, one sharp image per stack.

One widget for both kinds of input: photos (an OpenScan scan, numbered
files, subfolders or a pattern) and microscope files (one ImageJ or
OME-TIFF z-stack or hyperstack per file). Choose the input folder and an
output folder (by default a folder next to the input, ``<input>-stacked``;
an OpenScan3 project or scan folder keeps the firmware's layout,
``scanNN/stacked/``); the stacks found there are listed in a table with
their frames (a microscope file's z planes and time points) and what will
happen to each (run, already complete, cannot run). Microscope data writes
its height maps by default. Run stacks them all in a worker thread, in this
process or on a local Dask cluster, with overall and per-stack progress and
Cancel; double-click a row (or use Open result) to open its result as
layers, calibrated results through the plugin's reader (pixel size, z,
units, channel colours, the height map in turbo). Everything else (resume,
EXIF, reports, no data lost) is :func:`napari_focus_stack.batch.run_batch`.
With Watch, Run keeps watching the folder until Cancel and stacks each stack
as soon as it is complete (:func:`napari_focus_stack.batch.watch_batch`),
the table growing as stacks arrive.

The engine options are the shared magicgui form (:mod:`.engine_form`),
folded away by default so that the table keeps its rows at a normal dock
size. A
:class:`~napari_focus_stack.errors.FocusStackError` is shown in the widget
and as a notification; any other exception is a bug and is raised with its
traceback.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..batch import BatchOptions, plan_batch, run_batch, watch_batch
from ..batch.watch import SETTLE_S
from ..errors import FocusStackError
from ..grouping import MODES, Plan
from ..io import is_hyperstack_file, plane_count, read_hyperstack, read_image
from ..io.calibrated_image import is_calibrated_image
from . import layer_metadata as md
from ._notify import defuse_notification_timers, notify
from ._reader import read_stacks
from .background import BackgroundRun
from .engine_form import EngineForm

if TYPE_CHECKING:
    import napari

    from ..batch import BatchResult, StackJob

__all__ = ["BatchWidget"]

_COLUMNS = ("stack", "frames", "status", "progress", "output")
_STATE_TEXT = {"run": "to do", "skip": "complete", "fail": "cannot run"}
_PROGRESS_STEPS = 1000
#: The default output folder: ``<input><DEFAULT_SUFFIX>`` next to the input folder, never inside it.
DEFAULT_SUFFIX = "-stacked"
#: Table rows the widget keeps room for.
TABLE_ROWS = 6


class _Bridge(QObject):
    """Carries callbacks from the batch thread to the GUI thread (queued signals)."""

    progress = Signal(str, int, int, str)
    stack = Signal(object)


class BatchWidget(BackgroundRun, QWidget):
    """Dock widget that focus-stacks every stack of a scan folder.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Results are opened as layers of this viewer.

    Attributes
    ----------
    run_finished : Signal(str)
        Emitted after each run with ``"done"`` (no stack failed),
        ``"failed"`` (some did), ``"cancelled"`` or ``"error"`` (nothing ran).
    plan : Plan or None
        The stacks found by the last :meth:`detect`.
    result : BatchResult or None
        The last run's result.
    """

    run_finished = Signal(str)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._init_run()
        self.plan: Plan | None = None
        self.jobs: list[StackJob] = []
        self.result: BatchResult | None = None
        self.entries: dict[str, dict] = {}
        self._rows: dict[str, int] = {}
        self._partial: dict[str, float] = {}
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._bridge.stack.connect(self._on_stack)
        self._status = "error"
        self._build()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        folders = QFormLayout()
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("a folder of stacks: photos (OpenScan...) or microscope files")
        self.input_edit.editingFinished.connect(self._input_changed)
        folders.addRow("Input folder", _with_button(self.input_edit, "Browse...", self._browse_input))
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText(f"default: <input>{DEFAULT_SUFFIX} beside it")
        self.output_edit.editingFinished.connect(self.detect)
        folders.addRow("Output folder", _with_button(self.output_edit, "Browse...", self._browse_output))

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODES))
        self.mode_combo.setToolTip(
            "auto: OpenScan names <name>_<pose>-<frame>, else one stack per subfolder, else numbered files cut "
            "into stacks of 'Stack size', else one stack"
        )
        self.stack_size_spin = QSpinBox()
        self.stack_size_spin.setRange(0, 999)
        self.stack_size_spin.setSpecialValueText("auto")
        self.stack_size_spin.setToolTip(
            "Frames per stack: needed for numbered files, checked otherwise (auto: from the names)")
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText(r"regex, e.g. (?P<stack>.+)_z(?P<frame>\d+)")
        grouping = QHBoxLayout()
        grouping.addWidget(self.mode_combo)
        grouping.addWidget(QLabel("Stack size"))
        grouping.addWidget(self.stack_size_spin)
        folders.addRow("Stacks", grouping)
        folders.addRow("Pattern", self.pattern_edit)
        for signal in (self.mode_combo.currentIndexChanged, self.stack_size_spin.valueChanged):
            signal.connect(self.detect)
        self.pattern_edit.editingFinished.connect(self.detect)

        self.detect_button = QPushButton("Detect stacks")
        self.detect_button.clicked.connect(self.detect)
        self.plan_label = QLabel("Choose the scan folder.")
        self.plan_label.setWordWrap(True)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #e8a33d;")
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._open_row(row))
        self.table.setToolTip("Double-click a finished stack to open its result as a layer")
        rows = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + TABLE_ROWS * rows + 4)

        options = QGroupBox("Options")
        box = QVBoxLayout(options)
        self.engine = EngineForm()
        self.engine.margins = (0, 0, 0, 0)
        self.engine_toggle = QToolButton()
        self.engine_toggle.setText("Engine options (method, radius, device...)")
        self.engine_toggle.setCheckable(True)
        self.engine_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.engine_toggle.setStyleSheet("QToolButton { border: none; }")
        self.engine_toggle.toggled.connect(self._show_engine)
        box.addWidget(self.engine_toggle)
        box.addWidget(self.engine.native)
        self._show_engine(False)  # folded: the defaults suit most scans, and the table keeps its rows
        form = QFormLayout()
        box.addLayout(form)
        self.format_combo = QComboBox()
        for label, value in (("same as the frames", None), ("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")):
            self.format_combo.addItem(label, value)
        form.addRow("Format", self.format_combo)
        self.bit_depth_combo = QComboBox()
        for label, value in (("same as the frames", None), ("8-bit", 8), ("16-bit (PNG, TIFF)", 16)):
            self.bit_depth_combo.addItem(label, value)
        form.addRow("Bit depth", self.bit_depth_combo)
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.workers_spin.setValue(1)
        self.workers_spin.setToolTip("1: stacks run in napari's process; more: a local Dask cluster of processes")
        form.addRow("Workers", self.workers_spin)
        self.reuse_check = QCheckBox("Reuse the alignment")
        self.reuse_check.setToolTip("Estimate the alignment on a few stacks and reuse it (turntable scans)")
        self.depth_check = QCheckBox("Write depth maps")
        self.depth_check.setToolTip("<stack>_depth.tif: heights in the z unit for microscope data (on by default)")
        self._depth_chosen = False  # the user ticked or unticked it: no default any more
        self.depth_check.clicked.connect(lambda *_: setattr(self, "_depth_chosen", True))
        self.confidence_check = QCheckBox("Write confidence maps")
        self.overwrite_check = QCheckBox("Overwrite")
        self.overwrite_check.setToolTip("Recompute complete stacks and replace existing files")
        self.watch_check = QCheckBox("Watch the folder")
        self.watch_check.setToolTip(
            "Run keeps watching until Cancel and stacks each stack as soon as it is complete (a scan being shot): "
            f"when a later stack's frame arrives, or after {SETTLE_S:g} s without a new frame; its row appears "
            "when it is stacked"
        )
        for box in (self.reuse_check, self.depth_check, self.confidence_check, self.overwrite_check):
            form.addRow("", box)
            box.toggled.connect(self.detect)
        form.addRow("", self.watch_check)
        self.watch_check.toggled.connect(self.detect)
        for combo in (self.format_combo, self.bit_depth_combo):
            combo.currentIndexChanged.connect(self.detect)

        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open result")
        self.open_button.clicked.connect(lambda: self._open_row(self.table.currentRow()))
        buttons = QHBoxLayout()
        for b in (self.detect_button, self.run_button, self.cancel_button, self.open_button):
            buttons.addWidget(b)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(folders)
        layout.addWidget(self.plan_label)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.table, 1)
        scroll = QScrollArea()  # a short dock scrolls the options instead of squeezing the table
        scroll.setWidget(options)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.options_area = scroll
        layout.addWidget(scroll)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._fit_options()

    def _fit_options(self) -> None:
        """Room for the options as they are folded (styled by now): unfolded, they scroll."""
        if not self.engine_toggle.isChecked():
            self.options_area.setMinimumHeight(self.options_area.widget().sizeHint().height())
        # unfolded, the engine form must fit beside the scroll bar
        wide = max(self.options_area.widget().minimumSizeHint().width(), self.engine.native.sizeHint().width() + 24)
        self.options_area.setMinimumWidth(wide + self.options_area.verticalScrollBar().sizeHint().width())

    def _show_engine(self, shown: bool) -> None:
        self.engine.native.setVisible(shown)
        self.engine_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        if self.engine_toggle.isChecked() != shown:
            self.engine_toggle.setChecked(shown)

    def _browse_input(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Scan folder", self.input_edit.text())
        if folder:
            self.input_edit.setText(folder)
            self._input_changed()

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_folder() or "")
        if folder:
            self.output_edit.setText(folder)
            self.detect()

    def _input_changed(self) -> None:
        self.detect()

    # ------------------------------------------------------------ settings
    def set_folders(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> None:
        """Set the scan and output folders and detect the stacks."""
        self.input_edit.setText(str(input_dir))
        self.output_edit.setText("" if output_dir is None else str(output_dir))
        self.detect()

    def output_folder(self) -> str | None:
        """The output folder, or None without an input.

        By default a folder next to the input, ``<input>-stacked``: results
        never land among the data. An OpenScan3 project or scan folder (a
        ``scanNN`` folder, or one holding them or ``openscan_project.json``)
        is its own default: the firmware's layout puts results in
        ``scanNN/stacked/``.
        """
        text = self.output_edit.text().strip()
        if text:
            return text
        inp = self.input_edit.text().strip()
        if not inp:
            return None
        folder = Path(inp).expanduser()
        if _is_openscan3(folder):
            return str(folder)
        return str(folder.with_name(folder.name + DEFAULT_SUFFIX)) if folder.name else str(folder / "stacked")

    def options(self) -> BatchOptions:
        """The :class:`BatchOptions` the widget is set to."""
        return BatchOptions(
            **self.engine.kwargs(),
            format=self.format_combo.currentData(),
            bit_depth=self.bit_depth_combo.currentData(),
            depth_maps=self.depth_check.isChecked(),
            confidence_maps=self.confidence_check.isChecked(),
            reuse_alignment=self.reuse_check.isChecked(),
            overwrite=self.overwrite_check.isChecked(),
            workers=self.workers_spin.value(),
        )

    # -------------------------------------------------------------- detect
    def detect(self, *_: Any) -> Plan | None:
        """Find the stacks in the input folder and list them with what will happen to each."""
        if self.worker is not None:
            return self.plan
        inp = self.input_edit.text().strip()
        self.plan, self.jobs = None, []
        self.table.setRowCount(0)
        self.problems_label.setText("")
        if not inp:
            self.plan_label.setText("Choose the scan folder.")
            return None
        try:
            options = self.options()
            options.validate()
            self.plan, self.jobs = plan_batch(inp, self.output_folder(), options, **self._grouping())
        except FocusStackError as exc:
            self.plan_label.setText(f"Error: {exc}")
            return None
        plan = self.plan
        if not self._depth_chosen and not self.depth_check.isChecked() and _microscope_files(self.jobs):
            # microscope data: the height map is half the result; ticked by default (the plan follows)
            self.depth_check.blockSignals(True)
            self.depth_check.setChecked(True)
            self.depth_check.blockSignals(False)
            return self.detect()
        todo = sum(j.state == "run" for j in self.jobs)
        self.plan_label.setText(
            f"{len(plan.stacks)} stack(s), {todo} to do; mode {plan.mode}: {plan.reason}"
            if plan.stacks
            else "No stacks found."
        )
        self.problems_label.setText("\n".join(f"{p.kind}: {p.message}" for p in plan.problems))
        self._fill_table()
        # a fatal plan never runs; a watch waits for stacks to come
        self.run_button.setEnabled((todo > 0 or self.watch_check.isChecked()) and not plan.fatal)
        return plan

    def _grouping(self) -> dict:
        """How the files of the input folder are grouped into stacks (:func:`plan_batch`'s keywords)."""
        return {
            "mode": self.mode_combo.currentText(),
            "stack_size": self.stack_size_spin.value() or None,
            "pattern": self.pattern_edit.text().strip() or None,
        }

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.jobs))
        self._rows = {}
        for row, job in enumerate(self.jobs):
            self._set_row(row, job.task.name, job.task.frames, job.task.outputs["image"], done=job.state == "skip")
            self._set_status(row, _STATE_TEXT[job.state], job.error or "\n".join(job.task.warnings))

    def _set_row(self, row: int, name: str, frames: list, output: str, done: bool = False) -> None:
        """Row `row` for stack `name`: its frame count (of the files `frames`), progress and output file."""
        self._rows[name] = row
        self.table.setItem(row, 0, QTableWidgetItem(name))
        text, tip = _frame_count(frames)
        count = QTableWidgetItem(text)
        count.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        count.setToolTip(tip)
        self.table.setItem(row, 1, count)
        bar = QProgressBar()
        bar.setRange(0, _PROGRESS_STEPS)
        bar.setValue(_PROGRESS_STEPS if done else 0)
        bar.setTextVisible(False)
        self.table.setCellWidget(row, 3, bar)
        self.table.setItem(row, 4, QTableWidgetItem(Path(output).name))

    def _set_status(self, row: int, text: str, tip: str = "") -> None:
        item = QTableWidgetItem(text)
        if tip:
            item.setToolTip(tip)
        self.table.setItem(row, 2, item)

    def status_of(self, stack: str) -> str:
        """The status shown for `stack` in the table."""
        item = self.table.item(self._rows[stack], 2)
        return item.text() if item is not None else ""

    def progress_of(self, stack: str) -> int:
        """Per-stack progress, 0..1000."""
        return self.table.cellWidget(self._rows[stack], 3).value()

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Stack every stack of the plan in a worker thread."""
        if self.worker is not None:
            return
        plan = self.detect()
        watching = self.watch_check.isChecked()
        if plan is None or not (plan.stacks or watching) or (watching and plan.fatal):
            self.status_label.setText(self.plan_label.text())
            self.run_finished.emit("error")
            return
        self.entries, self._partial = {}, {}
        self.result = None
        defuse_notification_timers()  # a napari 0.9 toast bug would slow the engine
        self.progress_bar.setValue(0)
        self.run_button.setEnabled(False)
        self.detect_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if watching:  # the folder, grouped as detect() groups it: stacks are planned as they complete
            self.status_label.setText("Watching the folder: each stack is stacked when complete. Cancel to stop.")
            what, how = self.input_edit.text().strip(), {**self._grouping(), "watch": True}
        else:
            self.status_label.setText(f"Stacking {len(plan.stacks)} stacks...")
            what, how = plan, {}
        # an exception other than FocusStackError is a bug: the widget says so and napari re-raises it
        self._start(
            _run_batch, what, self.output_folder(), self.options(), progress=self._bridge.progress.emit,
            on_stack=self._bridge.stack.emit, cancel=self._cancel, **how,
        )

    def _show_cancelling(self) -> None:
        # the batch stops once the stack in progress has stopped after its current frame
        self.status_label.setText("Cancelling...")

    def _on_progress(self, stack: str, done: int, total: int, stage: str) -> None:
        row = self._rows.get(stack)
        if row is None or total <= 0:
            return
        frac = min(1.0, done / total)
        self._partial[stack] = frac
        self.table.cellWidget(row, 3).setValue(int(frac * _PROGRESS_STEPS))
        if stack not in self.entries:
            self._set_status(row, f"{'aligning' if stage == 'align' else 'fusing'}")
        self._update_overall()

    def _on_stack(self, entry: dict) -> None:
        name = entry["stack"]
        self.entries[name] = entry
        row = self._rows.get(name)
        if row is None:  # a stack that arrived while watching
            row = self._append_row(entry)
        status = entry["status"]
        tip = entry.get("error") or "\n".join(entry.get("warnings") or [])
        text = status if not entry.get("excluded") else f"{status} ({len(entry['excluded'])} excluded)"
        self._set_status(row, text, tip)
        self.table.cellWidget(row, 3).setValue(_PROGRESS_STEPS if status in ("done", "skipped") else 0)
        self._partial[name] = 1.0
        self._update_overall()

    def _append_row(self, entry: dict) -> int:
        """A row for a stack that was not there when the run started (a watch)."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        names = entry.get("frames") or []
        path = Path(self.input_edit.text().strip(), names[0]) if len(names) == 1 else None
        frames = [str(path)] if path is not None and path.is_file() else names
        self._set_row(row, entry["stack"], frames, (entry.get("outputs") or {}).get("image", ""))
        return row

    def _update_overall(self) -> None:
        n = max(1, len(self._rows))
        self.progress_bar.setValue(int(_PROGRESS_STEPS * sum(self._partial.values()) / n))

    def _on_returned(self, outcome: tuple[BatchResult | None, FocusStackError | None]) -> None:
        result, error = outcome
        if error is not None:
            self.status_label.setText(f"Error: {error}")
            notify(f"Batch failed: {error}", "error")
            self._status = "error"
            return
        self.result = result
        c = result.counts
        self.status_label.setText(
            f"{c['done']} done, {c['skipped']} already complete, {c['failed']} failed, {c['cancelled']} cancelled "
            f"in {result.elapsed_s:.1f} s. Report: {result.report_json}"
        )
        if c["failed"]:
            failed = [e["stack"] for e in result.stacks if e["status"] == "failed"]
            notify(f"{len(failed)} stack(s) failed: {', '.join(failed[:10])} (see the table and the report).",
                   "warning")
        self._status = "cancelled" if self._cancel.is_set() else ("failed" if c["failed"] else "done")

    def _on_errored(self, exc: Exception) -> None:
        # a bug, re-raised by napari with its traceback; the widget only says so
        self.status_label.setText(f"Failed with an unexpected error (see the traceback): {exc!r}")
        self._status = "error"

    def _on_finished(self) -> None:
        defuse_notification_timers()
        self.worker = None
        status, self._status = self._status, "error"
        self.run_button.setEnabled(True)
        self.detect_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.run_finished.emit(status)

    # ------------------------------------------------------------- results
    def _open_row(self, row: int) -> None:
        item = self.table.item(row, 0) if row >= 0 else None
        if item is not None:
            try:
                self.open_result(item.text())
            except FocusStackError as exc:
                notify(str(exc), "warning")

    def open_result(self, stack: str) -> list:
        """Open the result of `stack` (and its depth/confidence maps, hidden) as layers.

        Calibrated results (microscope data) open through the plugin's
        reader: pixel size, the single z plane, units, one layer per
        channel in its colour, the height map in turbo in its unit.

        Returns
        -------
        list of napari layers

        Raises
        ------
        FocusStackError
            The stack has no result on disk yet.
        """
        job = next((j for j in self.jobs if j.task.name == stack), None)
        outputs = job.task.outputs if job is not None else (self.entries.get(stack) or {}).get("outputs")
        if not outputs:
            raise FocusStackError(f"{stack} is not a stack of this batch")
        layers = []
        for kind, path in outputs.items():
            if not Path(path).is_file():
                if kind == "image":
                    raise FocusStackError(
                        f"{stack} has no result yet ({Path(path).name} does not exist); run the batch"
                    )
                continue
            if is_calibrated_image(path):
                for data, kwargs, _ in read_stacks(str(path)):
                    channel = kwargs["name"][len(Path(path).stem):].strip() if kind == "image" else ""
                    kwargs["name"] = " ".join(filter(None, (stack, channel if kind == "image" else kind)))
                    kwargs["metadata"] = {**kwargs["metadata"], md.PATH: str(path), md.BATCH: stack}
                    layer = self.viewer.add_image(data, visible=kind == "image", **kwargs)
                    layers.append(layer)
                continue
            data, meta = read_image(path)
            metadata = {md.PATH: str(path), md.EXIF: meta.exif, md.ICC: meta.icc, md.BATCH: stack}
            if kind == "image":
                layer = self.viewer.add_image(data, name=stack, rgb=data.ndim == 3, metadata=metadata)
            else:
                layer = self.viewer.add_image(
                    data, name=f"{stack} {kind}", metadata=metadata, visible=False,
                    colormap="turbo" if kind == "depth" else "gray",
                )
            layers.append(layer)
        if layers:
            self.viewer.layers.selection.active = layers[0]
        return layers


def _is_openscan3(folder: Path) -> bool:
    """An OpenScan3 scan folder (``scanNN``) or project (``scanNN`` subfolders, ``openscan_project.json``)."""
    if re.fullmatch(r"scan\d+", folder.name, re.IGNORECASE):
        return True
    try:
        return (folder / "openscan_project.json").is_file() or any(
            p.is_dir() and re.fullmatch(r"scan\d+", p.name, re.IGNORECASE) for p in folder.iterdir())
    except OSError:
        return False


def _microscope_files(jobs: list) -> bool:
    """Whether the stacks are microscope files (one ImageJ/OME-TIFF or OME-Zarr per stack)."""
    tasks = [j.task for j in jobs]
    return bool(tasks) and all(len(t.frames) == 1 and is_hyperstack_file(t.frames[0]) for t in tasks)


def _frame_count(frames: list[str]) -> tuple[str, str]:
    """The table's frame count of a stack and its tooltip: files, or a microscope file's z planes and time points."""
    if len(frames) != 1:
        return str(len(frames)), "\n".join(Path(f).name for f in frames)
    path = frames[0]
    name = Path(path).name
    try:
        with read_hyperstack(path) as hs:
            nz, stacks, channels = hs.size("Z"), len(hs.loop_indices()), hs.n_channels
    except FocusStackError:
        n = plane_count(path)
        return str(n or 1), f"{name}: {n} planes" if n > 1 else name
    parts = [f"{nz} z planes"] + ([f"{stacks} time points"] if stacks > 1 else []) + (
        [f"{channels} channels"] if channels > 1 else [])
    return (f"{nz} × {stacks}" if stacks > 1 else str(nz)), f"{name}: " + ", ".join(parts)


def _with_button(edit: QLineEdit, text: str, slot) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QPushButton(text)
    button.clicked.connect(slot)
    row.addWidget(button)
    return box


def _run_batch(*args: Any, watch: bool = False, **kwargs: Any) -> tuple[BatchResult | None, FocusStackError | None]:
    """Worker-thread body: :func:`run_batch` (or :func:`watch_batch`) -> ``(result, None)``, or ``(None, error)``
    for a user error.

    Any other exception propagates: it is a bug. (The error is not returned
    bare: superqt's worker raises a returned exception.)
    """
    try:
        return (watch_batch if watch else run_batch)(*args, **kwargs), None
    except FocusStackError as exc:
        return None, exc
