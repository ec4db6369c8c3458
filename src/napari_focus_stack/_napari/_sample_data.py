"""Sample data: a synthetic focus stack with its ground truth.

The stack comes from :func:`napari_focus_stack.synthetic.make_stack`: frames
focused at increasing depth, with focus breathing, small shifts and exposure
drift. Two hidden layers hold what a perfect result would be: the
all-in-focus image and the true depth (frame index) in reference geometry, so
that the widget's fused image and depth map can be compared with them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["make_sample_data", "SAMPLE_SHAPE", "SAMPLE_FRAMES"]

SAMPLE_SHAPE = (384, 512)
SAMPLE_FRAMES = 8


def make_sample_data(
    scene: str = "astronaut", shape: tuple[int, int] = SAMPLE_SHAPE, n_frames: int = SAMPLE_FRAMES, seed: int = 0
) -> list[tuple[Any, dict, str]]:
    """Return the synthetic stack, its all-in-focus truth and its true depth.

    Parameters
    ----------
    scene : str
        One of :data:`napari_focus_stack.synthetic.SCENES`.
    shape : (int, int)
        Frame size (rows, columns).
    n_frames : int
        Number of frames.
    seed : int
        Random seed of the geometry, exposure and noise.

    Returns
    -------
    list of (data, kwargs, "image")
        The stack ``(Z, Y, X, 3)`` uint8, then the hidden truth and true depth
        layers (turbo colormap, contrast limits ``0..n_frames-1``, like the
        widget's depth map).
    """
    import numpy as np

    from ..synthetic import make_stack
    from . import layer_metadata as md

    stack = make_stack(scene=scene, shape=shape, n_frames=n_frames, seed=seed)
    n = stack.n_frames
    frames = np.stack(stack.frames)
    names = [f"synthetic_{k + 1:03d}" for k in range(n)]
    stack_kwargs = {
        "name": "synthetic stack",
        "rgb": frames.ndim == 4,
        "axis_labels": ("z", "y", "x"),
        "metadata": {
            md.SOURCE: f"synthetic.make_stack({scene!r}, shape={tuple(shape)}, n_frames={n}, seed={seed})",
            md.NAMES: names,
            md.PATHS: [None] * n,
            md.EXIF: None,
            md.ICC: None,
            md.FRAME_EXIF: [None] * n,
            md.TRUE_TRANSFORMS: [np.asarray(m) for m in stack.transforms],
        },
    }
    truth_kwargs = {"name": "synthetic truth (all in focus)", "rgb": stack.truth.ndim == 3, "visible": False}
    depth_kwargs = {
        "name": "synthetic true depth",
        "colormap": "turbo",
        "contrast_limits": [0.0, float(max(n - 1, 1))],
        "visible": False,
        "metadata": {md.ROLE: md.TRUE_DEPTH},
    }
    return [
        (frames, stack_kwargs, "image"),
        (stack.truth, truth_kwargs, "image"),
        (stack.depth_index.astype(np.float32), depth_kwargs, "image"),
    ]
