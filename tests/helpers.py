"""Small assertion helpers shared by the tests."""
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(peak**2 / max(mse, 1e-12))


def stack_to_files(inputs, image, depth=None, confidence=None, progress=None, **job):
    """Run a :class:`~napari_focus_stack.jobs.Job` writing ``image`` (and the maps); its JobResult.

    ``job`` holds the Job's other fields; engine options (``align=``, ``device=``...) go into its options
    (CPU by default).
    """
    from pathlib import Path

    from napari_focus_stack.io.outputs import Output
    from napari_focus_stack.jobs import Job, plan_job, run_job
    from napari_focus_stack.options import EngineOptions

    engine = {k: job.pop(k) for k in list(job) if k in EngineOptions.__dataclass_fields__}
    engine.setdefault("device", "cpu")
    outputs = [Output(kind, Path(p)) for kind, p in (("image", image), ("depth", depth), ("confidence", confidence))
               if p is not None]
    return run_job(plan_job(Job(inputs, EngineOptions(**engine), outputs=outputs, **job)), progress=progress)


def detail_transfer(image: np.ndarray, truth: np.ndarray) -> dict:
    """The quality benchmark's detail transfer (benchmarks/quality.py): truth's structure kept per period band."""
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from quality import detail_transfer as measure

    return measure(image, truth)
