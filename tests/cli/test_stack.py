"""``napari-focus-stack stack``: outputs, maps, errors, kills."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import napari_focus_stack
from napari_focus_stack.cli import main


@pytest.fixture()
def frame_dir(tmp_path, small_stack):
    from napari_focus_stack.synthetic import save_stack

    folder = tmp_path / "my frames"
    folder.mkdir()
    save_stack(small_stack, folder, fmt="png")
    return folder


def test_stack_folder_writes_image_and_maps(frame_dir, tmp_path, capsys):
    out = tmp_path / "fused.tif"
    code = main(
        ["stack", str(frame_dir), "-o", str(out), "--depth-map", str(tmp_path / "d.tif"),
         "--confidence-map", str(tmp_path / "c.tif"), "--radius", "4"]
    )
    assert code == 0
    import tifffile

    img = tifffile.imread(out)
    depth = tifffile.imread(tmp_path / "d.tif")
    conf = tifffile.imread(tmp_path / "c.tif")
    assert img.shape == (160, 200, 3) and img.dtype == np.uint8
    assert depth.dtype == np.float32 and 0 <= depth.min() and depth.max() <= 5
    assert conf.dtype == np.float32 and conf.max() <= 1
    assert "wrote" in capsys.readouterr().err


def test_never_overwrites_an_input(frame_dir, capsys):
    first = sorted(frame_dir.iterdir())[0]
    before = first.read_bytes()
    code = main(["stack", str(frame_dir), "-o", str(first), "-q"])
    assert code != 0
    assert first.read_bytes() == before
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overwrite" in err[0] and first.name in err[0]


def test_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ok = tmp_path / "ok.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(ok)
    code = main(["stack", str(bad), str(ok), "-o", str(tmp_path / "o.jpg"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "broken.jpg" in err[0]
    code = main(["stack", str(ok), str(ok), "-o", str(tmp_path / "o.jpg"), "--radius", "50", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "radius must be between 1 and 20" in err


def test_depth_map_needs_tiff(frame_dir, tmp_path, capsys):
    code = main(["stack", str(frame_dir), "-o", str(tmp_path / "f.png"), "--depth-map", str(tmp_path / "d.png")])
    assert code == 2 and "tif" in capsys.readouterr().err


def test_nonfinite_pixels_give_one_warning_line(tmp_path, small_stack, capsys):
    import tifffile

    folder = tmp_path / "float"
    folder.mkdir()
    for i, f in enumerate(small_stack.frames):
        f = f.astype(np.float32) / 255
        if i == 1:
            f[5, 5] = np.nan
            f[6, 6, 0] = np.inf
        tifffile.imwrite(folder / f"f{i}.tif", f, photometric="rgb")
    for align in ("none", "similarity"):
        out = tmp_path / f"fused-{align}.tif"
        assert main(["stack", str(folder), "-o", str(out), "--align", align]) == 0
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "warning" in line.lower()]
        expected = "napari-focus-stack: warning: 2 non-finite pixels (NaN or inf) treated as missing data in 1 frame"
        assert lines == [f"{expected}: f1.tif (2 px)"]
        assert "RuntimeWarning" not in err and np.isfinite(tifffile.imread(out)).all()


def test_replaced_reference_is_in_the_summary(tmp_path, small_stack, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    for i, f in enumerate(small_stack.frames[:5]):
        Image.fromarray(np.ascontiguousarray(f[::-1, ::-1]) if i == 2 else f).save(folder / f"f{i}.png")
    assert main(["stack", str(folder), "-o", str(tmp_path / "fused.png")]) == 0
    err = capsys.readouterr().err
    assert "warning: the reference f2.png matched no other frame" in err
    lines = err.splitlines()
    summary = [i for i, line in enumerate(lines) if "wrote" in line]
    assert len(summary) == 1 and "reference changed to f" in lines[summary[0]] and "1 excluded" in lines[summary[0]]
    assert lines[summary[0] + 1].startswith("  excluded f2.png: ")


# ---------------------------------------------------------------------------
# outputs: all or none, checked before the work, cleaned up after a kill
# ---------------------------------------------------------------------------

_SLOW_WRITE = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from PIL import Image\n"
    "from napari_focus_stack.cli import main\n"
    "flag = Path(sys.argv[1])\n"
    "def save(self, fp, *args, **kwargs):\n"
    "    fp.write(b'half an image')\n"
    "    fp.flush()\n"
    "    flag.touch()\n"
    "    time.sleep(120)\n"
    "Image.Image.save = save\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _stack_killed_while_writing(frame_dir: Path, out: Path, sig: int) -> subprocess.CompletedProcess:
    """Run ``stack`` in a process whose PNG encoder hangs halfway, and send it `sig` then."""
    env = dict(os.environ)
    src = str(Path(napari_focus_stack.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    flag = out.parent / "writing.flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITE, str(flag), "stack", str(frame_dir), "-o", str(out), "-q",
         "--device", "cpu"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), proc.communicate(timeout=5)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    flag.unlink()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigterm_while_writing_leaves_no_temporary_file(frame_dir, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _stack_killed_while_writing(frame_dir, out_dir / "fused.png", signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM and "terminated" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out_dir.iterdir()) == []


def test_rerun_after_sigkill_removes_the_stale_temporary_files(frame_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _stack_killed_while_writing(frame_dir, out_dir / "fused.png", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert _hidden(out_dir), "the kill left nothing to clean up: the test proves nothing"
    assert main(["stack", str(frame_dir), "-o", str(out_dir / "fused.png"), "-q", "--device", "cpu"]) == 0
    assert _hidden(out_dir) == [] and [p.name for p in out_dir.iterdir()] == ["fused.png"]


def test_when_one_output_fails_none_is_changed(frame_dir, tmp_path, monkeypatch, capsys):
    import errno

    import tifffile

    out = tmp_path / "out"
    out.mkdir()
    (out / "fused.png").write_bytes(b"an earlier result")
    real = tifffile.imwrite

    def imwrite(fh, data, *args, **kwargs):
        if "confidence" in str(getattr(fh, "name", fh)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fh, data, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", imwrite)
    code = main(["stack", str(frame_dir), "-o", str(out / "fused.png"), "--depth-map", str(out / "depth.tif"),
                 "--confidence-map", str(out / "confidence.tif"), "-q", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "disk is full" in err[0] and "confidence.tif" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["fused.png"]
    assert (out / "fused.png").read_bytes() == b"an earlier result"


def test_excluded_frames_are_listed_with_their_reasons(frame_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    odd = sorted(frame_dir.iterdir())[0]
    Image.fromarray(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)).save(odd)
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "f.png"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    err = err[next(i for i, line in enumerate(err) if line.startswith("wrote")):]  # after the progress bar
    assert err[0].startswith(f"wrote {tmp_path / 'f.png'}") and "1 excluded" in err[0]
    assert err[1].startswith(f"  excluded {odd.name}: ") and len(err[1]) > len(f"  excluded {odd.name}: ") + 5


def test_max_pixels_zero_lifts_the_limit(frame_dir, tmp_path):
    from PIL import Image as PILImage

    before = PILImage.MAX_IMAGE_PIXELS
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "f.png"), "-q", "--max-pixels", "0",
                 "--device", "cpu"]) == 0
    assert PILImage.MAX_IMAGE_PIXELS == before  # set for the command only
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "g.png"), "-q", "--max-pixels", "40000",
                 "--device", "cpu"]) == 0  # 200 x 160 = 32000 pixels


def test_stack_fuses_in_tiles_when_memory_is_short(tmp_path, monkeypatch, capsys):
    from napari_focus_stack.jobs import memory
    from napari_focus_stack.synthetic import make_stack, save_stack

    folder = tmp_path / "frames"
    stack = make_stack("pcb", shape=(600, 800), n_frames=3, seed=1)
    save_stack(stack, folder, fmt="png")
    assert main(["stack", str(folder), "-o", str(tmp_path / "whole.png"), "-q", "--device", "cpu"]) == 0
    # pretend whole frames need 2 GiB and 512-px tiles half of it, whatever this machine
    monkeypatch.setattr(
        memory, "estimate_peak_memory", lambda shape, sf=1, inf=2, tile_size=None: 2**31 if tile_size is None else 2**29
    )
    assert main(["stack", str(folder), "-o", str(tmp_path / "tiled.png"), "--max-memory", "1", "--device", "cpu"]) == 0
    assert "memory is short: fused in tiles of 512 px" in capsys.readouterr().err
    whole = np.asarray(Image.open(tmp_path / "whole.png"), dtype=float)
    tiled = np.asarray(Image.open(tmp_path / "tiled.png"), dtype=float)
    assert np.abs(whole - tiled).mean() < 0.5  # the same picture
    args = ["stack", str(folder), "-o", str(tmp_path / "no.png"), "--max-memory", "0.1", "--tile-size", "4096"]
    assert main(args) == 2
    assert "a larger --max-memory" in capsys.readouterr().err


def test_the_depth_map_is_regularised_only_when_written(frame_dir, tmp_path, monkeypatch):
    # the edge-aware fill costs a few tenths of a second of every run: a run that
    # writes only the fused image must not pay it
    import napari_focus_stack.pipeline as pipeline

    calls = []
    real = pipeline.regularised_depth
    monkeypatch.setattr(pipeline, "regularised_depth", lambda *a: calls.append(1) or real(*a))
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "fused.png"), "-q"]) == 0
    assert calls == []
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "f.png"), "--depth-map", str(tmp_path / "d.tif"),
                 "-q"]) == 0
    assert calls == [1]


def test_any_other_warning_is_one_line_too(frame_dir, tmp_path, monkeypatch, capsys):
    """A NumPy RuntimeWarning (or a library's) is one line saying where, not Python's two with the source."""
    import warnings

    from napari_focus_stack.stacker import FocusStacker

    real = FocusStacker.stack

    def overflowing(self, *args, **kwargs):
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FocusStacker, "stack", overflowing)
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "f.png"), "-q"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    where = r"\(RuntimeWarning, test_stack\.py:\d+\)"
    assert re.fullmatch(rf"napari-focus-stack: warning: overflow encountered in multiply {where}", lines[0])
