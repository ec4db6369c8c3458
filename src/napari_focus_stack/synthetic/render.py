"""Rendering a synthetic stack: frame geometry, thin-lens defocus by depth layers, and what a camera adds.

Geometry: focus breathing (scale), small rotations and shifts per frame
(:func:`draw_transforms`), applied with a cubic warp. Defocus:
:class:`LayerRenderer` blurs the scene layer by layer (pillbox point spread
function, radius linear in the distance to the focal plane) and composites
far to near, so a defocused near object spills over the background behind it.
Then noise, quantisation (:func:`quantize`) and optionally JPEG.
"""
from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._runtime import default_threads
from .scenes import SCENES

# SciPy is imported in the functions that use it: the command line imports this
# package for its scene names on every run, and scipy.signal alone takes 0.5 s.


# Blur radius (px) per frame of defocus never drops below this, so that a
# point two frames away from its focal plane is blurred by >= 1.5 px.
MIN_BLUR_PER_FRAME = 0.75


# Below this radius (px) a layer is not blurred at all.
_NO_BLUR_RADIUS = 0.3


# Side of the square tiles the renderer works on (px).
_TILE = 256


# Swaps (x, y, 1) <-> (row, col, 1) = (y, x, 1); it is its own inverse.
_SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def check_args(scene, shape, n_frames, dtype, max_blur, breathing, max_rotation_deg,
                max_shift, gain_range, noise, jpeg_quality) -> tuple[int, int]:
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
    if len(shape) != 2 or min(int(s) for s in shape) < 16:
        raise ValueError(f"shape must be (height, width) of at least 16 x 16, got {shape!r}")
    if int(n_frames) < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    if np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {np.dtype(dtype)}")
    for name, value in (("max_blur", max_blur), ("breathing", breathing),
                        ("max_rotation_deg", max_rotation_deg), ("max_shift", max_shift),
                        ("gain_range", gain_range), ("noise", noise)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if breathing >= 0.5 or gain_range >= 1 or max_rotation_deg > 45:
        raise ValueError("breathing must be < 0.5, gain_range < 1, max_rotation_deg <= 45")
    if jpeg_quality is not None:
        if np.dtype(dtype) != np.uint8:
            raise ValueError("jpeg_quality needs dtype=np.uint8")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    return int(shape[0]), int(shape[1])


def draw_transforms(rng, shape, n, reference, breathing, max_rotation_deg, max_shift):
    """Similarity transforms about the image centre, reference -> frame."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ramp = 1.0 + breathing * (np.arange(n) / (n - 1) - 0.5)
    scales = ramp / ramp[reference]
    angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, size=n))
    shifts = rng.uniform(-max_shift, max_shift, size=(n, 2))
    transforms = []
    for k in range(n):
        if k == reference:
            transforms.append(np.eye(3))
            continue
        s, a = scales[k], angles[k]
        c, si = s * math.cos(a), s * math.sin(a)
        linear = np.array([[c, -si], [si, c]])
        centre = np.array([cx, cy])
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = centre + shifts[k] - linear @ centre
        transforms.append(matrix)
    return transforms


def geometry_margin(shape, breathing, max_rotation_deg, max_shift) -> int:
    """Pixels of scene needed around the reference view for any frame."""
    half_diagonal = 0.5 * math.hypot(*shape)
    s_min = 1.0 - breathing
    theta = math.radians(max_rotation_deg)
    spread = (1.0 / s_min - 1.0) + 2.0 * math.sin(theta / 2.0) / s_min
    return int(math.ceil(half_diagonal * spread + max_shift * math.sqrt(2) / s_min)) + 4


def _to_rc(matrix: np.ndarray) -> np.ndarray:
    """Express an (x, y) homogeneous matrix in (row, col) order."""
    return _SWAP @ matrix @ _SWAP


def warp_cubic(rendered: np.ndarray, matrix: np.ndarray, margin: int,
                out_shape: tuple[int, int]) -> np.ndarray:
    """Sample a rendered canvas region into a frame's geometry (cubic spline)."""
    to_region = np.eye(3)
    to_region[:2, 2] = margin
    # frame pixel -> reference coordinates -> rendered region coordinates
    rc = _to_rc(to_region @ np.linalg.inv(matrix))
    out = np.empty(out_shape + (rendered.shape[2],), dtype=np.float32)

    def one(ch):
        import scipy.ndimage as ndi
        coeffs = ndi.spline_filter(rendered[..., ch], order=3, output=np.float32, mode="mirror")
        ndi.affine_transform(coeffs, rc[:2, :2], rc[:2, 2], output_shape=out_shape,
                             output=out[..., ch], order=3, mode="mirror", prefilter=False)

    if rendered.shape[2] == 1 or out.size < 1 << 20:
        for ch in range(rendered.shape[2]):
            one(ch)
    else:
        with ThreadPoolExecutor(min(default_threads(), rendered.shape[2])) as pool:
            list(pool.map(one, range(rendered.shape[2])))
    return out


def _disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased pillbox of the given radius (px).

    Each weight is the fraction of the pixel's area inside the disk, found by
    supersampling. Below one pixel a Gaussian of the same second moment
    stands in, since a pillbox smaller than a pixel would not blur at all.
    """
    if radius < 1.0:
        sigma = radius / 2.0
        x = np.arange(-2, 3, dtype=np.float64)
        g = np.exp(-0.5 * (x / sigma) ** 2)
        kernel = np.outer(g, g)
    else:
        half = int(math.ceil(radius - 0.5))
        sub = 8
        offsets = (np.arange(sub) + 0.5) / sub - 0.5
        grid = np.arange(-half, half + 1, dtype=np.float64)
        fine = (grid[:, None] + offsets[None, :]).ravel()
        inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius * radius
        n = grid.size
        kernel = inside.reshape(n, sub, n, sub).mean(axis=(1, 3))
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


class LayerRenderer:
    """Renders the canvas for a given blur radius per depth layer.

    The work is done tile by tile over the region frames sample from; a tile
    only visits the layers present within reach of its blur, found from a
    coarse grid of the per-block minimum and maximum layer label.
    """

    _BLOCK = 16

    def __init__(self, texture, labels, n_layers, region):
        self.texture = texture
        self.labels = labels
        self.n_layers = n_layers
        self.y0, self.x0, self.height, self.width = region
        b = self._BLOCK
        h, w = labels.shape
        hb, wb = -(-h // b), -(-w // b)
        padded = np.pad(labels, ((0, hb * b - h), (0, wb * b - w)), mode="edge")
        blocks = padded.reshape(hb, b, wb, b)
        self.block_min = blocks.min(axis=(1, 3))
        self.block_max = blocks.max(axis=(1, 3))
        self._kernels: dict[float, np.ndarray] = {}

    def _kernel(self, radius):
        key = round(float(radius), 6)
        if key not in self._kernels:
            self._kernels[key] = _disk_kernel(key)
        return self._kernels[key]

    def _present(self, j, y0, y1, x0, x1):
        b = self._BLOCK
        sl = (slice(max(y0, 0) // b, -(-y1 // b)), slice(max(x0, 0) // b, -(-x1 // b)))
        return bool(np.any((self.block_min[sl] <= j) & (self.block_max[sl] >= j)))

    def render(self, radii: np.ndarray) -> np.ndarray:
        channels = self.texture.shape[2]
        out = np.empty((self.height, self.width, channels), dtype=np.float32)
        halves = [0 if r < _NO_BLUR_RADIUS else (self._kernel(r).shape[0] // 2) for r in radii]
        tiles = [(ty, tx) for ty in range(0, self.height, _TILE)
                 for tx in range(0, self.width, _TILE)]

        def one(tile):
            from scipy.signal import fftconvolve
            ty, tx = tile
            th, tw = min(_TILE, self.height - ty), min(_TILE, self.width - tx)
            cy, cx = self.y0 + ty, self.x0 + tx  # canvas coordinates of the tile
            acc_c = np.zeros((th, tw, channels), dtype=np.float32)
            acc_a = np.zeros((th, tw), dtype=np.float32)
            for j in range(self.n_layers - 1, -1, -1):  # far to near
                h = halves[j]
                if not self._present(j, cy - h, cy + th + h, cx - h, cx + tw + h):
                    continue
                if h == 0:
                    mask = self.labels[cy:cy + th, cx:cx + tw] == j
                    if mask.any():
                        acc_c[mask] = self.texture[cy:cy + th, cx:cx + tw][mask]
                        acc_a[mask] = 1.0
                    continue
                mask = self.labels[cy - h:cy + th + h, cx - h:cx + tw + h] == j
                rows = np.flatnonzero(mask.any(axis=1))
                if rows.size == 0:
                    continue
                cols = np.flatnonzero(mask.any(axis=0))
                # Only outputs within reach of the layer's bounding box change.
                o0, o1 = max(rows[0] - 2 * h, 0), min(rows[-1] + 1, th)
                p0, p1 = max(cols[0] - 2 * h, 0), min(cols[-1] + 1, tw)
                mask = mask[o0:o1 + 2 * h, p0:p1 + 2 * h]
                sl = (slice(cy - h + o0, cy + h + o1), slice(cx - h + p0, cx + h + p1))
                stack = np.empty(mask.shape + (channels + 1,), dtype=np.float32)
                np.multiply(self.texture[sl], mask[..., None], out=stack[..., :channels])
                stack[..., channels] = mask
                kernel = self._kernel(radii[j])[..., None]
                blurred = fftconvolve(stack, kernel, mode="valid", axes=(0, 1))
                alpha = np.clip(blurred[..., channels], 0.0, 1.0)
                keep = 1.0 - alpha
                sub_c = acc_c[o0:o1, p0:p1]
                sub_a = acc_a[o0:o1, p0:p1]
                sub_c *= keep[..., None]
                sub_c += blurred[..., :channels]
                sub_a *= keep
                sub_a += alpha
            np.maximum(acc_a, 1e-6, out=acc_a)
            out[ty:ty + th, tx:tx + tw] = acc_c / acc_a[..., None]

        workers = default_threads()
        if workers == 1 or len(tiles) == 1:
            for tile in tiles:
                one(tile)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, tiles))
        np.clip(out, 0.0, 1.0, out=out)
        return out


def quantize(image: np.ndarray, dtype: np.dtype, maxval: float, *,
              inplace: bool = True) -> np.ndarray:
    """Scale [0, 1] floats to the integer range (overwrites ``image`` if inplace)."""
    scaled = image if inplace else image.copy()
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(maxval)
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype, order="C")


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("L" if frame.ndim == 2 else "RGB")).copy()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return rgb @ weights


def texture_mask_of(truth: np.ndarray, size: int = 9, threshold: float = 0.03) -> np.ndarray:
    import scipy.ndimage as ndi
    gray = to_gray(truth) if truth.shape[-1] == 3 else truth[..., 0]
    gray = gray.astype(np.float32)
    mean = ndi.uniform_filter(gray, size, mode="reflect")
    mean_sq = ndi.uniform_filter(gray * gray, size, mode="reflect")
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return std > threshold
