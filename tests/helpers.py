"""Small assertion helpers shared by the tests."""
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(peak**2 / max(mse, 1e-12))


def detail_transfer(image: np.ndarray, truth: np.ndarray) -> dict:
    """The quality benchmark's detail transfer (benchmarks/quality.py): truth's structure kept per period band."""
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from quality import detail_transfer as measure

    return measure(image, truth)
