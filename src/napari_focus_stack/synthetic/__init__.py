"""Physically based synthetic focus stacks with ground truth.

A scene is a texture (a bundled scikit-image photograph or a procedural
pattern) painted on a relief: a sloped, bumpy background with one or two raised
objects whose outlines are sharp depth discontinuities. Each frame is focused
at a different depth. Defocus follows a thin-lens model (blur radius linear in
the distance to the focal plane, pillbox point spread function) and is
rendered by depth layers composited far to near, so the blur of a defocused
near object spills over the background behind it, as in a real lens.

Optionally, thin structures (hairs, bristles, wires) hang far in front of
the scene, where stackers leave halos.

Frames then get what a real camera adds: focus breathing (scale), small
rotations and shifts, per-channel exposure gain, noise (read noise and,
optionally, shot noise), quantisation and, optionally, JPEG compression. Everything the stacker should recover is kept
as ground truth: the all-in-focus image, the fractional in-focus frame index
of every pixel and the true frame transforms.

Examples
--------
>>> from napari_focus_stack.synthetic import make_stack
>>> stack = make_stack("pcb", shape=(96, 128), n_frames=5, seed=1)
>>> len(stack.frames), stack.frames[0].shape, stack.frames[0].dtype
(5, (96, 128, 3), dtype('uint8'))
>>> float(stack.depth_index.min()) >= 0.0 and float(stack.depth_index.max()) <= 4.0
True
"""
from __future__ import annotations

from .scans import TurntableScan, make_turntable_scan, save_turntable_scan
from .scenes import OCCLUDERS, SCENES
from .stacks import SyntheticHyperstack, SyntheticStack, make_hyperstack, make_stack, oracle_composite, save_stack

__all__ = [
    "OCCLUDERS",
    "SCENES",
    "SyntheticHyperstack",
    "SyntheticStack",
    "TurntableScan",
    "make_hyperstack",
    "make_stack",
    "make_turntable_scan",
    "oracle_composite",
    "save_stack",
    "save_turntable_scan",
]
