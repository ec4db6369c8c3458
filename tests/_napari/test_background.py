"""The dock widgets' shared background run (_napari.background): start once, cancel, stop when closed."""
from __future__ import annotations

import pytest

from napari_focus_stack._napari.background import BackgroundRun
from napari_focus_stack._napari.batch_widget import BatchWidget
from napari_focus_stack._napari.stack_widget import FocusStackWidget


@pytest.mark.parametrize("cls", [FocusStackWidget, BatchWidget])
def test_closing_the_dock_cancels_the_run(viewer, qtbot, cls):
    from qtpy.QtCore import QCoreApplication, QEvent

    widget = cls(viewer)
    assert isinstance(widget, BackgroundRun) and widget.worker is None
    flag = widget._cancel
    assert not flag.is_set()
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert flag.is_set()  # a worker still running sees it after its current frame


@pytest.mark.parametrize("cls", [FocusStackWidget, BatchWidget])
def test_cancel_without_a_run_does_nothing(viewer, cls):
    widget = cls(viewer)
    widget.cancel()
    assert not widget._cancel.is_set()
    widget.deleteLater()
