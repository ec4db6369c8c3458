"""The ``layer.metadata`` keys the plugin writes and reads, in one place.

The reader and the sample data put the frame keys on stack layers; the Focus
stack widget reads them (so results keep the camera's EXIF and ICC profile)
and writes the result keys on the layers it makes; the writer reads EXIF, ICC
and the input paths (never to be overwritten) from any layer.
"""
from __future__ import annotations

__all__ = [
    "BATCH", "EXIF", "FRAME_EXIF", "ICC", "INPUT", "NAMES", "PATH", "PATHS", "REPORT", "ROLE", "ROLES",
    "SOURCE", "TRUE_DEPTH", "TRUE_TRANSFORMS",
]

# ---- stack layers (reader, sample data) and results that keep them
#: Frame names, one per Z plane (results: the frames that were stacked).
NAMES = "names"
#: Frame files, one per Z plane (None for frames from arrays); the writer refuses to overwrite them.
PATHS = "paths"
#: EXIF bytes of the middle frame (the engine's default reference); results: of the reference frame.
EXIF = "exif"
#: ICC profile bytes, copied into written results.
ICC = "icc"
#: EXIF bytes of every frame.
FRAME_EXIF = "frame_exif"
#: The folder or file that was opened.
SOURCE = "source"
#: Sample data: the true reference->frame matrices of the synthetic stack.
TRUE_TRANSFORMS = "true_transforms"

# ---- result layers (Focus stack widget)
#: What a result layer holds: one of :data:`ROLES` (or :data:`TRUE_DEPTH` for the sample's truth).
ROLE = "focus_stack_role"
ROLES = ("fused", "depth", "confidence", "aligned")
TRUE_DEPTH = "true depth"
#: The input a result belongs to (the input layer's name): a rerun replaces that input's results.
INPUT = "focus_stack_input"
#: The engine's report (per-frame alignment, excluded frames, timings).
REPORT = "focus_stack_report"

# ---- layers opened by the Batch widget
#: The stack a batch result belongs to.
BATCH = "focus_stack_batch"
#: The file a batch result was read from.
PATH = "path"
