"""Messages for the user: napari notifications when napari is there, warnings otherwise."""
from __future__ import annotations

import warnings

__all__ = ["notify", "defuse_notification_timers"]


def notify(message: str, severity: str = "warning") -> None:
    """Show `message` as a napari notification (or a Python warning without napari).

    Parameters
    ----------
    message : str
        What to tell the user; engine messages already name the file and say
        what to do.
    severity : {"info", "warning", "error"}
        Notification level.
    """
    try:
        from napari.utils import notifications
    except ImportError:  # the reader and writer also work without napari
        if severity != "info":
            warnings.warn(message, stacklevel=2)
        return
    show = {
        "info": notifications.show_info,
        "warning": notifications.show_warning,
        "error": notifications.show_error,
    }[severity]
    show(message)


def defuse_notification_timers() -> None:
    """Work around a napari 0.9 bug that turns a notification toast into a busy loop.

    ``NapariQtNotification.show()`` returns early when the main window is not
    active (always so under Xvfb, and whenever a toast pops up while the user
    is in another application), leaving its dismiss timer at interval 0 and
    repeating. When the window gains focus or the mouse leaves the toast the
    timer starts and fires continuously; napari's Python event filter then
    holds the GIL hundreds of thousands of times a second and the engine's
    worker threads run two to five times slower. Giving such timers the
    interval and single shot that ``show()`` meant to set restores the
    intended behaviour (the toast fades out after its delay).
    """
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        toasts = list(NapariQtNotification._instances)
    except (ImportError, AttributeError):  # napari changed: nothing to fix
        return
    for toast in toasts:
        timer = getattr(toast, "timer", None)
        delay = getattr(toast, "DISMISS_AFTER", 0)
        if timer is None or timer.isSingleShot() or timer.interval() != 0 or delay <= 0:
            continue
        active = timer.isActive()
        timer.stop()
        timer.setSingleShot(True)
        timer.setInterval(delay)
        timer.timeout.connect(toast.close_with_fade)
        if active:
            timer.start()
