"""One focus decision for all channels: each channel's say in it.

A multi-channel frame (RGB photo, or fluorescence channels of a microscope)
is aligned and fused with one decision for all its channels, so that every
channel comes from the same frame (and the same pyramid coefficients) at a
given pixel. A channel that is a linear function of another in every frame
is therefore the same linear function of it in the result.

The decision reads a weighted combination of the channels:

- the focus energy is ``sum((w_c * band_c) ** 2)`` (:meth:`Backend.block_energy`);
- alignment registers one gray image (:meth:`Backend.to_gray`): the luma of a
  colour photo, else one channel (the deciding one, or the one with the most
  normalised detail). A weighted mean of independent channels could cancel:
  two complementary stains (nucleus and cytoplasm) add up to a flat image.

The weights come from here: one channel alone (``channel=``), or every
channel divided by its intensity spread, so that a channel ten times
brighter than another does not have a hundred times its say.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ParameterError

__all__ = ["alignment_weights", "channel_weights", "resolve_channel", "spread_weights"]

# Percentiles of the spread that normalises a channel: robust to hot pixels
# and to the few brightest spots of a sparse fluorescence image.
_SPREAD_PERCENTILES = (0.5, 99.5)


def resolve_channel(channel: int | str | None, n_channels: int, names: Sequence[str] | None = None) -> int | None:
    """The index of the deciding channel, from an index or a name.

    Parameters
    ----------
    channel : int or str or None
        An index (negative counts from the end; a string of digits is an
        index), a channel name from ``names`` (case-insensitive), or None.
    n_channels : int
        How many channels the data has.
    names : sequence of str, optional
        The channel names, from the file's metadata.

    Returns
    -------
    int or None
        None when ``channel`` is None.

    Raises
    ------
    ParameterError
        Out of range, or an unknown name (the message lists the names).
    """
    if channel is None:
        return None
    if isinstance(channel, str) and channel.strip().lstrip("-").isdigit():
        channel = int(channel.strip())
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        k = int(channel)
        if k < 0:
            k += n_channels
        if not 0 <= k < n_channels:
            raise ParameterError(
                f"channel {channel} does not exist: the data has {n_channels} channel(s), "
                f"indices 0 to {n_channels - 1}"
            )
        return k
    if isinstance(channel, str):
        known = [str(n) for n in (names or [])]
        for k, name in enumerate(known):
            if name.casefold() == channel.strip().casefold():
                return k
        listed = ", ".join(repr(n) for n in known) if known else "none (the data has no channel names)"
        raise ParameterError(f"no channel is called {channel!r}; channel names: {listed}. Give a name or an index.")
    raise ParameterError(f"channel must be an index or a name, got {channel!r}")


def spread_weights(frame: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Per-channel weights ``1 / spread``, normalised to sum 1.

    ``spread`` is the distance between the 0.5th and 99.5th percentiles of
    the channel's values (every second pixel is enough). A constant channel
    gets weight 0: it carries no focus information.

    Parameters
    ----------
    frame : ndarray (H, W, C)
        A frame of the stack, as stored (e.g. the reference frame).
    peak : float
        Full scale of the dtype (only used to ignore spreads below one level).
    """
    sub = np.asarray(frame[::2, ::2], dtype=np.float32).reshape(-1, frame.shape[2])
    lo, hi = np.percentile(sub, _SPREAD_PERCENTILES, axis=0)
    spread = hi - lo
    floor = peak * 1e-6 if peak > 1 else 1e-6
    weights = np.where(spread > floor, 1.0 / np.maximum(spread, floor), 0.0)
    if not weights.any():  # a blank frame: nothing to normalise
        weights = np.ones(frame.shape[2])
    return weights / weights.sum()


def channel_weights(
    shape: tuple[int, ...],
    channel: int | str | None = None,
    names: Sequence[str] | None = None,
    frame: np.ndarray | None = None,
    peak: float = 1.0,
) -> tuple[float, ...] | None:
    """The weights of the one decision for a stack of frames of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Frame shape, ``(H, W)`` or ``(H, W, C)``.
    channel : int or str, optional
        The deciding channel (index or name): weight 1, all others 0.
    names : sequence of str, optional
        Channel names, to find ``channel`` by name.
    frame : ndarray (H, W, C), optional
        Without ``channel``: weigh every channel by ``1 / spread`` in this
        frame (:func:`spread_weights`).
    peak : float
        Full scale of the frame's dtype.

    Returns
    -------
    tuple of float or None
        None for a gray frame, or when neither ``channel`` nor ``frame`` is
        given (the colour-photo default: luma for alignment, channels counted
        alike in the focus energy).
    """
    n = 1 if len(shape) == 2 else int(shape[2])
    k = resolve_channel(channel, n, names)
    if n == 1:
        return None
    if k is not None:
        return tuple(1.0 if c == k else 0.0 for c in range(n))
    if frame is not None:
        return tuple(float(w) for w in spread_weights(frame, peak))
    return None


def alignment_weights(weights: Sequence[float] | None, frame: np.ndarray | None = None) -> tuple[float, ...] | None:
    """The channel weights of the gray image that alignment registers.

    The decision ``weights`` themselves when they pick one channel (or are
    None: luma); else the channel whose weighted detail (mean squared
    difference of neighbouring pixels in ``frame``) is largest.
    """
    if weights is None or sum(1 for w in weights if w != 0) <= 1 or frame is None:
        return None if weights is None else tuple(weights)
    sub = np.asarray(frame[::2, ::2], dtype=np.float32)
    detail = [
        (w * w) * float(np.mean(np.diff(sub[..., c], axis=0) ** 2) + np.mean(np.diff(sub[..., c], axis=1) ** 2))
        for c, w in enumerate(weights)
    ]
    k = int(np.argmax(detail))
    return tuple(1.0 if c == k else 0.0 for c in range(len(weights)))
