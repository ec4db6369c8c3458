"""Resume markers: what a finished stack leaves behind so that a rerun can skip it.

Each stack gets ``.napari-focus-stack/<stack>.json`` in the output folder,
written atomically, first with ``"state": "started"`` and, once every
output is in place, ``"done"`` with the outputs' sizes, the stack's report
entry and its alignment. The marker also holds a hash of everything that
shapes the result (engine parameters, output format, the input files'
names, sizes and dates): a rerun skips a stack only when the hash matches
and every output still has its recorded size.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import OutputError
from ..io import write_text


class MarkedTask(Protocol):
    """What a marker records of a stack's task (:class:`~napari_focus_stack.batch.task.StackTask`)."""

    name: str
    output_dir: str
    outputs: dict[str, str]
    params_hash: str

    @property
    def marker(self) -> Path: ...


__all__ = [
    "MARKER_VERSION",
    "STATE_DIR",
    "file_fingerprint",
    "is_complete",
    "json_safe",
    "params_hash",
    "read_marker",
    "write_marker",
]

#: Hidden folder, inside the output folder, that holds the per-stack done-markers.
STATE_DIR = ".napari-focus-stack"
MARKER_VERSION = 1


def json_safe(x: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy -> Python, paths -> str."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def file_fingerprint(paths: Iterable[str | os.PathLike]) -> list:
    """``[name, size, whole-second mtime]`` per file (None for what cannot be read)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([Path(p).name, st.st_size, int(st.st_mtime)])
        except OSError:
            out.append([Path(p).name, None, None])
    return out


def params_hash(payload: Any) -> str:
    """A short, stable hash of a JSON-able payload."""
    text = json.dumps(json_safe(payload), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def write_marker(
    task: MarkedTask, state: str, sizes: dict | None = None, entry: dict | None = None, transforms=None
) -> None:
    """Record `task`'s state (``"started"`` or ``"done"``) atomically.

    Raises
    ------
    OutputError
        The marker cannot be written.
    """
    out = Path(task.output_dir)
    data: dict[str, Any] = {
        "version": MARKER_VERSION,
        "stack": task.name,
        "state": state,
        "params": task.params_hash,
        "outputs": {k: os.path.relpath(v, out) for k, v in task.outputs.items()},
    }
    if sizes is not None:
        data["sizes"] = sizes
    if entry is not None:
        data["entry"] = entry
    if transforms is not None:
        data["transforms"] = [None if m is None else np.asarray(m).tolist() for m in transforms]
    try:
        task.marker.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create {task.marker.parent} ({exc.strerror or exc}); check the output folder."
        ) from exc
    write_text(task.marker, json.dumps(json_safe(data), indent=1))


def read_marker(path: str | os.PathLike) -> dict | None:
    """A marker's content, or None when it is missing, unreadable or of another version."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MARKER_VERSION else None


def is_complete(task: MarkedTask, marker: dict | None) -> bool:
    """`task` finished with the same parameters and its outputs are still there, at their sizes."""
    if not marker or marker.get("state") != "done" or marker.get("params") != task.params_hash:
        return False
    sizes = marker.get("sizes", {})
    if set(sizes) != set(task.outputs):
        return False
    for kind, path in task.outputs.items():
        try:
            if os.stat(path).st_size != sizes[kind]:
                return False
        except OSError:
            return False
    return True
