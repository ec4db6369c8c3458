"""The scenes of the synthetic stacks: textures (photographs, procedural patterns), their relief, occluders.

A scene is a texture painted on a relief: :func:`scene_texture` draws the
texture, :func:`depth_map` the sloped, bumpy background with raised objects
(sharp depth steps at their outlines), :func:`add_occluders` thin hairs,
bristles or wires far in front. The ``board`` and ``fine`` scenes draw their
own relief (:data:`RELIEF_SCENES`).
"""
from __future__ import annotations

import math

import numpy as np

# SciPy is imported in the functions that use it: the command line imports this
# package for its scene names on every run, and scipy.signal alone takes 0.5 s.


#: Names accepted by :func:`make_stack`. The first five are photographs that
#: ship inside scikit-image (no download); the others are procedural and
#: have detail at every scale, whatever the output size ("patches" also has
#: large untextured patches, where focus cannot be observed). "board" brings
#: its own relief: a circuit board seen at its edge, with bright pads and
#: white print on a weakly textured board, featureless raised chips and a
#: featureless far background (where depth cannot be observed, and the
#: defocused spill of bright edges imitates focus). "fine" is dense detail
#: at 2-6 px periods (facets like an insect's eye, fine grain) on a rough
#: relief, where softness shows.
SCENES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "coins",
    "camera",
    "rocks",
    "pcb",
    "checker",
    "patches",
    "board",
    "fine",
)


_PHOTOS = {"astronaut", "coffee", "chelsea", "coins", "camera"}


#: Thin structures :func:`make_stack` can hold in front of any scene (its
#: ``occluders`` argument): dark curly hairs, a tuft of pale bristles, or a
#: few thick insulated wires. They lie far in front of the background, where
#: the stackers' halos and ghost edges are worst.
OCCLUDERS: tuple[str, ...] = ("hairs", "bristles", "wires")


# Standard deviation (px) of the best-focus blur given to procedural scenes.
_LENS_SIGMA = 0.6


def depth_map(canvas_shape, view, rng, objects: bool = True) -> np.ndarray:
    """Smooth background relief plus (with ``objects``) raised objects with sharp outlines.

    Returns depth (larger is farther) on the canvas; object pixels are
    negative and everything else is positive, which the caller uses to find
    the objects before normalising.
    """
    import scipy.ndimage as ndi
    oy, ox, height, width = view
    hc, wc = canvas_shape
    # The smooth background is evaluated on a coarse grid and interpolated.
    step = max(1, min(height, width) // 64)
    ys = (np.arange(0, hc + step, step, dtype=np.float64) - oy) / height
    xs = (np.arange(0, wc + step, step, dtype=np.float64) - ox) / width
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    phi = rng.uniform(0, 2 * np.pi)
    c, s = math.cos(phi), math.sin(phi)
    extent = 0.5 * (abs(c) + abs(s))
    ramp = 0.5 + ((xx - 0.5) * c + (yy - 0.5) * s) / (2 * extent)
    background = 0.40 + 0.60 * ramp
    for _ in range(rng.integers(3, 6)):
        by, bx = rng.uniform(0.0, 1.0, size=2)
        sigma = rng.uniform(0.08, 0.22)
        amp = rng.uniform(-0.12, 0.12)
        background += amp * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma**2))
    zoom = (hc / background.shape[0], wc / background.shape[1])
    depth = ndi.zoom(background.astype(np.float32), zoom, order=1, grid_mode=True,
                     mode="nearest", output=np.float32)[:hc, :wc]
    depth = np.maximum(depth, 0.30)

    # Raised objects: elliptic domes, nearest at their centre.
    yr = (np.arange(hc, dtype=np.float32) - oy)[:, None]
    xr = (np.arange(wc, dtype=np.float32) - ox)[None, :]
    short = min(height, width)
    for _ in range(int(rng.integers(1, 3)) if objects else 0):
        cy = rng.uniform(0.3, 0.7) * height
        cx = rng.uniform(0.3, 0.7) * width
        a = rng.uniform(0.14, 0.26) * short
        b = rng.uniform(0.10, 0.20) * short
        t = rng.uniform(0, np.pi)
        ct, st = np.float32(math.cos(t)), np.float32(math.sin(t))
        u = (xr - np.float32(cx)) * ct + (yr - np.float32(cy)) * st
        v = (yr - np.float32(cy)) * ct - (xr - np.float32(cx)) * st
        qf = (u / np.float32(a)) ** 2 + (v / np.float32(b)) ** 2
        tilt = np.float32(rng.uniform(-0.05, 0.05))
        dome = np.float32(-0.22) + np.float32(0.12) * qf + tilt * u / np.float32(a)
        inside = qf < 1.0
        np.copyto(depth, np.minimum(depth, dome), where=inside)
        del u, v, qf, dome, inside
    return depth


