"""Messages for the user: napari notifications when napari is there, warnings otherwise."""
from __future__ import annotations

import warnings

__all__ = ["notify"]


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
