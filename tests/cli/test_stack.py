"""``napari-focus-stack stack``: outputs, maps, errors."""

import numpy as np
import pytest
from PIL import Image

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
    summary = [line for line in err.splitlines() if "wrote" in line]
    assert len(summary) == 1 and "reference changed to f" in summary[0] and "excluded: f2.png" in summary[0]