def tint_objects(texture, objects, rng):
    """Shade raised objects a little darker, with a slight colour cast."""
    brightness = rng.uniform(0.72, 0.88)
    cast = 1.0 + rng.uniform(-0.06, 0.06, size=texture.shape[2])
    tint = (brightness * cast).astype(np.float32)
    texture[objects] = np.clip(texture[objects] * tint, 0.0, 1.0)
    return texture


def _occluder_curves(kind, view, rng):
    """Centre lines of the occluders: (points (m, 2) as (y, x) in view px, half width, colour) each."""
    oy, ox, height, width = view
    short = min(height, width)
    curves = []
    if kind == "hairs":
        count, length, half, bend = int(rng.integers(8, 15)), (0.6, 1.4), (0.0025, 0.005), 2.0
    elif kind == "bristles":
        count, length, half, bend = int(rng.integers(12, 25)), (0.45, 0.8), (0.004, 0.007), 0.4
    else:  # wires
        count, length, half, bend = int(rng.integers(2, 5)), (1.2, 1.6), (0.008, 0.015), 0.6
    # a tuft of bristles grows from one root, roughly in one direction
    root = rng.uniform(0.2, 0.8, size=2) * (height, width)
    tuft = rng.uniform(0, 2 * np.pi)
    for _ in range(count):
        if kind == "bristles":
            start = root + rng.normal(0.0, 0.04 * short, size=2)
            theta = tuft + rng.normal(0.0, 0.15)
        else:
            start = rng.uniform(0.1, 0.9, size=2) * (height, width)
            theta = rng.uniform(0, 2 * np.pi)
        n = max(8, int(rng.uniform(*length) * short / 0.5))
        # curvature (1/px) wanders smoothly along the strand
        kappa = rng.normal(0.0, bend / short) + np.cumsum(rng.normal(0.0, 0.02 * bend / short, size=n))
        angle = theta + np.cumsum(kappa * 0.5)
        points = 0.5 * np.cumsum(np.stack([np.sin(angle), np.cos(angle)], axis=1), axis=0)
        # bristles grow from their root; hairs and wires pass through their start point
        points += start - (0 if kind == "bristles" else points[n // 2])
        if kind == "hairs":
            colour = rng.uniform(0.03, 0.25) * np.array([1.0, 0.78, 0.55]) * rng.uniform(0.9, 1.1, size=3)
        elif kind == "bristles":
            colour = rng.uniform(0.75, 0.95) * np.array([1.0, 0.96, 0.85])
        else:
            colour = np.array([(0.85, 0.50, 0.28), (0.80, 0.12, 0.10), (0.15, 0.25, 0.75),
                               (0.10, 0.10, 0.10), (0.90, 0.85, 0.20)][int(rng.integers(5))])
        curves.append((points, rng.uniform(*half) * short, colour))
    return curves


def add_occluders(kind, texture, depth, view, rng) -> None:
    """Paint thin near structures into ``texture`` and ``depth`` (both in place).

    Strands are rasterised at twice the resolution (distance to the nearest
    centre line) and averaged down, so their edges are anti-aliased in the
    texture; a pixel belongs to the strand's depth where it is at least half
    covered. Strands are shaded as cylinders with a highlight along the axis.
    """
    import scipy.ndimage as ndi

    oy, ox = view[:2]
    hc, wc = depth.shape
    fine = np.ones((2 * hc, 2 * wc), dtype=bool)  # False on centre lines
    owner = np.zeros((2 * hc, 2 * wc), dtype=np.int32)
    curves = _occluder_curves(kind, view, rng)
    for i, (points, _, _) in enumerate(curves):
        yy = np.rint(2 * (points[:, 0] + oy) + 0.5).astype(np.int64)
        xx = np.rint(2 * (points[:, 1] + ox) + 0.5).astype(np.int64)
        inside = (yy >= 0) & (yy < 2 * hc) & (xx >= 0) & (xx < 2 * wc)
        fine[yy[inside], xx[inside]] = False
        owner[yy[inside], xx[inside]] = i
    if fine.all():
        return
    dist, (iy, ix) = ndi.distance_transform_edt(fine, return_indices=True)
    del fine
    who = owner[iy, ix]
    del owner, iy, ix
    halves = np.array([2.0 * c[1] for c in curves], dtype=np.float32)[who]
    colours = np.array([c[2] for c in curves], dtype=np.float32)[who]
    t = np.clip(dist.astype(np.float32) / halves, 0.0, 1.0)
    cover = (dist <= halves).astype(np.float32)
    del dist, halves
    shade = 0.55 + 0.45 * np.sqrt(1.0 - t * t) + 0.25 * np.exp(-((t / 0.3) ** 2))
    colours *= (shade * cover)[..., None]
    del shade, t

    def down(a):  # 2x2 block mean back to canvas pixels
        return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])

    alpha = down(cover)
    paint = down(colours)
    del colours, cover
    texture *= (1.0 - alpha)[..., None]
    texture += paint
    np.clip(texture, 0.0, 1.0, out=texture)
    # far in front of the background (which starts at 0.3), a little apart per strand
    near = np.float32(-0.45) + np.float32(0.02) * rng.random(len(curves)).astype(np.float32)
    np.copyto(depth, near[down(who.astype(np.float32)).round().astype(np.int64)], where=alpha >= 0.5)


