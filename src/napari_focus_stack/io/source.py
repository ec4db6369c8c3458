"""FrameSource: random access to the frames of one stack, decoded one at a time.

A source is built from files, a folder, a glob pattern, one multi-frame
TIFF or arrays. Building it reads headers only and checks that all frames
agree in size, colour mode and bit depth (naming the odd file); pixels are
decoded when a frame is read, so memory does not grow with the number of
frames.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, StackError
from .metadata import F4, U1, U2, ImageMeta, describe_pixels
from .paths import expand_inputs
from .read import probe_file, read_image
from .tiff import TiffStack, tiff_meta

__all__ = ["FrameSource"]


def _label(meta: ImageMeta, name: str) -> str:
    if meta.path is None:
        return name
    return f"{meta.path} (frame {meta.page})" if meta.page is not None else str(meta.path)


def _validate_stack(metas: Sequence[ImageMeta], names: Sequence[str]) -> None:
    labels = [_label(m, n) for m, n in zip(metas, names, strict=False)]
    if len(metas) < 2:
        got = ": " + ", ".join(labels) if labels else ""
        raise StackError(f"a stack needs at least 2 frames; got {len(metas)}{got}")
    first, a = metas[0], labels[0]
    for meta, b, name in zip(metas[1:], labels[1:], names[1:], strict=False):
        if meta.shape[:2] != first.shape[:2]:
            (hb, wb), (ha, wa) = meta.shape[:2], first.shape[:2]
            raise StackError(
                f"{b} is {wb}x{hb} pixels but {a} is {wa}x{ha}: all frames of a stack "
                f"must be the same size. Remove {name} from the stack or export all "
                "frames at the same size."
            )
        if len(meta.shape) != len(first.shape):
            cb, ca = describe_pixels(meta.shape, meta.dtype), describe_pixels(first.shape, first.dtype)
            raise StackError(
                f"{b} is {cb.split()[1]} but {a} is {ca.split()[1]}: a stack cannot mix "
                f"grayscale and colour frames. Convert all frames to the same colour mode "
                f"or remove {name}."
            )
        if meta.dtype != first.dtype:
            db = describe_pixels(meta.shape, meta.dtype).split(" ", 2)[2]
            da = describe_pixels(first.shape, first.dtype).split(" ", 2)[2]
            raise StackError(
                f"{b} is {db} but {a} is {da}: a stack cannot mix bit depths. Re-export "
                f"all frames with the same bit depth or remove {name}."
            )


def _array_frame_shape(shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    """Output frame shape for an array frame of `shape` (Y, X) or (Y, X, C)."""
    if len(shape) == 2 and min(shape) > 0:
        return shape
    if len(shape) == 3 and min(shape) > 0 and shape[2] in (1, 3, 4):
        return shape[:2] if shape[2] == 1 else shape[:2] + (3,)
    raise InputError(
        f"{what} has shape {shape}; expected frames of shape (Y, X), (Y, X, 3) or (Y, X, 4)."
    )


def _array_target_dtype(dtypes: Sequence[np.dtype], arrays: Sequence[Any]) -> list[np.dtype]:
    """Output dtype per array: uint8/uint16/float32 kept, others mapped sensibly."""
    out: list[np.dtype] = []
    other_max: int | None = None
    for dt, arr in zip(dtypes, arrays, strict=False):
        if dt.kind in "iu" and dt not in (U1, U2) and isinstance(arr, np.ndarray) and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 65535:
                raise InputError(
                    f"an input array holds {dt} values from {lo} to {hi}; scale it to "
                    "0..65535 (uint16) or to float first."
                )
            other_max = max(other_max or 0, hi)
    for dt in dtypes:
        if dt in (U1, U2, F4):
            out.append(dt)
        elif dt == np.bool_:
            out.append(U1)
        elif dt.kind == "f":
            out.append(F4)
        elif dt.kind in "iu":
            out.append(U1 if other_max is not None and other_max <= 255 else U2)
        else:
            raise InputError(
                f"input arrays of dtype {dt} are not images; use uint8, uint16 or float."
            )
    return out


def _array_frame(frame: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """A fresh C-contiguous copy of one array frame in the stack's layout."""
    a = np.asarray(frame)
    if a.ndim == 3:
        a = a[..., 0] if a.shape[2] == 1 else a[..., :3]
    if a.dtype == np.bool_:
        return a.astype(U1) * np.uint8(255)
    if a.dtype.kind in "iu" and a.dtype != dtype and a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > np.iinfo(dtype).max:
            raise InputError(
                f"{name} holds values from {lo} to {hi}, outside the range of {dtype}; "
                "scale the stack to uint16 or float first."
            )
    return np.array(a, dtype=dtype, order="C", copy=True)


