"""Where a layer's z-stacks are, and where its results go (no Qt, no napari).

A napari image layer has ``ndim`` axes (an RGB layer's colour samples are
not one of them): the last two are y and x, the others are sliders. One of
the sliders is the focus axis (z): the one labelled ``"z"``, else the one
the user picks (by default the one with a length unit or a scale of its
own, else the longest: napari's own reader names a ZCYX file's axes -4..-1,
and its 2 channels are no z axis next to 9 planes). A z of 2-4 planes
beside a longer slider is suspect (:func:`suspect_z_axis`). The other
sliders are looped over: the engine fuses one z-stack per position of
them, and a slider labelled ``"c"`` holds channels fused with one decision.

napari aligns the axes of layers of different dimensionality from the
right (x with x, y with y, then whatever comes before). A result lacks the
z axis (and a height map the channel axis); dropped from the middle, the
axes before it would shift onto the wrong sliders (the time points of a
(T, Y, X) result onto the z slider of its (T, Z, Y, X) input) and napari
would warn about inconsistent units. So a result keeps such an axis with a
single plane that spans the input's whole range along it (shown at every
position of that slider); only when nothing precedes it is the axis
dropped. A (T, Z, Y, X) input thus gives (T, 1, Y, X) results, a (Z, Y, X)
input (Y, X) ones.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.calibrated import is_length_unit

__all__ = [
    "Placement",
    "default_z_axis",
    "hyperstack_letters",
    "placement",
    "suspect_z_axis",
    "to_layer_layout",
    "unstackable_reason",
    "z_axis_candidates",
]

# Letters for sliders that are neither t, z nor c (the engine loops over any letter but C, Z, Y, X, S).
_SPARE_LETTERS = "PQABDEFGHIJKLMNORUVW"


def _label(labels: Sequence[str] | None, k: int) -> str:
    return str(labels[k]).strip().lower() if labels is not None and k < len(labels) else ""


def z_axis_candidates(ndim: int) -> list[int]:
    """The axes of a layer that can be its z axis: every slider (all but y and x)."""
    return list(range(max(ndim - 2, 0)))


def default_z_axis(
    shape: Sequence[int],
    axis_labels: Sequence[str] | None = None,
    scale: Sequence[float] | None = None,
    units: Sequence[Any] | None = None,
) -> int | None:
    """The layer's z axis: labelled ``"z"``, else z-like (a length unit, a scale), else the longest slider.

    Sliders labelled ``t`` or ``c`` are z only when nothing else has 2 or
    more planes; among equals the one nearest y wins.

    Parameters
    ----------
    shape : sequence of int
        The layer's data shape without RGB samples (``ndim`` entries).
    axis_labels : sequence of str, optional
    scale, units : sequence, optional
        The layer's: a slider with a length unit (µm...), else one with a
        scale other than 1, is taken for z before a longer one.

    Returns
    -------
    int or None
        None when the layer has no slider at all (a 2-D image).

    Examples
    --------
    >>> default_z_axis((5, 30, 64, 64), ("t", "z", "y", "x")), default_z_axis((5, 30, 64, 64))
    (1, 1)
    >>> default_z_axis((9, 2, 64, 64)), default_z_axis((30, 1, 64, 64)), default_z_axis((64, 64))
    (0, 0, None)
    >>> default_z_axis((20, 6, 64, 64), scale=(1, 0.5, 0.1, 0.1))
    1
    """
    candidates = z_axis_candidates(len(shape))
    if not candidates:
        return None
    labelled = [k for k in candidates if _label(axis_labels, k) == "z"]
    if labelled:
        return labelled[0]
    deep = [k for k in candidates if shape[k] >= 2 and _label(axis_labels, k) not in ("t", "c")]
    deep = deep or [k for k in candidates if shape[k] >= 2]
    if not deep:
        return candidates[-1]
    for z_like in (
        [k for k in deep if units is not None and k < len(units) and is_length_unit(units[k])],
        [k for k in deep if scale is not None and k < len(scale) and float(scale[k]) != 1.0],
        deep,
    ):
        if z_like:
            return max(z_like, key=lambda k: (shape[k], k))
    return None  # not reached


def suspect_z_axis(shape: Sequence[int], z: int, axis_labels: Sequence[str] | None = None) -> str | None:
    """Why `z` may not be the focus axis: 2 to 4 planes while another slider has more; else None.

    A z-stack of 2-4 planes exists, but a channel (or time) axis taken for
    z is the usual cause: fused "stacks" of channels give a flat depth map.

    >>> suspect_z_axis((9, 2, 64, 64), 1)
    "z has 2 planes but axis '-4' has 9: is that the focus axis?"
    >>> suspect_z_axis((9, 2, 64, 64), 0) is None, suspect_z_axis((3, 64, 64), 0) is None
    (True, True)
    """
    sliders = z_axis_candidates(len(shape))
    if z not in sliders or not 2 <= shape[z] <= 4:
        return None
    longer = [k for k in sliders if k != z and shape[k] > shape[z]]
    if not longer:
        return None
    k = max(longer, key=lambda a: (shape[a], a))
    name = _label(axis_labels, k) or str(k - len(shape))
    return f"z has {shape[z]} planes but axis '{name}' has {shape[k]}: is that the focus axis?"


def unstackable_reason(shape: Sequence[int], axis_labels: Sequence[str] | None = None) -> str | None:
    """Why a layer of this shape cannot be focus-stacked, or None when it can.

    >>> unstackable_reason((64, 64))
    'a single 2-D image (no z axis)'
    >>> unstackable_reason((1, 64, 64))
    'a single frame (a focus stack needs 2 or more)'
    """
    candidates = z_axis_candidates(len(shape))
    if not candidates:
        return "a single 2-D image (no z axis)"
    if all(shape[k] < 2 for k in candidates):
        return "a single frame (a focus stack needs 2 or more)"
    return None


def hyperstack_letters(ndim: int, z: int, axis_labels: Sequence[str] | None = None, rgb: bool = False) -> str:
    """The engine's axes letters for a layer's data: ``Z`` at `z`, ``Y`` and ``X`` last.

    Sliders labelled ``t`` and ``c`` become ``T`` and ``C`` (channels, fused
    with one decision); any other slider gets a letter the engine loops over.
    RGB samples are ``S``.

    >>> hyperstack_letters(4, 1, ("t", "z", "y", "x")), hyperstack_letters(4, 0, ("z", "c", "y", "x"))
    ('TZYX', 'ZCYX')
    >>> hyperstack_letters(5, 2, rgb=True)
    'PQZYXS'
    """
    if not 0 <= z < ndim - 2:
        raise ValueError(f"axis {z} is not a slider of a {ndim}-D layer")
    letters = []
    spare = iter(_SPARE_LETTERS)
    for k in range(ndim - 2):
        label = _label(axis_labels, k)
        if k == z:
            letters.append("Z")
        elif label in ("t", "c") and label.upper() not in letters:
            letters.append(label.upper())
        else:
            letters.append(next(spare))
    return "".join(letters) + "YX" + ("S" if rgb else "")


@dataclass(frozen=True)
class Placement:
    """Where a result layer lies: the input's axes, less the leading ones it lacks.

    Attributes
    ----------
    axes : tuple of int
        The input axes the result layer has, in order (collapsed ones with one plane).
    collapsed : tuple of int
        The input axes the result lacks but keeps with one plane (not leading).
    scale, translate : tuple of float
        Per result axis; a collapsed axis spans the input's whole range.
    units, axis_labels : tuple or None
        The input's, per result axis (None when not given).
    """

    axes: tuple[int, ...]
    collapsed: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple | None
    axis_labels: tuple | None

    def kwargs(self) -> dict[str, Any]:
        """The napari layer keywords: scale, translate, and units and axis labels where known."""
        out: dict[str, Any] = {"scale": self.scale, "translate": self.translate}
        if self.units is not None:
            out["units"] = self.units
        if self.axis_labels is not None:
            out["axis_labels"] = self.axis_labels
        return out


def placement(
    shape: Sequence[int],
    lacks: Sequence[int],
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    units: Sequence[Any] | None = None,
    axis_labels: Sequence[str] | None = None,
) -> Placement:
    """Place a result that lacks the input axes `lacks` (z; a height map also c).

    Parameters
    ----------
    shape : sequence of int
        The input layer's shape (``ndim`` entries, no RGB samples).
    lacks : sequence of int
        Input axes the result does not have.
    scale, translate, units, axis_labels : sequence, optional
        The input layer's, one per axis.

    Returns
    -------
    Placement

    Examples
    --------
    >>> p = placement((5, 30, 64, 64), [1], scale=(1, 0.5, 0.1, 0.1), translate=(0, 2, 0, 0))
    >>> p.axes, p.collapsed, p.scale, p.translate
    ((0, 1, 2, 3), (1,), (1.0, 15.0, 0.1, 0.1), (0.0, 9.25, 0.0, 0.0))
    >>> placement((30, 64, 64), [0], scale=(0.5, 0.1, 0.1)).scale
    (0.1, 0.1)
    """
    ndim = len(shape)
    scale = tuple(float(s) for s in (scale if scale is not None else [1.0] * ndim))
    translate = tuple(float(t) for t in (translate if translate is not None else [0.0] * ndim))
    lacks = set(lacks)
    first_kept = next((k for k in range(ndim) if k not in lacks), ndim)
    axes = tuple(k for k in range(ndim) if k >= first_kept)
    collapsed = tuple(k for k in axes if k in lacks)
    new_scale = tuple(scale[k] * shape[k] if k in lacks else scale[k] for k in axes)
    # one plane centred on the range's middle covers every plane of the input
    new_translate = tuple(
        translate[k] + scale[k] * (shape[k] - 1) / 2 if k in lacks else translate[k] for k in axes
    )
    return Placement(
        axes,
        collapsed,
        new_scale,
        new_translate,
        None if units is None else tuple(units[k] for k in axes),
        None if axis_labels is None else tuple(axis_labels[k] for k in axes),
    )


def to_layer_layout(data: np.ndarray, data_axes: str, layer_axes: str, keep: Sequence[int]) -> np.ndarray:
    """Reorder a result into its layer's layout: the input's axes `keep`, absent ones of length 1.

    Parameters
    ----------
    data : ndarray
        A result with axes `data_axes` (the engine's order: loop axes, C, Y,
        X, S); trailing ``S`` (RGB samples) stays last.
    data_axes : str
    layer_axes : str
        The input layer's letters (:func:`hyperstack_letters`).
    keep : sequence of int
        Input axes the result layer has (:attr:`Placement.axes`).

    Examples
    --------
    >>> to_layer_layout(np.zeros((3, 2, 8, 9)), "TCYX", "CTZYX", [0, 1, 2, 3, 4]).shape
    (2, 3, 1, 8, 9)
    >>> to_layer_layout(np.zeros((8, 9)), "YX", "ZYX", [1, 2]).shape
    (8, 9)
    """
    wanted = [layer_axes[k] for k in keep]
    present = [a for a in wanted if a in data_axes]
    extra = [a for a in data_axes if a not in wanted and a != "S"]
    if extra:
        raise ValueError(f"result axes {data_axes!r} hold {extra} that the layer {layer_axes!r} does not keep")
    order = [data_axes.index(a) for a in present] + ([data_axes.index("S")] if "S" in data_axes else [])
    out = np.transpose(data, order)
    shape = [out.shape[present.index(a)] if a in present else 1 for a in wanted]
    return out.reshape(shape + ([out.shape[-1]] if "S" in data_axes else []))
