"""Quality against ground truth on synthetic stacks.

For every scene: PSNR/SSIM of the fused image against the all-in-focus
truth, the same for the oracle composite (true transforms + true depth,
the practical ceiling), alignment error (mean corner displacement against
the true transforms, px) and depth accuracy (share of textured pixels
whose depth is within one frame of the truth).

    python benchmarks/quality.py [--shape 384 512] [--frames 8] [--scale-factor 1]
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import get_backend
from napari_focus_stack.align import corner_error, valid_region, warp_image
from napari_focus_stack.synthetic import SCENES, make_stack, oracle_composite


def _oracle_warp(bk):
    def warp(image, m, out_shape):
        out = warp_image(bk, image, m, out_shape).astype(np.float32, copy=True)
        ok = valid_region(np, m, out_shape, image.shape[:2])
        out[~ok] = np.nan
        return out

    return warp


def _psnr_ssim(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    a = image.astype(np.float64)
    b = truth.astype(np.float64)
    rng = 1.0 if truth.dtype.kind == "f" else float(np.iinfo(truth.dtype).max)
    psnr = peak_signal_noise_ratio(b, a, data_range=rng)
    ssim = structural_similarity(b, a, data_range=rng, channel_axis=-1 if a.ndim == 3 else None)
    return float(psnr), float(ssim)


def evaluate_scene(scene: str, shape, n_frames: int, seed: int = 0, **stacker_kwargs) -> dict:
    """Run the stacker on one synthetic scene and score it against the truth."""
    stack = make_stack(scene, shape=tuple(shape), n_frames=n_frames, seed=seed, jpeg_quality=95)
    stacker = FocusStacker(device="cpu", **stacker_kwargs)
    result = stacker.stack(stack.frames)
    psnr, ssim = _psnr_ssim(result.image, stack.truth)
    maxval = float(np.iinfo(stack.truth.dtype).max)
    oracle = oracle_composite(stack, _oracle_warp(get_backend("cpu")))
    oracle = np.clip(np.rint(oracle * maxval), 0, maxval).astype(stack.truth.dtype)
    o_psnr, o_ssim = _psnr_ssim(oracle, stack.truth)
    errors = [
        corner_error(est, true, stack.truth.shape[:2])
        for i, (est, true) in enumerate(zip(result.transforms, stack.transforms))
        if est is not None and i != stack.reference
    ]
    excluded = sum(t is None for t in result.transforms)
    mask = stack.texture_mask
    depth_ok = float((np.abs(result.depth - stack.depth_index) <= 1.0)[mask].mean())
    return {
        "scene": scene,
        "psnr": psnr,
        "ssim": ssim,
        "oracle_psnr": o_psnr,
        "oracle_ssim": o_ssim,
        "gap_db": o_psnr - psnr,
        "align_err_px": float(np.mean(errors)) if errors else float("nan"),
        "align_err_max_px": float(np.max(errors)) if errors else float("nan"),
        "excluded": excluded,
        "depth_within_1": depth_ok,
    }


def quality_table(shape=(384, 512), n_frames: int = 8, seeds=(0,), **stacker_kwargs) -> list[dict]:
    rows = []
    for scene in SCENES:
        per_seed = [evaluate_scene(scene, shape, n_frames, seed, **stacker_kwargs) for seed in seeds]
        row = {k: (statistics.median(r[k] for r in per_seed) if k != "scene" else scene) for k in per_seed[0]}
        rows.append(row)
    return rows


def format_quality(rows: list[dict]) -> str:
    head = (
        "| scene | PSNR dB | oracle PSNR dB | gap dB | SSIM | oracle SSIM | align err px (mean / max) "
        "| depth within 1 frame | excluded |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['scene']} | {r['psnr']:.2f} | {r['oracle_psnr']:.2f} | {r['gap_db']:+.2f} | {r['ssim']:.4f} "
        f"| {r['oracle_ssim']:.4f} | {r['align_err_px']:.3f} / {r['align_err_max_px']:.3f} "
        f"| {100 * r['depth_within_1']:.1f} % | {r['excluded']} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=2, default=(384, 512))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--scale-factor", type=int, default=None)
    p.add_argument("--radius", type=int, default=None)
    p.add_argument("--smoothing", type=float, default=None)
    p.add_argument("--method", default=None)
    a = p.parse_args()
    kw = {k: v for k, v in dict(scale_factor=a.scale_factor, radius=a.radius, smoothing=a.smoothing,
                                method=a.method).items() if v is not None}
    print(format_quality(quality_table(tuple(a.shape), a.frames, tuple(a.seeds), **kw)))


if __name__ == "__main__":
    main()
