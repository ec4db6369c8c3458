"""The ``layer.metadata`` keys the plugin writes and reads, in one place.

The reader and the sample data put the frame keys on stack layers; the Focus
stack widget reads them (so results keep the camera's EXIF and ICC profile)
and writes the result keys on the layers it makes; the writer reads EXIF, ICC
and the input paths (never to be overwritten) from any layer.
"""
from __future__ import annotations

__all__ = [
    "BATCH", "CHANNEL", "CHANNEL_GROUP", "CHANNEL_LAYERS", "EXAGGERATION", "EXIF", "FRAME_EXIF", "HEIGHT_UNIT",
    "ICC", "INPUT", "NAMES", "PATH", "PATHS", "REPORT", "REPORTS", "ROLE", "ROLES", "SOURCE", "TRUE_DEPTH",
    "TRUE_TRANSFORMS", "Z0", "Z_AXIS", "Z_STEP",
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
#: Channel layers read from one file: the file (and series) they share, so that
#: the widget offers to fuse them together.
CHANNEL_GROUP = "channel_group"

# ---- result layers (Focus stack widget)
#: What a result layer holds: one of :data:`ROLES` (or :data:`TRUE_DEPTH` for the sample's truth).
ROLE = "focus_stack_role"
ROLES = ("fused", "depth", "confidence", "aligned", "surface", "retouch")
TRUE_DEPTH = "true depth"
#: The input a result belongs to (the input layer's name): a rerun replaces that input's results.
INPUT = "focus_stack_input"
#: The engine's report (per-frame alignment, excluded frames, timings); of the first z-stack for N-D inputs.
REPORT = "focus_stack_report"
#: N-D inputs: the report of every z-stack (time point...), in loop order.
REPORTS = "focus_stack_reports"
#: Fused channel layers: the channel's index among the layers fused together.
CHANNEL = "focus_stack_channel"
#: N-D results: the names of the input layers fused together (the channel layers, or the input alone).
CHANNEL_LAYERS = "focus_stack_channel_layers"
#: The input's z axis (a click on a result moves that slider).
Z_AXIS = "focus_stack_z_axis"
#: Depth layers: the unit of their values, "frame" for fractional frame indices, else a length ("µm").
HEIGHT_UNIT = "focus_stack_height_unit"
#: Depth layers in a length unit: height of the first plane and z step (height = Z0 + index * Z_STEP).
Z0 = "focus_stack_z0"
Z_STEP = "focus_stack_z_step"
#: Surface layers: the 3D view's vertical exaggeration (the layer's z scale; the vertices keep true heights).
EXAGGERATION = "vertical_exaggeration"

# ---- layers opened by the Batch widget
#: The stack a batch result belongs to.
BATCH = "focus_stack_batch"
#: The file a batch result was read from.
PATH = "path"
