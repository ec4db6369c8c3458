"""Quality against ground truth on synthetic stacks, side by side with focusweave.

Cases (every one a fresh random scene per seed, see ``CASES``):

* base: the eight scenes of :data:`napari_focus_stack.synthetic.SCENES`,
  light noise, JPEG q95;
* occlusion: thin near structures (hairs, bristles, wires) several frames in
  front of a textured background, where stackers leave halos;
* sparse: few frames or wide focus steps, where a detail is sharp in one
  frame only;
* noise: camera ISO noise on 8-bit frames (shot + read noise, JPEG q95) and
  shot noise on a 16-bit gray microscope-like stack (TIFF).

Metrics, each a PSNR against the all-in-focus truth:

* ``psnr``: the whole image;
* ``band``: a 9 px wide band centred on the true depth steps of more than
  one frame (where halos live), 16 px away from the image border;
* ``flat``: untextured pixels (the generator's ``texture_mask`` is False),
  16 px away from the border, where noise shows;

and the detail transfer (:func:`detail_transfer`), which PSNR misses: the
gain of the truth's own structure at 3.3-6 and 2-3.3 px periods (smoothing
raises PSNR and lowers it).

End to end, they are given for our engine, focusweave (``focusweave FOLDER
--output OUT --keep-size``, frames written losslessly to a temporary folder;
skipped when it is not installed), focus-stack (``focus-stack --nocrop``;
skipped likewise) and the oracle (true transforms, gains and
depth: every pixel interpolates the two frames bracketing its true depth, see
:func:`~napari_focus_stack.synthetic.oracle_composite`). Focusweave's own
alignment leaves it several dB behind on these moving stacks, which hides
its fusion; so the fusion alone is compared too: both fuse the same frames,
already aligned with the true transforms and exposures (:func:`prealigned`;
ours through :func:`fuse_aligned`, focusweave with ``--no-align``), and the
best of those frames gives the single-frame reference for flat areas.

    python benchmarks/quality.py [--shape 384 512] [--frames 8] [--seeds 0 1] [--cases pcb rocks+hairs]
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from skimage.metrics import structural_similarity

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import get_backend
from napari_focus_stack.align import corner_error, valid_region, warp_image
from napari_focus_stack.fusion import make_fusion
from napari_focus_stack.synthetic import SCENES, make_stack, oracle_composite

BORDER = 16  # px left out of the band and flat metrics (frames do not all cover it)
BAND = 9  # px, width of the band around depth steps

#: case name -> (group, make_stack keywords)
CASES: dict[str, tuple[str, dict]] = {
    **{scene: ("base", dict(scene=scene, jpeg_quality=95)) for scene in SCENES},
    "rocks+hairs": ("occlusion", dict(scene="rocks", occluders="hairs", jpeg_quality=95)),
    "coffee+bristles": ("occlusion", dict(scene="coffee", occluders="bristles", jpeg_quality=95)),
    "pcb+wires": ("occlusion", dict(scene="pcb", occluders="wires", jpeg_quality=95)),
    "pcb, 4 frames": ("sparse", dict(scene="pcb", n_frames=4, jpeg_quality=95)),
    "astronaut, 3 frames": ("sparse", dict(scene="astronaut", n_frames=3, jpeg_quality=95)),
    "chelsea, wide steps": ("sparse", dict(scene="chelsea", max_blur=18.0, jpeg_quality=95)),
    "camera ISO 8-bit": ("noise", dict(scene="camera", photons=800.0, noise=0.003, jpeg_quality=95)),
    "coins 16-bit shot": ("noise", dict(scene="coins", gray=True, dtype=np.uint16, photons=300.0, noise=0.002)),
}


def _maxval(a: np.ndarray) -> float:
    return 1.0 if a.dtype.kind == "f" else float(np.iinfo(a.dtype).max)


def _warp_to_reference(bk):
    def warp(image, m, out_shape):
        out = warp_image(bk, image, m, out_shape).astype(np.float32, copy=True)
        ok = valid_region(np, m, out_shape, image.shape[:2])
        out[~ok] = np.nan
        return out

    return warp


def psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of ``image`` against ``truth`` over ``mask`` (True pixels; NaN pixels of ``image`` ignored)."""
    peak = _maxval(truth)
    err = (np.asarray(image, np.float64) - np.asarray(truth, np.float64)) / peak
    err = err * err
    if err.ndim == 3:
        err = err.mean(axis=2)
    ok = np.isfinite(err) if mask is None else (mask & np.isfinite(err))
    if not ok.any():
        return float("nan")
    return float(-10 * np.log10(max(float(err[ok].mean()), 1e-20)))


