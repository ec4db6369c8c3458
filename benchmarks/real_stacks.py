"""Real stacks: is the fused image as sharp as the sharpest frame, and does the depth map hold?

There is no truth for a real stack, so sharpness is measured against the
frames themselves. The reference view is cut into tiles; in each tile, the
spectral power of the luminance in two period bands (3.3-6 px and 2-3.3
px, as :func:`quality.band_power`) is measured in every frame (the tile cut
from the frame as it was decoded, at the place the estimated transform maps
it to: no resampling) and in each tool's result. A tile counts when focus is
observable there (its sharpest frame holds at least ``MIN_FOCUS_RANGE``
times the power of its most defocused one at 3.3-6 px); the figure is the
median over those tiles of the result's power divided by the sharpest
frame's. 1 keeps the sharpest frame's detail; grain that a tool averages
away counts as lost power too, so a little under 1 is expected of a tool
that averages noise.

Each tool fuses the stack with its default settings: ours through the
library, focusweave (``--keep-size``) and focus-stack (``--nocrop``, with
its depth map) as commands, found on ``PATH`` (or ``--focusweave``,
``--focus-stack``). Their results are registered onto ours (similarity) to
find the tiles.

Images for docs/ (``--images``): per stack, crops at 100 % of the sharpest
frame, ours, focusweave and focus-stack side by side, and the depth maps
(ours as measured, ours regularised, our confidence, focus-stack's).

    python benchmarks/real_stacks.py [--stack NAME=GLOB ...] [--images] [--write]

The figures in docs/benchmarks.md also used a third stack, not shipped: 28
frames of a beetle's head (750 x 500 JPEG, dark plain background) from the
MIT-licensed noah-peeters/python-focus-stacking (``images/*.jpg``):
``--stack beetle='path/to/images/*.jpg'``.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PCB, ROOT, machine  # noqa: E402
from napari_focus_stack import FocusStacker  # noqa: E402
from napari_focus_stack._backend import get_backend  # noqa: E402
from napari_focus_stack.align import estimate_transform  # noqa: E402
from napari_focus_stack.depth import CONFIDENT  # noqa: E402
from napari_focus_stack.io import FrameSource  # noqa: E402
from quality import DETAIL_BANDS, band_power  # noqa: E402

TILE = 128  # px, side of a tile (smaller on small images: at least 8 tiles a side)
MIN_FOCUS_RANGE = 4.0  # sharpest / most defocused frame's 3.3-6 px power for a tile to count
CROP = 120  # px, side of the crops shown (PNG files of docs/ stay under 300 KB)
DOCS = ROOT / "docs"
_VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float32)

#: name -> glob of the frames; stacks whose files are missing are skipped
STACKS = {
    "focus-stack pcb": str(PCB / "pcb_*.jpg"),
    "focus-stack depthmap": str(ROOT.parent / "peers" / "focus-stack" / "examples" / "depthmap" / "pcb_*.JPG"),
}


def _gray(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, np.float32)
    a = a / (255.0 if image.dtype == np.uint8 else 65535.0 if image.dtype == np.uint16 else 1.0)
    return a @ np.array([0.2125, 0.7154, 0.0721], np.float32) if a.ndim == 3 else a


def run_peers(files: list[str], out: Path, focusweave: str | None, focus_stack: str | None) -> dict:
    """focusweave's and focus-stack's results (and focus-stack's depth map) as arrays; absent tools left out."""
    from PIL import Image

    got = {}
    if focusweave:
        with tempfile.TemporaryDirectory() as tmp:  # a folder holding only the frames
            for f in files:
                os.symlink(os.path.abspath(f), Path(tmp) / Path(f).name)
            target = out / "focusweave.png"
            subprocess.run([focusweave, tmp, "--output", str(target), "--keep-size"], check=True,
                           capture_output=True)
        got["focusweave"] = np.asarray(Image.open(target).convert("RGB"))
    if focus_stack:
        target, depth = out / "focus-stack.png", out / "focus-stack-depth.png"
        subprocess.run([focus_stack, f"--output={target}", f"--depthmap={depth}", "--nocrop", *files], check=True,
                       capture_output=True)
        got["focus-stack"] = np.asarray(Image.open(target).convert("RGB"))
        got["focus-stack depth"] = np.asarray(Image.open(depth).convert("L"))
    return got


def register(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """3x3 matrix from our result's pixel coordinates to ``theirs`` (similarity)."""
    bk = get_backend("cpu")
    a, b = _gray(ours), _gray(theirs)
    if a.shape != b.shape:  # register on the common top-left part
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        a, b = a[:h, :w].copy(), b[:h, :w].copy()
    return estimate_transform(a, b, "similarity", backend=bk).matrix


def tile_side(shape) -> int:
    """Side of the tiles for an image of ``shape``."""
    return int(max(32, min(TILE, min(shape[:2]) // 8)))


def _cut(gray: np.ndarray, m: np.ndarray, cy: float, cx: float, side: int) -> np.ndarray | None:
    """The ``side`` x ``side`` tile of ``gray`` around where ``m`` maps (cx, cy); None past its edges."""
    x, y, _ = m @ np.array([cx, cy, 1.0])
    y0, x0 = int(round(y)) - side // 2, int(round(x)) - side // 2
    if y0 < 0 or x0 < 0 or y0 + side > gray.shape[0] or x0 + side > gray.shape[1]:
        return None
    return gray[y0:y0 + side, x0:x0 + side]


def tile_powers(source: FrameSource, transforms: list, results: dict, maps: dict) -> list[dict]:
    """Per tile: its centre, every frame's and every result's band powers."""
    frames = [None if m is None else _gray(source.read(i)) for i, m in enumerate(transforms)]
    grays = {name: _gray(image) for name, image in results.items()}
    h, w = grays["ours"].shape
    side = tile_side((h, w))
    tiles = []
    for cy in range(side, h - side + 1, side):
        for cx in range(side, w - side + 1, side):
            row = {"cy": cy, "cx": cx, "frames": []}
            for f, m in zip(frames, transforms, strict=True):
                cut = None if f is None else _cut(f, m, cy, cx, side)
                row["frames"].append(None if cut is None else band_power(cut))
            for name, g in grays.items():
                cut = _cut(g, maps.get(name, np.eye(3)), cy, cx, side)
                row[name] = None if cut is None else band_power(cut)
            if all(p is not None for p in row["frames"]) and all(row[n] is not None for n in grays):
                tiles.append(row)
    return tiles


def power_ratios(tiles: list[dict], names: list[str]) -> dict:
    """Median over in-focus tiles of each result's band power over its sharpest frame's, and the tile count."""
    wide = next(iter(DETAIL_BANDS))
    out = {name: {band: [] for band in DETAIL_BANDS} for name in names}
    count = 0
    for t in tiles:
        powers = [p[wide] for p in t["frames"]]
        if max(powers) < MIN_FOCUS_RANGE * max(min(powers), 1e-30):
            continue
        count += 1
        sharpest = t["frames"][int(np.argmax(powers))]
        for name in names:
            for band in DETAIL_BANDS:
                out[name][band].append(t[name][band] / max(sharpest[band], 1e-30))
    return {"tiles": count, **{n: {b: statistics.median(v) if v else float("nan") for b, v in d.items()}
                               for n, d in out.items()}}


def crops_image(source, transforms, results, maps, tiles, path: Path, count: int = 2) -> None:
    """Side-by-side crops at 100 % (sharpest frame, then each result) of the ``count`` most detailed tiles."""
    from PIL import Image, ImageDraw

    wide = next(iter(DETAIL_BANDS))
    best = sorted(tiles, key=lambda t: -max(p[wide] for p in t["frames"]))
    side = min(CROP, min(results["ours"].shape[:2]) // 2)  # whatever the tiles' size
    chosen = []
    for t in best:  # apart from each other
        if all(abs(t["cy"] - c["cy"]) + abs(t["cx"] - c["cx"]) > 3 * side for c in chosen):
            chosen.append(t)
        if len(chosen) == count:
            break
    names = ["sharpest frame", *results]
    label = 14
    sheet = Image.new("RGB", (side * len(names), (side + label) * len(chosen)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, t in enumerate(chosen):
        k = int(np.argmax([p[wide] for p in t["frames"]]))
        frame = source.read(k)
        images = [(f"frame {k} (sharpest)", frame, transforms[k])]
        images += [(name, image, maps.get(name, np.eye(3))) for name, image in results.items()]
        for c, (title, image, m) in enumerate(images):
            x, y, _ = m @ np.array([t["cx"], t["cy"], 1.0])
            y0 = min(max(int(round(y)) - side // 2, 0), image.shape[0] - side)
            x0 = min(max(int(round(x)) - side // 2, 0), image.shape[1] - side)
            cut = np.asarray(image[y0:y0 + side, x0:x0 + side])
            if cut.dtype != np.uint8:
                cut = np.clip(np.rint(_gray(cut) * 255), 0, 255).astype(np.uint8)
            top = r * (side + label)
            sheet.paste(Image.fromarray(cut).convert("RGB"), (c * side, top + label))
            draw.text((c * side + 3, top + 1), title, fill="black")
    sheet.save(path, optimize=True)


def depth_image(depth_raw, depth, confidence, peer_depth, n_frames: int, path: Path, width: int = 400) -> None:
    """Our depth as measured and regularised, our confidence, and focus-stack's depth map, side by side."""
    from PIL import Image, ImageDraw

    def coloured(a, lo, hi):  # viridis, from five of its colours
        t = np.clip((np.asarray(a, np.float32) - lo) / max(hi - lo, 1e-9), 0, 1) * (len(_VIRIDIS) - 1)
        i = np.minimum(t.astype(int), len(_VIRIDIS) - 2)
        f = (t - i)[..., None]
        return np.rint(_VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f).astype(np.uint8)

    panels = [("ours, as measured", coloured(depth_raw, 0, n_frames - 1)),
              ("ours, regularised", coloured(depth, 0, n_frames - 1)),
              ("our confidence (0-1)", coloured(confidence, 0, 1))]
    if peer_depth is not None:
        panels.append(("focus-stack", coloured(peer_depth.astype(np.float32), 0, 255)))
    h = round(depth.shape[0] * width / depth.shape[1])
    label = 14
    sheet = Image.new("RGB", (width * 2, (h + label) * ((len(panels) + 1) // 2)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, rgb) in enumerate(panels):
        x, y = (i % 2) * width, (i // 2) * (h + label)
        sheet.paste(Image.fromarray(rgb).resize((width, h), Image.BILINEAR), (x, y + label))
        draw.text((x + 3, y + 1), title, fill="black")
    sheet.quantize(128).save(path, optimize=True)  # colour-mapped maps: a palette loses nothing visible


def evaluate(name: str, pattern: str, focusweave, focus_stack, images: bool, out_root: Path) -> dict | None:
    files = sorted(glob.glob(pattern))
    if len(files) < 2:
        print(f"{name}: no frames at {pattern}, skipped", file=sys.stderr)
        return None
    out = out_root / name.replace(" ", "-")
    out.mkdir(parents=True, exist_ok=True)
    source = FrameSource.from_inputs(files)
    result = FocusStacker(device="cpu").stack(source)
    results = {"ours": result.image}
    peers = run_peers(files, out, focusweave, focus_stack)
    peer_depth = peers.pop("focus-stack depth", None)
    results.update(peers)
    maps = {n: register(result.image, image) for n, image in results.items() if n != "ours"}
    tiles = tile_powers(source, result.transforms, results, maps)
    row = {"stack": name, "frames": len(files), "size": f"{result.image.shape[1]} x {result.image.shape[0]}",
           **power_ratios(tiles, list(results))}
    # blobs at the ends of the stack where the depth is a guess (our confidence says so): a pixel at the
    # first or last frame more than 2 frames from the median of its surroundings (a 20th of the image)
    import scipy.ndimage as ndi

    plain = result.confidence[::4, ::4] < CONFIDENT
    n = len(files)
    row["plain"] = float(plain.mean())
    for key, depth in (("ends_raw", result.depth_raw[::4, ::4]), ("ends", result.depth[::4, ::4])):
        around = ndi.median_filter(depth, size=max(3, max(depth.shape) // 20))
        blob = ((depth < 0.5) | (depth > n - 1.5)) & (np.abs(depth - around) > 2)
        row[key] = float(blob[plain].mean()) if plain.any() else float("nan")
    if images:
        slug = name.replace(" ", "-")
        crops_image(source, result.transforms, results, maps, tiles, DOCS / f"crops-{slug}.png")
        depth_image(result.depth_raw, result.depth, result.confidence, peer_depth, len(files),
                    DOCS / f"depth-{slug}.png")
    return row


def format_rows(rows: list[dict]) -> str:
    """Two markdown tables: band power kept, and the depth map where it is a guess."""
    names = [n for n in ("ours", "focusweave", "focus-stack") if any(n in r for r in rows)]
    head = "| stack | frames | tiles | " + " | ".join(f"{n}: {b}" for n in names for b in DETAIL_BANDS) + " |\n"
    head += "|---|---|---|" + "---|" * (len(names) * len(DETAIL_BANDS)) + "\n"
    power = head + "".join(
        f"| {r['stack']} ({r['size']}) | {r['frames']} | {r['tiles']} | "
        + " | ".join(f"{r[n][b]:.2f}" if n in r else "-" for n in names for b in DETAIL_BANDS) + " |\n"
        for r in rows
    )
    depth = (
        "| stack | depth a guess (confidence < CONFIDENT) | there, blobs at the first or last frame: as measured "
        "| regularised |\n|---|---|---|---|\n"
    ) + "".join(
        f"| {r['stack']} | {100 * r['plain']:.0f} % | {100 * r['ends_raw']:.0f} % | {100 * r['ends']:.0f} % |\n"
        for r in rows
    )
    return power + "\n" + depth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", action="append", default=[], metavar="NAME=GLOB", help="a stack (repeat); "
                   "default: the pcb stacks of shared/data and of focus-stack's examples")
    p.add_argument("--focusweave", default=shutil.which("focusweave"))
    p.add_argument("--focus-stack", default=shutil.which("focus-stack"))
    p.add_argument("--images", action="store_true", help="write crops and depth maps to docs/")
    p.add_argument("--write", action="store_true", help="rewrite the real-stacks section of docs/benchmarks.md")
    p.add_argument("--out", type=Path, default=ROOT / "bench-out" / "real", help="the tools' results go here")
    a = p.parse_args()
    stacks = dict(s.split("=", 1) for s in a.stack) if a.stack else STACKS
    rows = [r for name, pattern in stacks.items()
            if (r := evaluate(name, pattern, a.focusweave, a.focus_stack, a.images, a.out)) is not None]
    table = format_rows(rows)
    section = "\n".join([
        f"Machine: {machine()}. Date: {datetime.date.today()}. Produced by `python benchmarks/real_stacks.py"
        f"{' --images' if a.images else ''}` (default settings of every tool).",
        "",
        "Spectral power of the luminance kept against the sharpest input frame, median over the "
        f"tiles ({TILE} px, on small images an eighth of the short side) where focus is observable (the "
        f"sharpest frame holds >= {MIN_FOCUS_RANGE:g} times the 3.3-6 px power of the most defocused one); "
        "1 keeps all of the sharpest frame's detail (and grain). Then our depth map where its confidence says it "
        "is a guess, and how much of that is a blob of noise at the first or last frame (more than 2 frames from "
        "the median depth around it, in a window a 20th of the image):",
        "",
        table.rstrip(),
    ])
    print(section)
    if a.write:
        from common import replace_section

        replace_section("real", section)


if __name__ == "__main__":
    main()