def scene_texture(scene: str, shape, rng) -> np.ndarray:
    """(H, W, 3) float32 texture in [0, 1] of the canvas size."""
    if scene in _PHOTOS:
        return _photo(scene, shape, rng)
    scenes = {"rocks": _rocks, "pcb": _pcb, "checker": _checker, "patches": _patches}
    return lens_blur(scenes[scene](shape, rng))


def lens_blur(texture: np.ndarray) -> np.ndarray:
    """Band-limit a procedural texture in place, as a lens at best focus and the pixels do.

    Procedural edges are drawn pixel-sharp; without this, resampling a frame
    (as any aligner must) loses more than it would on a photograph.
    """
    import scipy.ndimage as ndi
    for c in range(texture.shape[2]):
        ndi.gaussian_filter(texture[..., c], _LENS_SIGMA, output=texture[..., c], mode="reflect")
    return texture


def _photo(name, shape, rng):
    import skimage.data
    from skimage.transform import resize

    image = getattr(skimage.data, name)()
    image = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        # Gray photographs get a warm tint so that colour paths are exercised.
        image = image[..., None] * np.array([1.0, 0.93, 0.80], dtype=np.float32)
    hc, wc = shape
    h, w = image.shape[:2]
    # Centre crop to the canvas aspect ratio, so nothing is stretched.
    if w / h > wc / hc:
        cw = max(1, int(round(h * wc / hc)))
        image = image[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = max(1, int(round(w * hc / wc)))
        image = image[(h - ch) // 2:(h - ch) // 2 + ch]
    h, w = image.shape[:2]
    factor = hc / h
    if factor <= 1.0:
        out = resize(image, (hc, wc), order=1, anti_aliasing=True, mode="reflect")
        out = out.astype(np.float32)
    else:
        out = np.empty((hc, wc, 3), dtype=np.float32)
        for c in range(3):
            out[..., c] = _upsample(image[..., c], (hc, wc))
    # Enlarged photographs lack fine detail; a surface grain restores some,
    # so that focus stays observable at every size.
    amount = 0.10 * min(1.0, max(0.0, (factor - 1.0) / 2.0))
    if amount > 0:
        grain = _fractal_noise(shape, rng, coarsest=16, persistence=0.8)
        out *= (1.0 + np.float32(amount) * grain)[..., None]
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _upsample(channel: np.ndarray, shape) -> np.ndarray:
    """Smooth enlargement: cubic to half size (cheap), then linear."""
    import scipy.ndimage as ndi
    h, w = channel.shape
    hc, wc = shape
    if hc > 4 * h:
        half = ((hc + 1) // 2, (wc + 1) // 2)
        channel = ndi.zoom(channel, (half[0] / h, half[1] / w), order=3, grid_mode=True,
                           mode="reflect", output=np.float32)
        h, w = channel.shape
        order = 1
    else:
        order = 3
    out = ndi.zoom(channel, (hc / h, wc / w), order=order, grid_mode=True, mode="reflect",
                   output=np.float32)
    return out[:hc, :wc]


def _fractal_noise(shape, rng, *, coarsest: float | None = None, persistence: float = 0.6,
                   finest_sigma: float = 0.7) -> np.ndarray:
    """Zero-mean, unit-std multi-octave noise of the given shape (float32).

    Octaves halve in size from ``coarsest`` pixels down to one pixel; each
    finer octave is ``persistence`` times weaker.
    """
    import scipy.ndimage as ndi
    hc, wc = shape
    if coarsest is None:
        coarsest = max(hc, wc) / 2
    levels = max(1, int(math.ceil(math.log2(max(coarsest, 2.0)))))
    cell = 2**levels
    field = rng.standard_normal((hc // cell + 2, wc // cell + 2), dtype=np.float32)
    amp = 1.0
    for level in range(levels - 1, -1, -1):
        cell = 2**level
        target = (-(-hc // cell) + 2, -(-wc // cell) + 2)
        field = ndi.zoom(field, (target[0] / field.shape[0], target[1] / field.shape[1]),
                         order=1, grid_mode=True, mode="nearest", output=np.float32)
        amp *= persistence
        field += np.float32(amp) * rng.standard_normal(target, dtype=np.float32)
    field = field[1:hc + 1, 1:wc + 1]
    if finest_sigma > 0:
        field = ndi.gaussian_filter(field, finest_sigma, output=np.float32, mode="reflect")
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    return field


def _smooth_noise(shape, rng, cell: float) -> np.ndarray:
    """Smooth blobs about ``cell`` pixels across, zero mean, unit std (float32)."""
    import scipy.ndimage as ndi
    hc, wc = shape
    cell = max(float(cell), 4.0)
    coarse = rng.standard_normal((int(hc / cell) + 3, int(wc / cell) + 3)).astype(np.float32)
    coarse = ndi.gaussian_filter(coarse, 0.7, mode="reflect")
    # Cubic on the small grid, linear for the final (large) enlargement.
    fine = ndi.zoom(coarse, 4, order=3, grid_mode=True, mode="reflect", output=np.float32)
    z = cell / 4.0
    out = ndi.zoom(fine, z, order=1, grid_mode=True, mode="reflect", output=np.float32)
    out = np.ascontiguousarray(out[:hc, :wc])
    out -= out.mean()
    out /= max(float(out.std()), 1e-6)
    return out


def _rocks(shape, rng):
    """Gravel: pebbles of varied colour on sand, with grain at every scale."""
    import scipy.ndimage as ndi
    hc, wc = shape
    short = min(hc, wc)
    blobs = _smooth_noise(shape, rng, cell=short / 40)
    level = 0.35
    labels, count = ndi.label(blobs > level)
    palette = np.empty((count + 1, 3), dtype=np.float32)
    palette[0] = (0.50, 0.43, 0.33)  # sand
    base = rng.uniform(0.2, 0.9, size=(count, 1))
    hue = rng.uniform(-0.15, 0.15, size=(count, 3))
    palette[1:] = np.clip(base + hue * np.array([1.0, 0.6, 0.2]), 0.05, 0.95)
    texture = palette[labels]
    del labels
    # Pebbles look rounded: darker towards their outline.
    height = np.clip((blobs - level) / 0.8, 0.0, 1.0)
    shade = np.where(blobs > level, 0.55 + 0.45 * np.sqrt(height), 1.0).astype(np.float32)
    del blobs, height
    grain = _fractal_noise(shape, rng, coarsest=short / 10, persistence=0.85)
    texture *= (shade * (1.0 + 0.22 * grain))[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _patches(shape, rng):
    """Speckled tissue with large flat patches: a third of the area has no texture."""
    hc, wc = shape
    short = min(hc, wc)
    base = rng.uniform(0.3, 0.7, size=3).astype(np.float32)
    tone = _fractal_noise(shape, rng, coarsest=max(4.0, short / 32), persistence=0.9)
    texture = base * (1.0 + 0.35 * tone)[..., None]
    del tone
    blobs = _smooth_noise(shape, rng, cell=short / 5)
    flat = blobs > np.quantile(blobs[::4, ::4], 0.67)
    del blobs
    texture[flat] = np.clip(base * rng.uniform(0.8, 1.2), 0.0, 1.0)
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _glyph(image, y, x, size, colour, rng):
    """A text-like mark: random strokes of a seven-segment cell."""
    w = max(1, int(round(size * 0.6)))
    t = max(1, int(round(size * 0.14)))
    h = int(round(size))
    half = h // 2
    segments = [
        (0, 0, t, w), (half - t // 2, 0, t, w), (h - t, 0, t, w),  # horizontals
        (0, 0, half, t), (half, 0, h - half, t),  # left verticals
        (0, w - t, half, t), (half, w - t, h - half, t),  # right verticals
    ]
    chosen = rng.random(len(segments)) < 0.55
    if not chosen.any():
        chosen[rng.integers(len(segments))] = True
    for (dy, dx, sh, sw), on in zip(segments, chosen, strict=False):
        if on:
            y0, x0 = max(0, y + dy), max(0, x + dx)
            image[y0:max(y0, y + dy + sh), x0:max(x0, x + dx + sw)] = colour
    return w


def _text(image, y, x, size, count, colour, rng):
    """A row of ``count`` glyphs starting at (y, x)."""
    for _ in range(count):
        width = _glyph(image, y, x, size, colour, rng)
        x += int(width + max(1, size * 0.3))
        if x >= image.shape[1]:
            break


def _checker(shape, rng):
    """Checkerboard whose squares carry rows of text-like marks."""
    hc, wc = shape
    square = max(8, int(min(hc, wc) / 6))
    light = np.array([0.92, 0.89, 0.80], dtype=np.float32)
    dark = np.array([0.16, 0.22, 0.38], dtype=np.float32)
    yy = (np.arange(hc) // square)[:, None]
    xx = (np.arange(wc) // square)[None, :]
    parity = ((yy + xx) % 2).astype(bool)
    texture = np.where(parity[..., None], dark, light).astype(np.float32)
    del parity
    glyph = max(3.0, square / 9)
    for by in range(-(-hc // square)):
        for bx in range(-(-wc // square)):
            colour = light * 0.95 if (by + bx) % 2 else dark * 1.1
            rows = int(rng.integers(2, 5))
            for r in range(rows):
                y = by * square + int(square * (0.12 + 0.22 * r))
                x = bx * square + int(square * rng.uniform(0.05, 0.2))
                count = int(rng.integers(3, 7))
                sub = texture[:, : (bx + 1) * square - int(square * 0.04)]
                _text(sub, y, x, glyph * rng.uniform(0.7, 1.3), count, colour, rng)
    grain = _fractal_noise(shape, rng, coarsest=square / 2, persistence=0.7)
    texture *= (1.0 + 0.05 * grain)[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _pcb(shape, rng):
    """Printed circuit board: woven substrate, traces, pads, vias, chips, labels."""
    hc, wc = shape
    short = min(hc, wc)
    texture = np.empty((hc, wc, 3), dtype=np.float32)
    texture[:] = (0.06, 0.30, 0.13)
    # Glass-fibre weave under the solder mask.
    period = max(4.0, short / 90)
    yy = np.arange(hc, dtype=np.float32)[:, None] * np.float32(2 * np.pi / period)
    xx = np.arange(wc, dtype=np.float32)[None, :] * np.float32(2 * np.pi / period)
    weave = np.sin(yy) * np.sin(xx)
    grain = _fractal_noise(shape, rng, coarsest=short / 4, persistence=0.75)
    texture *= (1.0 + 0.10 * weave + 0.10 * grain)[..., None]
    del weave, grain, yy, xx

    trace = np.array([0.20, 0.55, 0.22], dtype=np.float32)
    gold = np.array([0.86, 0.70, 0.36], dtype=np.float32)
    white = np.array([0.92, 0.93, 0.90], dtype=np.float32)
    black = np.array([0.08, 0.08, 0.09], dtype=np.float32)

    def box(y, x, h, w, colour):
        y0, x0 = int(max(0, y)), int(max(0, x))
        y1, x1 = int(min(hc, y + h)), int(min(wc, x + w))
        if y1 > y0 and x1 > x0:
            texture[y0:y1, x0:x1] = colour

    def disk(y, x, r, colour):
        _disk_paint(texture, y, x, max(1.0, r), colour)

    # Traces: Manhattan paths ending on round pads.
    for _ in range(int(rng.integers(45, 70))):
        width = max(2.0, short * rng.uniform(0.006, 0.014))
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        horizontal = bool(rng.integers(2))
        disk(y, x, width * 1.3, gold)
        for _ in range(int(rng.integers(2, 5))):
            length = short * rng.uniform(0.05, 0.35) * rng.choice([-1, 1])
            if horizontal:
                box(y - width / 2, min(x, x + length), width, abs(length) + width / 2, trace)
                x += length
            else:
                box(min(y, y + length), x - width / 2, abs(length) + width / 2, width, trace)
                y += length
            horizontal = not horizontal
        disk(y, x, width * 1.3, gold)
    # Vias: gold rings with a dark hole.
    for _ in range(int(rng.integers(30, 60))):
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        r = max(2.0, short * rng.uniform(0.006, 0.012))
        disk(y, x, r, gold)
        disk(y, x, r * 0.45, black)
    # Chips: black packages with gold pins and white markings.
    for _ in range(int(rng.integers(2, 5))):
        h = short * rng.uniform(0.10, 0.22)
        w = short * rng.uniform(0.10, 0.30)
        y, x = rng.uniform(0, hc - h), rng.uniform(0, wc - w)
        pin = max(2.0, short * 0.008)
        pitch = pin * 2.2
        n_pins = max(2, int(w / pitch) - 1)
        for i in range(n_pins):
            px = x + pitch * (i + 0.8)
            box(y - pin * 2.5, px, pin * 2.5, pin, gold)
            box(y + h, px, pin * 2.5, pin, gold)
        box(y, x, h, w, black)
        glyph = max(3.0, h / 6)
        _text(texture[:, : int(x + w)], int(y + h * 0.3), int(x + w * 0.1), glyph,
              int(rng.integers(3, 8)), white * 0.85, rng)
    # Silkscreen labels.
    for _ in range(int(rng.integers(15, 30))):
        glyph = max(3.0, short * rng.uniform(0.015, 0.03))
        _text(texture, int(rng.uniform(0, hc)), int(rng.uniform(0, wc)), glyph,
              int(rng.integers(2, 6)), white, rng)
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture


def _fine(shape, rng):
    """Dense detail at 2-6 px periods: hexagonal facets (an insect's eye) beside fine grain.

    The two materials share the canvas in large patches; the facets' period
    (3.3-5 px), orientation and contrast, and the colours are drawn anew per
    seed. Whatever the output size, the detail stays at these periods.
    """
    import scipy.ndimage as ndi
    hc, wc = shape
    short = min(hc, wc)
    period = rng.uniform(3.3, 5.0)
    theta = rng.uniform(0, np.pi / 3)
    yy = np.arange(hc, dtype=np.float32)[:, None]
    xx = np.arange(wc, dtype=np.float32)[None, :]
    k = np.float32(2 * np.pi / (period * math.sqrt(3) / 2))  # rows of a hexagonal lattice of this spacing
    facets = np.zeros((hc, wc), np.float32)
    for a in (theta, theta + np.pi / 3, theta + 2 * np.pi / 3):
        facets += np.cos(k * (np.float32(math.cos(a)) * xx + np.float32(math.sin(a)) * yy))
    facets = (facets + 1.5) / 4.5  # 0..1, bright at the facets' centres
    contrast = 0.5 + 0.15 * _smooth_noise(shape, rng, cell=short / 8)
    facets = 1.0 + np.clip(contrast, 0.2, 0.8) * (facets - 0.5) * 2.0
    # grain: fine fractal noise and a speckle of pores 2-3 px across
    speckle = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.8)
    speckle = (speckle > np.quantile(speckle[::3, ::3], 0.7)).astype(np.float32) - np.float32(0.3)
    grain = _fractal_noise(shape, rng, coarsest=16.0, persistence=0.95, finest_sigma=0.0)
    grain = 1.0 + np.float32(0.12) * grain - np.float32(rng.uniform(0.5, 0.8)) * speckle
    del speckle
    blobs = _smooth_noise(shape, rng, cell=short / 4)
    patches = blobs > np.quantile(blobs[::4, ::4], rng.uniform(0.3, 0.7))  # both materials, whatever the size
    del blobs
    detail = np.where(patches, facets, grain).astype(np.float32)
    del facets, grain, contrast, yy, xx
    colours = rng.uniform(0.25, 0.85, size=(2, 3)).astype(np.float32)
    mix = np.clip(0.5 + 0.5 * _smooth_noise(shape, rng, cell=short / 6), 0.0, 1.0)[..., None]
    texture = (colours[0] * (1.0 - mix) + colours[1] * mix) * detail[..., None]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture.astype(np.float32, copy=False)


def _board(canvas_shape, view, rng, objects: bool = True):
    """A circuit board at its edge: (texture, depth) on the canvas, depth larger farther.

    The board (a weakly textured substrate with faint traces, bright pads in
    rows and white print) lies on a tilted plane in the middle of the depth
    range; one or two chips with featureless tops stand on it, nearest of
    all (flat on the board without ``objects``), their bright pins on the
    board beside them; past the board's edges (one or two of them cross the
    view) a featureless backdrop, farthest, with a few specks of dust.
    """
    hc, wc = canvas_shape
    oy, ox, height, width = view
    short = min(height, width)
    yy = (np.arange(hc, dtype=np.float32) - np.float32(oy + height / 2))[:, None]
    xx = (np.arange(wc, dtype=np.float32) - np.float32(ox + width / 2))[None, :]
    phi = rng.uniform(0, 2 * np.pi)  # the board's axes, about the view's centre
    cu, su = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    u = xx * cu + yy * su
    v = yy * cu - xx * su
    # two edges of the board: one crosses the view near its middle, the other may lie beyond it
    extent_u = 0.5 * (abs(width * cu) + abs(height * su))
    extent_v = 0.5 * (abs(width * su) + abs(height * cu))
    edge_u = np.float32(rng.uniform(0.05, 0.45) * extent_u)
    edge_v = np.float32(rng.uniform(0.5, 1.3) * extent_v)
    board = (u < edge_u) & (v < edge_v)

    def ramp():  # 0..1 across the view, along a random direction
        a = rng.uniform(0, 2 * np.pi)
        c, s = math.cos(a), math.sin(a)
        ext = 0.5 * (abs(width * c) + abs(height * s))
        return np.float32(0.5) + (xx * np.float32(c) + yy * np.float32(s)) / np.float32(2 * ext)

    depth = np.where(board, np.float32(0.45) + np.float32(rng.uniform(0.1, 0.2)) * ramp(),
                     np.float32(0.95) + np.float32(0.05) * ramp()).astype(np.float32)

    # the backdrop: one colour, a gentle shading, and sparse dust
    backdrop = rng.uniform(0.25, 0.8) * rng.uniform(0.8, 1.2, size=3)
    texture = np.empty((hc, wc, 3), np.float32)
    texture[:] = np.clip(backdrop, 0.0, 1.0).astype(np.float32)
    texture *= (0.94 + 0.12 * ramp())[..., None]
    for _ in range(int(rng.poisson(height * width / 3000.0))):
        y, x = rng.uniform(0, hc), rng.uniform(0, wc)
        _disk_paint(texture, y, x, rng.uniform(0.7, 1.6), texture[int(y), int(x)] * rng.uniform(0.55, 0.8))

    # the substrate: weak grain and weave, faint traces
    base = np.array([(0.10, 0.42, 0.20), (0.12, 0.22, 0.50), (0.52, 0.38, 0.20)][int(rng.integers(3))],
                    np.float32) * np.float32(rng.uniform(0.9, 1.2))
    period = rng.uniform(5.0, 9.0)
    weave = np.sin(u * np.float32(2 * np.pi / period)) * np.sin(v * np.float32(2 * np.pi / period))
    grain = _fractal_noise((hc, wc), rng, coarsest=8.0, persistence=0.8)
    substrate = base * (1.0 + 0.12 * weave + 0.2 * grain)[..., None]
    del weave, grain

    def rect(u0, v0, du, dv, colour):
        substrate[(u >= u0) & (u < u0 + du) & (v >= v0) & (v < v0 + dv)] = colour

    # faint traces (a shade lighter than the board)
    for _ in range(int(rng.integers(15, 30))):
        w = max(1.5, short * rng.uniform(0.004, 0.01))
        u0, v0 = rng.uniform(-0.7, 0.7, size=2) * (extent_u, extent_v)
        length = short * rng.uniform(0.1, 0.5)
        if rng.integers(2):
            rect(u0, v0, length, w, base * 1.25)
        else:
            rect(u0, v0, w, length, base * 1.25)
    # bright pads in rows (tin or gold), round pads
    metals = [np.array((0.93, 0.93, 0.90), np.float32), np.array((0.95, 0.80, 0.45), np.float32)]
    for _ in range(int(rng.integers(12, 24))):
        metal = metals[int(rng.integers(2))]
        pu, pv = max(2.0, short * rng.uniform(0.008, 0.025)), max(2.0, short * rng.uniform(0.008, 0.025))
        count = int(rng.integers(1, 7))
        pitch = pu * rng.uniform(1.6, 2.4)
        u0, v0 = rng.uniform(-0.8, 0.8, size=2) * (extent_u, extent_v)
        for i in range(count):
            rect(u0 + i * pitch, v0, pu, pv, metal)
    for _ in range(int(rng.integers(10, 25))):
        r = max(1.5, short * rng.uniform(0.005, 0.015))
        cu0, cv0 = rng.uniform(-0.8, 0.8, size=2) * (extent_u, extent_v)
        ring = (u - np.float32(cu0)) ** 2 + (v - np.float32(cv0)) ** 2
        substrate[ring <= r * r] = metals[int(rng.integers(2))]
        substrate[ring <= (0.4 * r) ** 2] = base * 0.3
    # white print: text in board coordinates, drawn on an axis-aligned patch and mapped
    ui = np.floor(u - u.min()).astype(np.int32)
    vi = np.floor(v - v.min()).astype(np.int32)
    sheet = np.zeros((int(vi.max()) + 1, int(ui.max()) + 1), bool)
    for _ in range(int(rng.integers(6, 14))):
        glyph = max(3.0, short * rng.uniform(0.02, 0.035))
        _text(sheet, int(rng.uniform(0, sheet.shape[0])), int(rng.uniform(0, sheet.shape[1])), glyph,
              int(rng.integers(2, 6)), True, rng)
    substrate[sheet[vi, ui]] = np.float32(rng.uniform(0.88, 0.95))
    del sheet, ui, vi

    # chips: featureless tops, pins on the board along two sides
    placed = []
    for _ in range(int(rng.integers(1, 3))):
        du = short * rng.uniform(0.14, 0.24)
        dv = short * rng.uniform(0.14, 0.3)
        pin = max(1.5, short * 0.012)
        for _try in range(50):  # on the board, in the view, clear of the other chips and their pins
            u0 = rng.uniform(-0.7 * extent_u, edge_u - du - 0.05 * short)
            v0 = rng.uniform(-0.7 * extent_v, min(edge_v, 0.7 * extent_v) - dv - 0.05 * short)
            if all(u0 > a + da + 3 * pin or a > u0 + du + 3 * pin or v0 > b + db + 3 * pin
                   or b > v0 + dv + 3 * pin for a, b, da, db in placed):
                break
        else:
            continue
        placed.append((u0, v0, du, dv))
        pitch = pin * rng.uniform(2.0, 2.6)
        for i in range(max(2, int(du / pitch) - 1)):
            for side in (v0 - 2.2 * pin, v0 + dv):
                rect(u0 + pitch * (i + 0.6), side, pin, 2.2 * pin, metals[0])
        top = (u >= u0) & (u < u0 + du) & (v >= v0) & (v < v0 + dv)
        if rng.integers(2):
            colour = rng.uniform(0.06, 0.14) * np.array((1.0, 1.0, 1.08))  # black epoxy
        else:
            colour = rng.uniform(0.7, 0.85) * np.array((1.0, 0.94, 0.82))  # ceramic
        substrate[top] = colour.astype(np.float32)
        if objects:
            tilt = ((u - np.float32(u0)) / np.float32(du)) * np.float32(rng.uniform(-0.03, 0.03))
            np.copyto(depth, np.float32(rng.uniform(0.0, 0.06)) + tilt, where=top)
    texture[board] = substrate[board]
    np.clip(texture, 0.0, 1.0, out=texture)
    return texture, depth


def _disk_paint(image, y, x, r, colour):
    """Paint a disk of radius ``r`` (px) centred at (y, x) into ``image`` (in place)."""
    hc, wc = image.shape[:2]
    y0, y1 = int(max(0, y - r - 1)), int(min(hc, y + r + 2))
    x0, x1 = int(max(0, x - r - 1)), int(min(wc, x + r + 2))
    if y1 <= y0 or x1 <= x0:
        return
    dy = np.arange(y0, y1)[:, None] - y
    dx = np.arange(x0, x1)[None, :] - x
    image[y0:y1, x0:x1][dy * dy + dx * dx <= r * r] = colour


def _fine_scene(canvas_shape, view, rng, objects: bool = True):
    """:func:`_fine` on a rough relief: (texture, depth) on the canvas.

    The usual relief (:func:`depth_map`) gets a random roughness of about
    a frame (at 8 frames) that varies over tens of pixels, so that frames in
    focus at neighbouring pixels differ: a fusion that averages frames whose
    focus is alike, but not equal, blurs there.
    """
    short = min(view[2], view[3])
    texture = _fine(canvas_shape, rng)
    depth = depth_map(canvas_shape, view, rng, objects)
    texture = tint_objects(texture, depth < 0.0, rng)
    depth += np.float32(0.12) * _smooth_noise(canvas_shape, rng, cell=short / 12)
    return texture, depth


#: scenes that draw their own relief: name -> fn(canvas_shape, view, rng, objects) -> (texture, depth)
RELIEF_SCENES = {"board": _board, "fine": _fine_scene}