def _is_array_like(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (
        not isinstance(x, (str, bytes, os.PathLike))
        and all(hasattr(x, attr) for attr in ("shape", "dtype", "ndim", "__getitem__"))
    )


class FrameSource:
    """Random access to the frames of one stack without holding them all in memory.

    Build one with :meth:`from_inputs`. Headers are read (and sizes, colour
    modes and bit depths checked) when the source is built; pixels are
    decoded only by :meth:`read` (and :meth:`read_reduced`).

    Parameters
    ----------
    loaders : sequence of callables
        ``loaders[i]()`` returns frame ``i`` as a fresh array.
    metas : sequence of ImageMeta
        What each frame will look like; all must agree in size, colour and
        bit depth.
    names : sequence of str, optional
        Display names; default: file names or ``"frame i"``.

    Attributes
    ----------
    shape : tuple of int
        Shape of every frame, ``(H, W)`` or ``(H, W, 3)``.
    dtype : numpy.dtype
        dtype of every frame.
    names : list of str
        File names (``"name.tif (frame i)"`` for TIFF pages, ``"frame i"``
        for arrays).
    paths : list of Path or None
        The file of each frame (None for arrays).

    Examples
    --------
    >>> src = FrameSource.from_inputs("scan/stack_01")  # doctest: +SKIP
    >>> for i in range(len(src)):  # doctest: +SKIP
    ...     process(src.read(i))
    """

    def __init__(
        self,
        loaders: Sequence[Callable[[], np.ndarray]],
        metas: Sequence[ImageMeta],
        names: Sequence[str] | None = None,
    ) -> None:
        if len(loaders) != len(metas):
            raise ValueError("loaders and metas must have the same length")
        self._loaders = list(loaders)
        self._metas = list(metas)
        if names is None:
            names = [
                m.path.name if m.path is not None else f"frame {k}" for k, m in enumerate(metas)
            ]
        self.names: list[str] = list(names)
        _validate_stack(self._metas, self.names)
        self.shape: tuple[int, ...] = self._metas[0].shape
        self.dtype: np.dtype = self._metas[0].dtype
        self.paths: list[Path | None] = [m.path for m in self._metas]
        self._reduced_loaders: list | None = None

    # -- construction ------------------------------------------------------

    @classmethod
    def from_inputs(cls, inputs: Any) -> FrameSource:
        """Build a source from files, a folder, a glob, a TIFF stack or arrays.

        Parameters
        ----------
        inputs
            One of:

            - a folder: its image files in natural order (hidden and non-image
              files ignored);
            - a glob pattern such as ``"scan/IMG_*.JPG"``: natural order;
            - a list of files: kept in the order given;
            - a single multi-frame TIFF: each frame (page, or plane of a
              ``(Z, Y, X)`` / ``(Z, Y, X, C)`` array) is one frame;
            - an array ``(Z, Y, X)`` or ``(Z, Y, X, C)``;
            - a list of ``(Y, X)`` or ``(Y, X, C)`` arrays;
            - a FrameSource (returned unchanged).

        Raises
        ------
        InputError
            A file or folder is missing, unreadable or empty.
        StackError
            Fewer than 2 frames, or frames differing in size, colour mode or
            bit depth (the message names the odd file).
        """
        if isinstance(inputs, FrameSource):
            return inputs
        if _is_array_like(inputs):
            return cls._from_array(inputs)
        if isinstance(inputs, (list, tuple)) and inputs and any(_is_array_like(x) for x in inputs):
            if not all(_is_array_like(x) for x in inputs):
                raise InputError("give either arrays or file paths, not a mix of both")
            return cls._from_array_list(list(inputs))
        return cls._from_paths(expand_inputs(inputs))

    @classmethod
    def _from_paths(cls, paths: list[Path]) -> FrameSource:
        probes = [probe_file(p) for p in paths]
        if len(probes) == 1 and probes[0][1] is not None and probes[0][1].frames > 1:
            path, layout = paths[0], probes[0][1]
            stack = TiffStack(path, layout)
            loaders = [lambda k=k: stack.read(k) for k in range(layout.frames)]
            metas = [tiff_meta(path, layout, k) for k in range(layout.frames)]
            names = [f"{path.name} (frame {k})" for k in range(layout.frames)]
            return cls(loaders, metas, names)
        for path, (_, layout) in zip(paths, probes, strict=False):
            if len(paths) > 1 and layout is not None and layout.frames > 1:
                raise StackError(
                    f"{path} holds {layout.frames} frames (a z-stack) but was given "
                    "together with other files. Stack it on its own, or give "
                    "single-image files only."
                )
        metas = [meta for meta, _ in probes]
        loaders = [lambda p=p: read_image(p)[0] for p in paths]
        source = cls(loaders, metas)
        source._reduced_loaders = [lambda f, p=p: read_image(p, reduce=f)[0] for p in paths]
        return source

    @classmethod
    def _from_array(cls, arr: Any) -> FrameSource:
        shape = tuple(arr.shape)
        if len(shape) == 2:
            raise StackError("a stack needs at least 2 frames; got 1: a 2-D array")
        if len(shape) not in (3, 4):
            raise InputError(
                f"an input array has shape {shape}; expected (Z, Y, X) or (Z, Y, X, C)."
            )
        frame_shape = _array_frame_shape(shape[1:], "the input array's frames")
        (dtype,) = _array_target_dtype([np.dtype(arr.dtype)], [arr])
        names = [f"frame {k}" for k in range(shape[0])]
        loaders = [
            lambda k=k: _array_frame(arr[k], dtype, names[k]) for k in range(shape[0])
        ]
        metas = [ImageMeta(None, frame_shape, dtype, None, None) for _ in range(shape[0])]
        return cls(loaders, metas, names)

    @classmethod
    def _from_array_list(cls, arrays: list[Any]) -> FrameSource:
        names = [f"frame {k}" for k in range(len(arrays))]
        shapes = [_array_frame_shape(tuple(a.shape), n) for a, n in zip(arrays, names, strict=False)]
        dtypes = _array_target_dtype([np.dtype(a.dtype) for a in arrays], arrays)
        loaders = [
            lambda a=a, d=d, n=n: _array_frame(a, d, n) for a, d, n in zip(arrays, dtypes, names, strict=False)
        ]
        metas = [ImageMeta(None, s, d, None, None) for s, d in zip(shapes, dtypes, strict=False)]
        return cls(loaders, metas, names)

    # -- access ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"<FrameSource {len(self)} frames, {describe_pixels(self.shape, self.dtype)}>"

    def _index(self, i: int) -> int:
        n = len(self)
        k = int(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"frame {i} out of range for a stack of {n} frames")
        return k

    def meta(self, i: int) -> ImageMeta:
        """Header information of frame `i` (no decoding)."""
        return self._metas[self._index(i)]

    def read_reduced(self, i: int, factor: int = 2) -> np.ndarray | None:
        """Frame `i` at ``1 / factor`` of its size (2, 4 or 8) when the file decodes that way cheaply (JPEG), else None.

        The result covers ``factor x factor`` blocks of the full frame:
        ``ceil(H / factor) x ceil(W / factor)``.
        """
        if self._reduced_loaders is None:
            return None
        k = self._index(i)
        frame = self._reduced_loaders[k](factor)
        h, w = self.shape[:2]
        if frame.shape[:2] != (-(-h // factor), -(-w // factor)) or frame.dtype != self.dtype:
            return None  # not a JPEG, or the decoder did not scale
        return frame

    def read(self, i: int) -> np.ndarray:
        """Decode frame `i`; a fresh C-contiguous array the caller may modify.

        Raises
        ------
        InputError
            The file cannot be decoded.
        StackError
            It decodes to another size or dtype than its header announced
            (e.g. the file changed on disk).
        """
        k = self._index(i)
        frame = self._loaders[k]()
        if frame.shape != self.shape or frame.dtype != self.dtype:
            label = _label(self._metas[k], self.names[k])
            raise StackError(
                f"{label} decoded as {describe_pixels(frame.shape, frame.dtype)} but the stack is "
                f"{describe_pixels(self.shape, self.dtype)}; did the file change on disk? "
                "Re-export it or remove it from the stack."
            )
        return frame