#: period bands (px) of the detail-transfer metric: (shortest, longest period)
DETAIL_BANDS = {"3.3-6 px": (3.3, 6.0), "2-3.3 px": (2.0, 3.3)}


def _luma(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, np.float64) / _maxval(image)
    return a @ np.array([0.2125, 0.7154, 0.0721]) if a.ndim == 3 else a


def band_spectra(image: np.ndarray, border: int = BORDER) -> tuple[np.ndarray, np.ndarray]:
    """The windowed spectrum of ``image``'s luminance (``border`` px left out) and each frequency's period (px)."""
    a = _luma(image)[border:-border, border:-border] if border else _luma(image)
    a = a - a.mean()
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))  # no leakage from the crop's edges
    spectrum = np.fft.rfft2(a * window)
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.rfftfreq(a.shape[1])[None, :]
    with np.errstate(divide="ignore"):
        period = 1.0 / np.hypot(fy, fx)
    return spectrum, period


def detail_transfer(image: np.ndarray, truth: np.ndarray, border: int = BORDER) -> dict:
    """Gain of the truth's own structure in ``image``, per period band of :data:`DETAIL_BANDS`.

    ``Re(sum R T*) / sum |T|^2`` over the frequencies of the band, ``R`` and
    ``T`` the windowed spectra of the result's and the truth's luminance:
    1 is all of the truth's detail kept, at its place; noise and grain,
    uncorrelated with the truth, add nothing (unlike a power ratio), and
    detail moved or smeared counts less.
    """
    r, period = band_spectra(image, border)
    t, _ = band_spectra(truth, border)
    out = {}
    for name, (lo, hi) in DETAIL_BANDS.items():
        sel = (period >= lo) & (period < hi)
        out[name] = float(np.real(r[sel] * np.conj(t[sel])).sum() / max(float((np.abs(t[sel]) ** 2).sum()), 1e-30))
    return out


def band_power(image: np.ndarray, border: int = 0) -> dict:
    """Spectral power of ``image``'s luminance per period band of :data:`DETAIL_BANDS` (for real stacks)."""
    s, period = band_spectra(image, border)
    return {name: float((np.abs(s[(period >= lo) & (period < hi)]) ** 2).sum())
            for name, (lo, hi) in DETAIL_BANDS.items()}


def masks(stack, border: int = BORDER, band: int = BAND) -> dict:
    """``band`` (around depth steps of more than one frame) and ``flat`` (untextured) masks."""
    di = stack.depth_index
    inner = np.zeros(di.shape, bool)
    inner[border:-border, border:-border] = True
    step = np.zeros(di.shape, bool)
    dy = np.abs(np.diff(di, axis=0)) > 1.0
    dx = np.abs(np.diff(di, axis=1)) > 1.0
    step[1:] |= dy
    step[:-1] |= dy
    step[:, 1:] |= dx
    step[:, :-1] |= dx
    near_step = ndi.binary_dilation(step, np.ones((band, band), bool)) if step.any() else step
    return {"band": near_step & inner, "flat": ~stack.texture_mask & inner, "inner": inner}


def prealigned(stack):
    """The stack with every frame already in reference geometry and exposure (true transforms and gains).

    Frames are resampled with the sharpest interpolation the CPU backend has
    (Lanczos-4; edges replicated) and quantised back to their dtype. Fusing
    these with alignment off compares fusion alone.
    """
    bk = get_backend("cpu")
    peak = _maxval(stack.frames[0])
    frames = []
    for k, (frame, m) in enumerate(zip(stack.frames, stack.transforms, strict=True)):
        image = frame.astype(np.float32) / np.float32(peak)
        gain = np.asarray(stack.gains[k], np.float32)
        image /= gain if image.ndim == 3 else gain[0]
        image = warp_image(bk, image, np.asarray(m, np.float64), stack.depth_index.shape, 3)
        frames.append(np.clip(np.rint(image * peak), 0, peak).astype(frame.dtype))
    return dataclasses.replace(stack, frames=frames, transforms=[np.eye(3) for _ in frames],
                               gains=np.ones_like(stack.gains))


