"""FocusStacker: the Python API, a thin face over the engine's stages.

The work is done by :mod:`.pipeline` (one z-stack: :mod:`.align_stack` ->
:mod:`.exposure` -> :mod:`.fuse_stack` -> :mod:`.depth`), :mod:`.nd`
(the loop over time points and channels) and :mod:`.executors` (a Dask
cluster for the time points). A :class:`FocusStacker` holds the settings
once (:class:`~napari_focus_stack.options.EngineOptions` and the run's
resources, in :attr:`FocusStacker.settings`) and the backend they chose.
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import nd, pipeline
from ._backend import Backend, get_backend
from ._runtime import cancel_check, default_threads
from .align_stack import check_transform_count
from .errors import Cancelled, InputError, StackError
from .executors import DaskExecutor
from .io import Calibration, write_image
from .io.outputs import write_mesh_series
from .options import EngineOptions
from .pipeline import StackSettings
from .result import StackReport, StackResult
from .retouch import apply_retouch, check_mask
from .surface import MESH_MAX_VERTICES, calibrated_mesh

__all__ = ["Cancelled", "FocusStacker", "StackReport", "StackResult"]


class FocusStacker:
    """Align and fuse a focus stack.

    Parameters
    ----------
    radius : int, 1-20
        Window radius (px) of the focus measure.
    smoothing : float, 1-10
        Gaussian sigma (px) applied to the focus measure (spatial consistency).
    scale_factor : int, 1-4
        Frames are warped (bicubic when > 1), measured and fused at this
        multiple of their resolution, then brought back (unless
        ``upscale_output``). The default is 1: on the synthetic benchmark 2
        gained only 0.2-0.7 dB for four times the work (docs/benchmarks.md).
    method : {"pyramid", "depthmap"}
    prefer : {"auto", "near", "far"}
        Occlusion order: next to an occlusion edge (a near object in front of
        a far background), favour the frames focused on the nearer surface
        ("near") or on the farther one ("far"). Frames are taken in their
        order, frame 0 focused nearest; for a stack shot from far to near,
        "near" favours the background. "auto" (default): no preference, the
        sharper frame wins.
    align : {"similarity", "affine", "translation", "none"}
    reference : int, optional
        Index of the reference frame (default: the middle frame).
    device : {"auto", "cpu", "gpu"} or Backend
    upscale_output : bool
        Keep the ``scale_factor`` times larger result.
    min_quality : float
        Frames whose alignment correlation falls below this are excluded.
    workers : int, optional
        Threads decoding frames ahead of the computation, and aligning both
        halves of the stack at once (default: CPU count, max 4). The image
        kernels spread over the cores themselves (OpenCV's threads, or the GPU).
    tile_size : int, optional
        Fuse in overlapping tiles of this many output pixels a side (default:
        whole image; tiles are chosen automatically after an out-of-memory
        error on the device).
    cache_bytes : int, optional
        Decoded frames kept between the two passes, in bytes (default: none
        on the CPU, where decoding again is cheap and memory must not grow
        with the stack; up to 512 MiB on a GPU, so each frame is uploaded once).
    channel : int or str, optional
        The channel whose focus decides, for all channels, which frame is
        sharp (an index, or a name where the data names its channels).
        Default: colour photos weigh their channels alike (luma for
        alignment); with ``normalise_channels`` every channel counts after
        division by its intensity spread.

    Attributes
    ----------
    settings : StackSettings
        The options and resources above, held once; the option names
        (``radius``, ``scale_factor``...) read through to them.

    Examples
    --------
    >>> from napari_focus_stack import FocusStacker
    >>> from napari_focus_stack.synthetic import make_stack
    >>> stack = make_stack("checker", shape=(96, 128), n_frames=4)
    >>> fused = FocusStacker(device="cpu").process_stack(stack.frames)
    >>> fused.shape, fused.dtype
    ((96, 128, 3), dtype('uint8'))
    """

    def __init__(
        self,
        radius: int = 8,
        smoothing: float = 4,
        scale_factor: int = 1,
        method: str = "pyramid",
        align: str = "similarity",
        prefer: str = "auto",
        reference: int | None = None,
        device: str | Backend = "auto",
        upscale_output: bool = False,
        min_quality: float = 0.5,
        workers: int | None = None,
        tile_size: int | None = None,
        cache_bytes: int | None = None,
        channel: int | str | None = None,
    ):
        # a ready Backend (tests, benchmarks) is taken as it is
        self._backend = device if isinstance(device, Backend) else None
        options = EngineOptions(
            method=method, radius=radius, smoothing=smoothing, scale_factor=scale_factor, align=align,
            reference=reference, device=self._backend.name if self._backend else device,
            upscale_output=upscale_output, tile_size=tile_size, channel=channel, prefer=prefer,
        )
        self.settings = StackSettings(
            options, default_threads() if workers is None else int(workers), float(min_quality), cache_bytes
        )

    @classmethod
    def from_settings(cls, settings: StackSettings, backend: Backend | None = None) -> FocusStacker:
        """A stacker with these settings (and this backend, else the options' device)."""
        stacker = cls.__new__(cls)
        stacker.settings, stacker._backend = settings, backend
        return stacker

    def with_options(self, **changes: Any) -> FocusStacker:
        """A copy with some engine options changed (validated), e.g. ``tile_size=1024``."""
        options = dataclasses.replace(self.settings.options, **changes)
        return self.from_settings(dataclasses.replace(self.settings, options=options), self._backend)

    # -------------------------------------------------------- settings, read through
    @property
    def options(self) -> EngineOptions:
        """The engine options (frozen)."""
        return self.settings.options

    radius = property(lambda self: self.options.radius, doc="Focus-measure window radius (px).")
    smoothing = property(lambda self: self.options.smoothing, doc="Smoothing of the focus maps (px).")
    scale_factor = property(lambda self: self.options.scale_factor, doc="Working resolution multiple.")
    method = property(lambda self: self.options.method, doc="Fusion method.")
    prefer = property(lambda self: self.options.prefer, doc="Occlusion order.")
    align = property(lambda self: self.options.align, doc="Alignment model.")
    reference = property(lambda self: self.options.reference, doc="Reference frame index, None: the middle.")
    upscale_output = property(lambda self: self.options.upscale_output, doc="Keep the upscaled result.")
    tile_size = property(lambda self: self.options.tile_size, doc="Tile side (px), None: whole image.")
    channel = property(lambda self: self.options.channel, doc="The deciding channel, None: all.")
    workers = property(lambda self: self.settings.workers, doc="Threads of one stack.")
    min_quality = property(lambda self: self.settings.min_quality, doc="Alignment quality below which a frame goes.")
    cache_bytes = property(lambda self: self.settings.cache_bytes, doc="Decoded frames kept between passes.")

    @property
    def device(self) -> str | Backend:
        """The device asked for: a name, or the Backend given."""
        return self._backend if self._backend is not None else self.options.device

    @property
    def backend(self) -> Backend:
        """The compute backend (chosen on first use)."""
        if self._backend is None:
            self._backend = get_backend(self.options.device)
        return self._backend

    # ------------------------------------------------------------------ API
    def process_stack(self, inputs: Any, **kwargs) -> np.ndarray:
        """Fuse a stack and return only the image (dtype of the input)."""
        kwargs.setdefault("depth", False)
        return self.stack(inputs, **kwargs).image

    def stack(
        self,
        inputs: Any,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
        transforms: Sequence[np.ndarray | None] | None = None,
        channel_names: Sequence[str] | None = None,
        normalise_channels: bool = False,
        match_exposure: bool = True,
        depth: bool = True,
        retouch: Any = None,
    ) -> StackResult:
        """Align and fuse one stack.

        Parameters
        ----------
        inputs
            A folder, a list of image files, a multi-page TIFF, a (Z, Y, X[, C])
            array or a list of 2D/3D arrays (see :class:`io.FrameSource`).
        progress : callable(done, total, stage), optional
            Called after every frame of each pass (``total`` is twice the
            number of frames; tiles report fractions of a frame).
        cancel : callable or threading.Event, optional
            Checked between frames; :class:`Cancelled` is raised when set.
        transforms : list of 3x3 arrays, optional
            Reuse known reference->frame transforms (e.g. from another stack
            shot with the same focus sequence) instead of estimating them.
        channel_names : sequence of str, optional
            Names of the frames' channels, so that ``channel`` can name one.
        normalise_channels : bool
            Without a deciding ``channel``, weigh every channel by the inverse
            of its intensity spread in the reference frame (independent
            channels, e.g. fluorescence), instead of alike (colour photos).
        match_exposure : bool
            Correct each frame's per-channel gain towards the reference
            frame (photos: exposure drift). Microscope intensities
            are measurements: pass False to keep them as recorded.
        depth : bool
            Also compute the regularised depth map (:attr:`StackResult.depth`;
            a few tenths of a second on a 3 MP stack). The raw map and the
            confidence come always.
        retouch : array-like of int, optional
            A retouch mask the size of the fused image: 0 keeps the automatic
            result, k > 0 takes frame k (counted from 1, in input order),
            aligned and exposure-corrected, blended in at the mask's edges;
            the depth maps hold k - 1 there and the confidence 1.0 (see
            :mod:`napari_focus_stack.retouch`). Its size and labels are
            checked before any frame is read; a label naming a frame that
            the alignment excluded is refused after it.

        Returns
        -------
        StackResult
            The fused image, the depth maps, the confidence, the transforms
            and a :class:`StackReport`.

        Notes
        -----
        All channels share one alignment and one focus decision, so a
        channel that is ``a * other + b`` in every frame is so in the result.
        A frame whose transform moves no image corner by more than
        ``fuse_stack.UNWARPED_PX`` is fused unwarped (``warped`` False in
        its frame report).
        """
        source = pipeline.frame_source(inputs)
        if retouch is not None:
            s = self.scale_factor if self.upscale_output else 1
            shape = (source.shape[0] * s, source.shape[1] * s)
            retouch = check_mask(retouch, shape, len(source))
        result = pipeline.stack_frames(
            source, self.settings, self.backend, progress=progress, cancel=cancel, transforms=transforms,
            channel_names=channel_names, normalise_channels=normalise_channels, match_exposure=match_exposure,
            depth=depth,
        )
        if retouch is not None:
            result = apply_retouch(result, source, retouch, self.backend)
        return result

    def stack_nd(
        self,
        data: Any,
        axes: str | None = None,
        *,
        z_step: float | None = None,
        calibration: Any | None = None,
        channel: int | str | None = None,
        reuse_alignment: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
        scheduler: Any | None = None,
    ) -> nd.NDResult:
        """Fuse N-D data along Z for every time point (and position).

        Parameters
        ----------
        data : array-like or nd.Hyperstack
            NumPy, Dask or Zarr array with named ``axes`` (read one plane at
            a time), a file (ImageJ or OME-TIFF, OME-Zarr) or a
            :class:`~napari_focus_stack.nd.Hyperstack`.
        axes : str, optional
            One letter per dimension: ``Z``, ``Y``, ``X`` required, ``C``
            channels, ``S`` RGB samples, ``T`` or any other letter looped
            over. Default for 3-D arrays: ``"ZYX"``.
        z_step : float, optional
            Distance between z planes; sets or overrides the calibration's.
            Heights are then ``z0 + index * z_step``, else frame indices.
        calibration : nd.Calibration, optional
            Pixel size, z step, units and channel names of an array.
        channel : int or str, optional
            The channel whose focus decides for all channels (index or
            name); default: this stacker's ``channel``, else all channels,
            each normalised by its intensity spread.
        reuse_alignment : bool
            Estimate the alignment on the first z-stack only and reuse it
            for the others (same focus sequence): one pass over each later
            z-stack instead of two.
        progress : callable(done, total, stage), optional
            Progress over all z-stacks; ``stage`` names the time point.
        cancel : callable or threading.Event, optional
        scheduler : str or distributed.Client, optional
            Run the time points in parallel on this Dask cluster (a
            scheduler's address, or a connected client, left open); each
            worker reads its own z-stack, and the results are those of the
            serial run, in time order.

        Returns
        -------
        nd.NDResult
            Fused images with axes (T, C, Y, X) (absent ones dropped),
            regularised and raw heights, confidence, the height unit and
            the calibration, one report per z-stack.

        Examples
        --------
        >>> import numpy as np
        >>> from napari_focus_stack.synthetic import make_stack
        >>> st = make_stack("checker", shape=(64, 80), n_frames=4, gray=True, dtype=np.uint16,
        ...                 breathing=0, max_rotation_deg=0, max_shift=0)
        >>> tzyx = np.stack([np.stack(st.frames)] * 2)  # two time points
        >>> res = FocusStacker(device="cpu").stack_nd(tzyx, "TZYX", z_step=0.5)
        >>> res.axes, res.image.shape, res.unit
        ('TYX', (2, 64, 80), 'µm')
        """
        executor = None if scheduler is None else open_executor(scheduler, cancel)
        try:
            return nd.stack_nd(
                self.settings, data, axes, backend=self.backend, z_step=z_step, calibration=calibration,
                channel=channel, reuse_alignment=reuse_alignment, progress=progress, cancel=cancel,
                executor=executor,
            )
        finally:
            if executor is not None:
                executor.close()

    def estimate_transforms(
        self,
        inputs: Any,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | threading.Event | None = None,
    ) -> tuple[list, StackReport]:
        """Estimate the transforms only (no fusion): ``(transforms, report)``.

        ``transforms`` can be given to :meth:`stack` of other stacks shot with
        the same focus sequence (``None`` marks an excluded frame).
        """
        return pipeline.estimate_transforms(inputs, self.settings, self.backend, progress=progress, cancel=cancel)

    def warp_to_reference(self, inputs: Any, transforms: Sequence[np.ndarray | None]) -> Iterator[np.ndarray | None]:
        """Yield every frame warped into the reference geometry, one at a time.

        The frames come out in the geometry of :attr:`StackResult.image`:
        at ``scale_factor`` times the frame size when ``upscale_output`` is
        set, else at the frame size, resampled as the fusion resamples them.
        Only geometry is applied (no exposure correction), so these are the
        aligned frames as shot, e.g. to check the alignment by scrolling.

        Parameters
        ----------
        inputs
            The stack the transforms belong to (anything :meth:`stack` takes).
        transforms : list of 3x3 arrays or None
            Reference->frame matrices, one per frame, as in
            :attr:`StackResult.transforms`; ``None`` marks an excluded frame.

        Yields
        ------
        numpy.ndarray or None
            Frame ``i`` in reference geometry, dtype and channels of the
            input; pixels the frame does not cover are 0. ``None`` for an
            excluded frame. Each frame is read when it is asked for, so
            memory does not grow with the number of frames.

        Raises
        ------
        StackError
            The number of transforms differs from the number of frames.

        Examples
        --------
        >>> from napari_focus_stack.synthetic import make_stack
        >>> stack = make_stack("checker", shape=(64, 80), n_frames=3)
        >>> stacker = FocusStacker(device="cpu")
        >>> result = stacker.stack(stack.frames)
        >>> aligned = list(stacker.warp_to_reference(stack.frames, result.transforms))
        >>> [a.shape for a in aligned] == [result.image.shape] * 3
        True
        """
        source = pipeline.frame_source(inputs)
        check_transform_count(transforms, len(source))
        return pipeline.warped_frames(source, transforms, self.options, self.backend)

    def estimate_memory(self, shape: Sequence[int]) -> int:
        """Peak bytes :meth:`stack` needs for frames of ``shape`` ((H, W) or (H, W, C)).

        See :func:`napari_focus_stack.pipeline.estimate_memory`.
        """
        return pipeline.estimate_memory(shape, self.settings)

    def save_image(
        self,
        image: np.ndarray | StackResult,
        path,
        quality: int = 95,
        exif: bytes | None = None,
        icc: bytes | None = None,
        protect: Sequence = (),
    ):
        """Write an image atomically, format by extension (.jpg, .png, .tif).

        Given a :class:`StackResult`, its fused image is written with the
        reference frame's EXIF and ICC profile unless others are passed, and
        its input files are protected from being overwritten.
        """
        if isinstance(image, StackResult):
            meta = image.meta
            exif = exif if exif is not None else getattr(meta, "exif", None)
            icc = icc if icc is not None else getattr(meta, "icc", None)
            protect = list(protect) + list(image.report.inputs)
            image = image.image
        return write_image(path, image, quality=quality, exif=exif, icc=icc, protect=protect)

    @staticmethod
    def save_mesh(
        result: StackResult | nd.NDResult,
        path,
        *,
        z_scale: float = 1.0,
        max_vertices: int = MESH_MAX_VERTICES,
        protect: Sequence = (),
    ) -> list:
        """Write a result's height map as a 3D surface: PLY (with colours), STL or OBJ, by extension.

        The mesh is in the data's units: x to the right, y up the image, z
        the height (frame indices and pixels for photos), coloured by the
        fused image (channels in their colours); see
        :func:`napari_focus_stack.surface.height_mesh`. An N-D result gives
        one file per z-stack (``out_t0.ply``, ``out_t1.ply``...). The files
        are written all or none, atomically.

        Parameters
        ----------
        result : StackResult or NDResult
            From :meth:`stack` (with its depth map) or :meth:`stack_nd`.
        path : str or path-like
            ``*.ply``, ``*.stl`` or ``*.obj``.
        z_scale : float
            Vertical exaggeration (default 1: true scale).
        max_vertices : int
            Vertices per mesh at most (block means beyond).
        protect : sequence of path-like
            Files never to overwrite (a StackResult's inputs are protected anyway).

        Returns
        -------
        list of Path
            The files written.
        """
        if isinstance(result, StackResult):
            if result.depth is None:
                raise StackError("this result has no depth map: stack with depth=True to save its mesh")
            meshes = [lambda: calibrated_mesh(result.depth, result.image, Calibration(),
                                              rgb=result.image.ndim == 3, z_scale=z_scale, max_vertices=max_vertices)]
            protect = [*protect, *result.report.inputs]
        else:
            loop = result.height.shape[:-2]
            c_axis = result.axes.index("C") if "C" in result.axes else None

            def one(index: tuple[int, ...]):
                image = np.asarray(result.image[index])
                if c_axis is not None:
                    image = np.moveaxis(image, 0, -1)  # (C, Y, X) -> (Y, X, C)
                return calibrated_mesh(result.height[index], image, result.calibration, rgb="S" in result.axes,
                                       z_scale=z_scale, max_vertices=max_vertices)

            meshes = [lambda i=i: one(i) for i in (np.ndindex(*loop) if loop else [()])]
        return write_mesh_series(path, meshes, protect=protect)

    @staticmethod
    def split_into_stacks(paths: Sequence, stack_size: int | None = None) -> list[list]:
        """Group files into stacks (OpenScan names, or natural order in chunks)."""
        from .grouping import split_into_stacks  # on first use: a plain stack run needs no grouping

        return split_into_stacks(paths, stack_size=stack_size)


def open_executor(scheduler: Any, cancel: Callable[[], bool] | threading.Event | None = None) -> DaskExecutor:
    """A :class:`DaskExecutor` on ``scheduler``: an address, or a ``distributed.Client`` (left open on close)."""
    client = None if isinstance(scheduler, str) else scheduler
    if client is not None and not hasattr(client, "submit"):
        raise InputError(
            f"scheduler must be a Dask scheduler's address or a distributed.Client, got {type(scheduler).__name__}"
        )
    return DaskExecutor(None if client else scheduler, is_cancelled=cancel_check(cancel), client=client)
