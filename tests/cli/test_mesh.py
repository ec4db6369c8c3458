"""``napari-focus-stack stack --mesh``: the height map as a PLY, STL or OBJ surface, through the job layer."""
import numpy as np
import pytest
import tifffile

from hyperstacks import PIXEL, Z_STEP, write_imagej
from meshes import read_mesh, read_ply, read_stl
from napari_focus_stack.cli import main
from napari_focus_stack.io.outputs import Output
from napari_focus_stack.jobs import Job, plan_job, run_job
from napari_focus_stack.synthetic import make_hyperstack

SHAPE = (48, 64)


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("pcb", shape=SHAPE, n_z=5, n_t=2, n_c=2, seed=5)


def test_a_time_series_gives_one_calibrated_coloured_mesh_per_time_point(tmp_path, hyper, capsys):
    src = write_imagej(tmp_path / "cells.tif", hyper.data, "TCZYX")  # red and green channels, 0.1 µm, 0.5 µm
    height = tmp_path / "height.tif"
    assert main(["stack", str(src), "-o", str(tmp_path / "fused.tif"), "--depth-map", str(height),
                 "--mesh", str(tmp_path / "relief.ply")]) == 0
    heights = tifffile.imread(height)
    h, w = SHAPE
    for t in range(2):
        mesh = read_ply(tmp_path / f"relief_t{t}.ply")
        assert len(mesh["vertices"]) == h * w and len(mesh["faces"]) == 2 * (h - 1) * (w - 1)
        x, y, z = mesh["vertices"].T
        # µm: x and y from the pixel size (y up the image), z the height map of that time point
        assert x.max() == pytest.approx((w - 1) * PIXEL) and y.min() == pytest.approx(-(h - 1) * PIXEL)
        np.testing.assert_allclose(z, heights[t].ravel(), rtol=1e-6)
        assert z.max() - z.min() <= (5 - 1) * Z_STEP + 1e-6
        assert "units um" in mesh["comments"]
        # the channels' colours (red, green): no blue anywhere, both others present
        colours = mesh["colors"].astype(int)
        assert colours[:, 2].max() == 0 and colours[:, 0].max() > 200 and colours[:, 1].max() > 200
    assert not (tmp_path / "relief.ply").exists()
    assert "relief_t1.ply" in capsys.readouterr().err


def test_photos_give_a_mesh_in_pixels_and_frames(tmp_path, capsys):
    from pathlib import Path

    frames = Path(__file__).resolve().parents[1] / "data" / "pcb-small"
    assert main(["stack", str(frames), "-o", str(tmp_path / "f.jpg"), "--mesh", str(tmp_path / "m.stl"),
                 "--mesh-z-scale", "10"]) == 0
    stl = read_stl(tmp_path / "m.stl")
    assert "units pixel (x, y), frame (z)" in stl["header"]
    mesh = read_mesh(tmp_path / "m.stl")
    lo, hi = mesh["vertices"].min(axis=0), mesh["vertices"].max(axis=0)
    assert hi[0] == pytest.approx(511) and lo[1] == pytest.approx(-383)  # 512 x 384 pixels
    assert 0 <= lo[2] and hi[2] <= 10 * 6 + 1e-3  # 7 frames, exaggerated ten times
    assert hi[2] - lo[2] > 10  # ... and the relief is there


def test_a_bad_mesh_name_is_refused_before_any_work(tmp_path, hyper, capsys, monkeypatch):
    src = write_imagej(tmp_path / "cells.tif", hyper.data[0], "CZYX")
    fused = tmp_path / "fused.tif"
    assert main(["stack", str(src), "-o", str(fused), "--mesh", str(tmp_path / "relief.glb")]) == 2
    err = capsys.readouterr().err
    assert "--mesh" in err and ".ply" in err and len(err.strip().splitlines()) == 1
    assert not fused.exists()
    # a mesh that cannot be written (a full disk...) leaves no fused image either: all or none
    import napari_focus_stack.jobs.job as job_module
    from napari_focus_stack.errors import OutputError

    def full_disk(path, *args, **kwargs):
        raise OutputError(f"could not write {path}: the disk is full.")

    monkeypatch.setattr(job_module, "write_mesh", full_disk)
    assert main(["stack", str(src), "-o", str(fused), "--mesh", str(tmp_path / "relief.ply")]) == 2
    assert "disk is full" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif"]


def test_the_job_layer_writes_the_mesh_with_the_other_outputs(tmp_path, hyper):
    data = hyper.data[0, 0]  # (Z, Y, X) photos-like array: frame indices, pixels
    job = Job(data, outputs=[Output("image", tmp_path / "f.tif"), Output("mesh", tmp_path / "m.obj")])
    plan = plan_job(job)
    assert plan.wants_depth and [o.path.name for o in plan.outputs] == ["f.tif", "m.obj"]
    done = run_job(plan)
    mesh = read_mesh(done.outputs["mesh"])
    assert len(mesh["vertices"]) == SHAPE[0] * SHAPE[1]
    np.testing.assert_allclose(np.sort(mesh["vertices"][:, 2]), np.sort(done.result.depth.ravel()), atol=1e-4)