def fuse_aligned(frames: list, **stacker_kwargs) -> np.ndarray:
    """Our fusion alone (no alignment, no exposure matching) of frames that share one geometry.

    The fusion options (method, radius, smoothing, prefer) come from the
    :class:`FocusStacker` keywords; the others (scale factor...) are ignored.
    """
    opts = FocusStacker(device="cpu", **stacker_kwargs)
    bk = get_backend("cpu")
    peak = _maxval(frames[0])
    fusion = make_fusion(opts.method, bk, frames[0].shape[:2], opts.radius, opts.smoothing, prefer=opts.prefer)
    for i, frame in enumerate(frames):
        fusion.merge(i, fusion.prepare(frame.astype(np.float32) / np.float32(peak)))
    image = bk.to_numpy(fusion.result().image)
    return np.clip(np.rint(image * peak), 0, peak).astype(frames[0].dtype)


def run_focusweave(stack, extra: tuple[str, ...] = (), exe: str | None = None) -> np.ndarray | None:
    """focusweave's result for ``stack`` (frames written losslessly), or None when it is not installed."""
    exe = exe or shutil.which("focusweave")
    if exe is None:
        return None
    import tifffile
    from PIL import Image

    from napari_focus_stack.synthetic import save_stack

    sixteen = stack.frames[0].dtype != np.uint8
    with tempfile.TemporaryDirectory() as tmp:
        save_stack(stack, Path(tmp) / "in", fmt="tif" if sixteen else "png")
        out = Path(tmp) / ("out.tif" if sixteen else "out.png")
        proc = subprocess.run([exe, str(Path(tmp) / "in"), "--output", str(out), "--keep-size", *extra],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"focusweave failed:\n{proc.stderr[-2000:]}")
        image = tifffile.imread(out) if sixteen else np.asarray(Image.open(out))
    if stack.truth.ndim == 2 and image.ndim == 3:
        image = image[..., 0]  # gray in, RGB out
    return image


def run_focus_stack(stack, exe: str | None = None) -> np.ndarray | None:
    """focus-stack's (C++) result for ``stack`` in reference geometry (``--nocrop``), or None when not installed.

    Its reference frame is the middle one, as the generator's.
    """
    exe = exe or shutil.which("focus-stack")
    if exe is None:
        return None
    from PIL import Image

    from napari_focus_stack.synthetic import save_stack

    if stack.frames[0].dtype != np.uint8:
        return None  # it writes 8-bit images only
    with tempfile.TemporaryDirectory() as tmp:
        files = save_stack(stack, Path(tmp) / "in", fmt="png")
        out = Path(tmp) / "out.png"
        proc = subprocess.run([exe, f"--output={out}", "--nocrop", *map(str, files)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"focus-stack failed:\n{proc.stderr[-2000:]}")
        image = np.asarray(Image.open(out))
    if stack.truth.ndim == 2 and image.ndim == 3:
        image = image[..., 0]
    return image


def _scores(image, stack, m: dict, prefix: str, inner: bool = False) -> dict:
    """PSNR (whole image, or 16 px in from the border with ``inner``), band, flat and detail transfer."""
    if image is None:  # the tool is not installed
        return {f"{prefix}{k}": float("nan") for k in ("psnr", "band", "flat", "dt_wide", "dt_fine")}
    wide, fine = detail_transfer(image, stack.truth).values()
    return {
        f"{prefix}psnr": psnr(image, stack.truth, m["inner"] if inner else None),
        f"{prefix}band": psnr(image, stack.truth, m["band"]),
        f"{prefix}flat": psnr(image, stack.truth, m["flat"]),
        f"{prefix}dt_wide": wide,
        f"{prefix}dt_fine": fine,
    }


def evaluate_case(name: str, shape=(384, 512), n_frames: int = 8, seed: int = 0, peers: bool = True,
                  **stacker_kwargs) -> dict:
    """Make one case's stack, fuse it (ours, focusweave, oracle) and score everything.

    Keys without prefix are ours end to end; ``oracle_``, ``fw_`` (focusweave
    end to end) and ``fs_`` (focus-stack end to end) likewise; ``pre_`` and
    ``fwpre_`` are ours and focusweave's fusion alone, of the same frames
    already aligned with the true transforms (alignment off; PSNR 16 px in
    from the border, which those frames do not cover); ``frame_flat`` is the
    best of those frames in flat areas. ``dt_wide`` and ``dt_fine`` are the
    detail transfer (:func:`detail_transfer`) at 3.3-6 and 2-3.3 px.
    """
    group, spec = CASES[name]
    spec = {"n_frames": n_frames, **spec}  # sparse cases have fewer frames (a wider focus step)
    stack = make_stack(shape=tuple(shape), seed=seed, **spec)
    m = masks(stack)
    row = {"case": name, "group": group, "band_px": int(m["band"].sum()), "flat_px": int(m["flat"].sum())}

    result = FocusStacker(device="cpu", **stacker_kwargs).stack(stack.frames)
    row.update(_scores(result.image, stack, m, ""))
    peak = _maxval(stack.truth)
    channel = -1 if stack.truth.ndim == 3 else None
    row["ssim"] = float(structural_similarity(stack.truth.astype(np.float64), result.image.astype(np.float64),
                                              data_range=peak, channel_axis=channel))

    oracle = oracle_composite(stack, _warp_to_reference(get_backend("cpu")))
    oracle = np.clip(np.rint(oracle * peak), 0, peak).astype(stack.truth.dtype)
    row.update(_scores(oracle, stack, m, "oracle_"))
    row["gap_db"] = row["oracle_psnr"] - row["psnr"]

    aligned = prealigned(stack)
    row.update(_scores(fuse_aligned(aligned.frames, **stacker_kwargs), stack, m, "pre_", inner=True))
    row["frame_flat"] = max(psnr(f, stack.truth, m["flat"]) for f in aligned.frames)

    row.update(_scores(run_focusweave(stack) if peers else None, stack, m, "fw_"))
    row.update(_scores(run_focusweave(aligned, ("--no-align",)) if peers else None, stack, m, "fwpre_", inner=True))
    row.update(_scores(run_focus_stack(stack) if peers else None, stack, m, "fs_"))

    errors = [
        corner_error(est, true, stack.truth.shape[:2])
        for i, (est, true) in enumerate(zip(result.transforms, stack.transforms, strict=True))
        if est is not None and i != stack.reference
    ]
    row["align_err_px"] = float(np.mean(errors)) if errors else float("nan")
    row["align_err_max_px"] = float(np.max(errors)) if errors else float("nan")
    row["excluded"] = sum(t is None for t in result.transforms)
    within = np.abs(result.depth - stack.depth_index) <= 1.0
    row["depth_within_1"] = float(within[stack.texture_mask].mean())
    row["depth_within_1_plain"] = float(within[m["flat"]].mean()) if m["flat"].any() else float("nan")
    row["depth_within_1_all"] = float(within[m["inner"]].mean())
    return row


# the former name: base cases are named after their scene
evaluate_scene = evaluate_case


def quality_table(shape=(384, 512), n_frames: int = 8, seeds=(0, 1), cases=None, peers: bool = True,
                  **stacker_kwargs) -> list[dict]:
    """One row per case: the median of every figure over ``seeds``."""
    rows = []
    for name in cases or CASES:
        per_seed = [evaluate_case(name, shape, n_frames, seed, peers, **stacker_kwargs) for seed in seeds]
        row = {}
        for k, v in per_seed[0].items():
            row[k] = v if isinstance(v, str) else statistics.median(r[k] for r in per_seed)
        rows.append(row)
    return rows


def _f(x: float, fmt: str = ".2f") -> str:
    return "-" if x != x else format(x, fmt)


def format_quality(rows: list[dict]) -> str:
    """Four markdown tables: end to end, fusion alone, the band and flat areas end to end, detail transfer."""
    return "\n".join(quality_tables(rows))


def quality_tables(rows: list[dict]) -> tuple[str, str, str, str]:
    """The tables of :func:`format_quality`, apart."""
    d = lambda a, b: _f(a - b, "+.2f")  # noqa: E731
    t1 = (
        "| case | PSNR dB | oracle | vs oracle | focusweave | vs focusweave | SSIM "
        "| align err px (mean / max) | depth within 1 frame: textured / plain / all |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {r['case']} | {_f(r['psnr'])} | {_f(r['oracle_psnr'])} | {d(r['psnr'], r['oracle_psnr'])} "
        f"| {_f(r['fw_psnr'])} | {d(r['psnr'], r['fw_psnr'])} | {r['ssim']:.4f} "
        f"| {r['align_err_px']:.3f} / {r['align_err_max_px']:.3f} | {100 * r['depth_within_1']:.1f} / "
        f"{_f(100 * r.get('depth_within_1_plain', float('nan')), '.1f')} / "
        f"{_f(100 * r.get('depth_within_1_all', float('nan')), '.1f')} % |\n"
        for r in rows
    )
    t2 = (
        "| case | PSNR: ours | focusweave | vs | band: ours | focusweave | vs "
        "| flat: ours | focusweave | best frame | vs best frame |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {r['case']} | {_f(r['pre_psnr'])} | {_f(r['fwpre_psnr'])} | {d(r['pre_psnr'], r['fwpre_psnr'])} "
        f"| {_f(r['pre_band'])} | {_f(r['fwpre_band'])} | {d(r['pre_band'], r['fwpre_band'])} "
        f"| {_f(r['pre_flat'])} | {_f(r['fwpre_flat'])} | {_f(r['frame_flat'])} "
        f"| {d(r['pre_flat'], r['frame_flat'])} |\n"
        for r in rows
    )
    t3 = (
        "| case | band: ours | focusweave | oracle | flat: ours | focusweave | oracle |\n"
        "|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {r['case']} | {_f(r['band'])} | {_f(r['fw_band'])} | {_f(r['oracle_band'])} "
        f"| {_f(r['flat'])} | {_f(r['fw_flat'])} | {_f(r['oracle_flat'])} |\n"
        for r in rows
    )
    dt = lambda r, p: f"{_f(r[p + 'dt_wide'], '.3f')} / {_f(r[p + 'dt_fine'], '.3f')}"  # noqa: E731
    t4 = (
        "| case | ours | focusweave | focus-stack | focus-stack PSNR | fusion alone: ours | focusweave |\n"
        "|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {r['case']} | {dt(r, '')} | {dt(r, 'fw_')} | {dt(r, 'fs_')} | {_f(r['fs_psnr'])} "
        f"| {dt(r, 'pre_')} | {dt(r, 'fwpre_')} |\n"
        for r in rows
    )
    return t1, t2, t3, t4


def check_targets(rows: list[dict]) -> list[str]:
    """The issue's quality targets, one line per miss (empty: all met).

    PSNR and band against focusweave are checked both end to end and for the
    fusion alone; the flat-area target for the noise cases compares the
    fusion with the best of the same aligned frames.
    """
    missed = []

    def need(ok: bool, text: str) -> None:
        if not ok:
            missed.append(f"{r['case']}: {text}")

    for r in rows:
        need(r["psnr"] >= r["oracle_psnr"] - 0.2, f"PSNR {r['psnr']:.2f} < oracle {r['oracle_psnr']:.2f} - 0.2")
        need(r["psnr"] >= r["fw_psnr"] + 0.5, f"PSNR {r['psnr']:.2f} < focusweave {r['fw_psnr']:.2f} + 0.5")
        need(r["pre_psnr"] >= r["fwpre_psnr"] + 0.5,
             f"fusion PSNR {r['pre_psnr']:.2f} < focusweave's {r['fwpre_psnr']:.2f} + 0.5")
        if r["group"] == "occlusion":
            need(r["band"] >= r["fw_band"] + 0.5, f"band {r['band']:.2f} < focusweave {r['fw_band']:.2f} + 0.5")
            need(r["pre_band"] >= r["fwpre_band"] + 0.5,
                 f"fusion band {r['pre_band']:.2f} < focusweave's {r['fwpre_band']:.2f} + 0.5")
        if r["group"] == "noise":
            need(r["pre_flat"] >= r["frame_flat"] + 3.0,
                 f"fusion flat {r['pre_flat']:.2f} < best frame {r['frame_flat']:.2f} + 3")
        if r["case"] == "board":  # issue 20: plain parts filled from their own surface
            plain, every = r.get("depth_within_1_plain", float("nan")), r.get("depth_within_1_all", float("nan"))
            need(plain >= 0.9, f"depth within 1 frame on {100 * plain:.1f} % of plain pixels < 90 %")
            need(every >= 0.95, f"depth within 1 frame on {100 * every:.1f} % of all pixels < 95 %")
        for band, key in (("3.3-6", "dt_wide"), ("2-3.3", "dt_fine")):  # issue 20: as much detail as focusweave
            nan = float("nan")
            ours, theirs = r.get(key, nan), r.get(f"fw_{key}", nan)
            need(ours >= theirs, f"detail {band} px {ours:.3f} < focusweave {theirs:.3f}")
            ours, theirs = r.get(f"pre_{key}", nan), r.get(f"fwpre_{key}", nan)
            need(ours >= theirs, f"fusion detail {band} px {ours:.3f} < focusweave's {theirs:.3f}")
    return [m for m in missed if "nan" not in m]


def quality_section(rows: list[dict], seeds=(0, 1), shape=(384, 512)) -> str:
    """The quality section of docs/benchmarks.md: machine, date, command, tables and targets."""
    import datetime

    from common import machine

    missed = check_targets(rows)
    end_to_end, fusion, areas, detail = quality_tables(rows)
    return "\n".join([
        "## Quality where stackers fail: occlusion, noise, sparse stacks",
        "",
        f"Machine: {machine()}. Date: {datetime.date.today()}. Produced by `python benchmarks/quality.py --write` "
        f"(default settings; {shape[0]} x {shape[1]} px, 8 frames unless named, median over seeds "
        f"{', '.join(map(str, seeds))}; focusweave {_focusweave_version()}).",
        "",
        "End to end (our alignment and focusweave's own), against the oracle (true transforms, gains and depth):",
        "",
        end_to_end.rstrip(),
        "",
        "The fusion alone: both fuse the same frames, already aligned with the true transforms and exposures "
        "(focusweave with `--no-align`); band = 9 px band around true depth steps of more than one frame; "
        "flat = untextured areas; best frame = the best of those frames there:",
        "",
        fusion.rstrip(),
        "",
        "Band and flat areas end to end:",
        "",
        areas.rstrip(),
        "",
        "Detail transfer at 3.3-6 px / 2-3.3 px periods: the gain of the truth's own structure in the result "
        "(cross-spectrum of result and truth over the truth's power, luminance, 16 px border left out; "
        "1 = all of it kept in place, noise does not count). End to end (each tool's own alignment; "
        "focus-stack with `--nocrop`), and the fusion alone of the same aligned frames:",
        "",
        detail.rstrip(),
        "",
        "Targets (issues 13 and 20): "
        + ("all met." if not missed else "missed:\n\n" + "\n".join(f"- {m}" for m in missed)),
    ])


def _focusweave_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("focusweave")
    except PackageNotFoundError:  # installed apart (its own environment), or not at all
        exe = shutil.which("focusweave")
        if exe is None:
            return "not installed"  # its columns are empty
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
        return (proc.stdout.strip().split() or ["(version unknown)"])[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=2, default=(384, 512))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--cases", nargs="+", default=None, choices=list(CASES), metavar="CASE")
    p.add_argument("--no-peers", action="store_true", help="skip focusweave")
    p.add_argument("--write", action="store_true", help="rewrite the quality section of docs/benchmarks.md")
    p.add_argument("--scale-factor", type=int, default=None)
    p.add_argument("--radius", type=int, default=None)
    p.add_argument("--smoothing", type=float, default=None)
    p.add_argument("--method", default=None)
    a = p.parse_args()
    kw = {k: v for k, v in dict(scale_factor=a.scale_factor, radius=a.radius, smoothing=a.smoothing,
                                method=a.method).items() if v is not None}
    rows = quality_table(tuple(a.shape), a.frames, tuple(a.seeds), a.cases, not a.no_peers, **kw)
    section = quality_section(rows, tuple(a.seeds), tuple(a.shape))
    print(section)
    if a.write:
        from common import replace_section

        replace_section("quality", section)


if __name__ == "__main__":
    main()
