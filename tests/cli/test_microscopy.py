"""``napari-focus-stack stack`` on microscope data: axes, calibration, --z-step, --channel."""
import numpy as np
import pytest
import tifffile

from hyperstacks import PIXEL, Z_STEP, edit_description, write_imagej, write_ome, write_ome_zarr
from napari_focus_stack.cli import main
from napari_focus_stack.synthetic import make_hyperstack


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("pcb", shape=(64, 80), n_z=6, n_t=2, n_c=2, seed=11)


def _cut(tczyx, axes):
    """The data with only `axes` (T, C, Z kept or dropped), in that order."""
    keep = tczyx[tuple(slice(None) if a in axes else 0 for a in "TCZYX")]
    src = [a for a in "TCZYX" if a in axes]
    return np.transpose(keep, [src.index(a) for a in axes])


@pytest.mark.parametrize("fmt", ["imagej", "ome"])
@pytest.mark.parametrize("axes, out_axes", [("ZYX", "YX"), ("ZCYX", "CYX"), ("TZYX", "TYX"), ("TZCYX", "TCYX")])
def test_stack_microscope_files(tmp_path, hyper, fmt, axes, out_axes, capsys):
    data = _cut(hyper.data, axes)
    src = tmp_path / ("in.tif" if fmt == "imagej" else "in.ome.tif")
    (write_imagej if fmt == "imagej" else write_ome)(src, data, axes)
    out, height = tmp_path / "fused.tif", tmp_path / "height.tif"
    assert main(["stack", str(src), "-o", str(out), "--depth-map", str(height)]) == 0
    sizes = {"T": 2, "C": 2, "Y": 64, "X": 80}
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == out_axes
        assert tif.series[0].shape == tuple(sizes[a] for a in out_axes)
        assert tif.imagej_metadata["unit"] == "micron"
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(PIXEL)
    with tifffile.TiffFile(height) as tif:
        h = tif.asarray()
        assert tif.imagej_metadata["vunit"] == "micron" and h.dtype == np.float32
    h = h if "T" not in axes else h[-1]
    ok = np.abs(h - Z_STEP * hyper.depth_index) <= Z_STEP
    assert ok[hyper.texture_mask].mean() > 0.9
    assert "heights in µm" in capsys.readouterr().err


def test_black_planes_are_excluded_by_name_not_fused(tmp_path, hyper, capsys):
    """9 planes of a sample and 11 black ones: the middle plane, the reference, is black."""
    good = np.repeat(_cut(hyper.data, "ZYX"), 2, axis=0)[:9]
    data = np.concatenate([good, np.zeros((11,) + good.shape[1:], good.dtype)])
    src = write_ome(tmp_path / "in.ome.tif", data, "ZYX")
    out, height = tmp_path / "fused.tif", tmp_path / "height.tif"
    assert main(["stack", str(src), "-o", str(out), "--depth-map", str(height)]) == 0
    err = capsys.readouterr().err
    assert "the reference in.ome.tif (z=10) is blank (every pixel is 0); in.ome.tif (z=4) is the reference" in err
    assert "; 11 planes excluded;" in err
    assert "  excluded in.ome.tif (z=19): blank (every pixel is 0)" in err
    fused, h = tifffile.imread(out), tifffile.imread(height)
    # no black plane fused in: no black areas (a pixel may clip to 0 where the pyramid overshoots a dark edge)
    assert (fused == 0).mean() < 1e-3 and np.median(fused) > np.median(good) / 2 and fused.max() > good.max() // 2
    assert 0 <= h.min() and h.max() <= 8 * Z_STEP and np.ptp(h) > 2 * Z_STEP


@pytest.mark.parametrize("field, value", [
    ("PhysicalSizeZ", "NaN"), ("PhysicalSizeZ", "INF"), ("PhysicalSizeZ", "1e308"), ("PhysicalSizeZ", "-0.5"),
    ("spacing", "inf"), ("spacing", "nan"), ("spacing", "0"), ("spacing", "-1"),
    ("PhysicalSizeX", "NaN"), ("PhysicalSizeX", "-0.1"), ("PhysicalSizeX", "1e308"),
])
def test_a_nonsense_calibration_is_ignored_with_one_warning(tmp_path, hyper, field, value, capsys):
    """One rule for every size a file gives: a number it cannot be is ignored, with one line naming it."""
    data = _cut(hyper.data, "ZYX")
    if field == "spacing":
        src = write_imagej(tmp_path / "in.tif", data, "ZYX")
        edit_description(src, lambda text: text.replace(f"spacing={Z_STEP}", f"spacing={value}"))
    else:
        src = write_ome(tmp_path / "in.ome.tif", data, "ZYX")
        old = f'{field}="{Z_STEP if field.endswith("Z") else PIXEL}"'
        edit_description(src, lambda xml: xml.replace(old, f'{field}="{value}"'))
    out, height = tmp_path / "fused.tif", tmp_path / "height.tif"
    assert main(["stack", str(src), "-o", str(out), "--depth-map", str(height)]) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if "warning" in line]
    assert len(warned) == 1 and f"{src.name}: the " in warned[0] and "is not a size" in warned[0], err
    assert "Warning" not in err  # no RuntimeWarning (overflow) or other Python warning
    h = tifffile.imread(height)
    assert np.isfinite(h).all()
    if field == "PhysicalSizeX":
        assert "heights in µm" in err
        with tifffile.TiffFile(out) as tif:
            assert tif.imagej_metadata.get("unit") in (None, "pixel")
    else:
        assert "heights in frame" in err and 0 <= h.min() and h.max() <= data.shape[0] - 1


def test_z_step_and_channel_options(tmp_path, hyper, capsys):
    src = write_ome(tmp_path / "in.ome.tif", _cut(hyper.data, "ZCYX"), "ZCYX")
    height = tmp_path / "h.ome.tif"
    assert main(["stack", str(src), "-o", str(tmp_path / "f.ome.tif"), "--depth-map", str(height),
                 "--z-step", "2", "--channel", "gfp"]) == 0
    h = tifffile.imread(height)
    ok = np.abs(h - 2 * hyper.depth_index) <= 2
    assert ok[hyper.texture_mask].mean() > 0.9
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, _cut(hyper.data, "ZYX"), photometric="minisblack")  # no calibration at all
    assert main(["stack", str(plain), "-o", str(tmp_path / "p.tif"), "--depth-map", str(tmp_path / "ph.tif"),
                 "--z-step", "0.25"]) == 0
    with tifffile.TiffFile(tmp_path / "ph.tif") as tif:
        assert tif.imagej_metadata["vunit"] == "micron"
        ok = np.abs(tif.asarray() - 0.25 * hyper.depth_index) <= 0.25
        assert ok[hyper.texture_mask].mean() > 0.9


def test_ome_zarr_folder(tmp_path, hyper):
    src = write_ome_zarr(tmp_path / "cells.zarr", hyper.data)
    out = tmp_path / "fused.ome.tif"
    assert main(["stack", str(src), "-o", str(out), "--depth-map", str(tmp_path / "h.tif"), "-q"]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TCYX" and tif.series[0].shape == (2, 2, 64, 80)
    assert tifffile.imread(tmp_path / "h.tif").shape == (2, 64, 80)


def test_microscopy_refusals(tmp_path, hyper, capsys):
    src = write_imagej(tmp_path / "in.tif", _cut(hyper.data, "TZCYX"), "TZCYX")
    assert main(["stack", str(src), "-o", str(tmp_path / "f.png")]) == 2
    assert "give a .tif name" in capsys.readouterr().err
    assert main(["stack", str(src), "-o", str(tmp_path / "f.tif"), "--channel", "RFP"]) == 2
    assert "no channel is called 'RFP'" in capsys.readouterr().err
    assert main(["stack", str(src), "-o", str(tmp_path / "f.tif"), "--channel", "5"]) == 2
    assert "indices 0 to 1" in capsys.readouterr().err
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(3):
        tifffile.imwrite(frames / f"f{k}.tif", hyper.data[0, 0, k])
    assert main(["stack", str(frames), "-o", str(tmp_path / "x.tif"), "--z-step", "0.5"]) == 2
    assert "--z-step needs one z-stack file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "in.tif"]


def test_batch_one_stack_per_file(tmp_path, hyper, capsys):
    scan = tmp_path / "positions"
    scan.mkdir()
    for k in (1, 2):
        tifffile.imwrite(scan / f"pos{k}.tif", _cut(hyper.data, "ZYX"), photometric="minisblack")
    write_imagej(scan / "pos3.tif", _cut(hyper.data, "TZCYX"), "TZCYX")
    tifffile.imwrite(scan / "overview.tif", hyper.data[0, 0, 0])  # one image: not a stack
    out = tmp_path / "out"
    assert main(["batch", str(scan), "-o", str(out), "--dry-run"]) == 0
    plan = capsys.readouterr()
    assert "mode: file" in plan.out + plan.err and "overview.tif" in plan.out + plan.err
    assert main(["batch", str(scan), "-o", str(out), "--depth-maps"]) == 0
    for k in (1, 2):
        assert tifffile.imread(out / f"pos{k}.tif").shape == (64, 80)
        assert tifffile.imread(out / f"pos{k}_depth.tif").dtype == np.float32
    with tifffile.TiffFile(out / "pos3.tif") as tif:
        assert tif.series[0].axes == "TCYX" and tif.imagej_metadata["unit"] == "micron"
    with tifffile.TiffFile(out / "pos3_depth.tif") as tif:
        h = tif.asarray()
        assert tif.series[0].axes == "TYX" and tif.imagej_metadata["vunit"] == "micron"
    ok = np.abs(h[0] - Z_STEP * hyper.depth_index) <= Z_STEP
    assert ok[hyper.texture_mask].mean() > 0.9
    capsys.readouterr()
    # a second run finds all three done
    assert main(["batch", str(scan), "-o", str(out), "--depth-maps"]) == 0
    captured = capsys.readouterr()
    assert "0 done, 3 skipped" in captured.out + captured.err


def test_time_points_on_a_dask_scheduler(tmp_path, hyper, capsys):
    distributed = pytest.importorskip("distributed")
    src = write_imagej(tmp_path / "in.tif", _cut(hyper.data, "TZCYX"), "TZCYX")
    assert main(["stack", str(src), "-o", str(tmp_path / "serial.tif"), "--depth-map", str(tmp_path / "sh.tif"),
                 "-q"]) == 0
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=50
    ) as cluster:
        assert main(["stack", str(src), "-o", str(tmp_path / "dask.tif"), "--depth-map", str(tmp_path / "dh.tif"),
                     "--scheduler", cluster.scheduler_address, "-q"]) == 0
        assert any(p.startswith("focus-stack") for p in cluster.scheduler.task_prefixes)  # the cluster fused them
        frames = tmp_path / "frames"
        frames.mkdir()
        for k in range(3):
            tifffile.imwrite(frames / f"f{k}.tif", hyper.data[0, 0, k])
        capsys.readouterr()
        assert main(["stack", str(frames), "-o", str(tmp_path / "x.tif"), "--scheduler",
                     cluster.scheduler_address]) == 2
        assert "batch FOLDER --scheduler" in capsys.readouterr().err
    for a, b in (("serial.tif", "dask.tif"), ("sh.tif", "dh.tif")):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / b), tifffile.imread(tmp_path / a))


def test_max_memory_holds_for_microscope_data(tmp_path, hyper, monkeypatch, capsys):
    # the job layer fits every kind of data in memory: tiles when short, a clear refusal when even tiles do not fit
    from napari_focus_stack.jobs import memory

    big = make_hyperstack("pcb", shape=(300, 320), n_z=4, n_t=2, n_c=1, seed=3)
    src = write_imagej(tmp_path / "in.tif", big.data[:, 0], "TZYX")
    whole = tmp_path / "whole.tif"
    assert main(["stack", str(src), "-o", str(whole), "-q", "--device", "cpu"]) == 0
    # pretend whole planes need 2 GiB and 256-px tiles a quarter of it
    monkeypatch.setattr(memory, "TILE_SIZES", (256,))
    monkeypatch.setattr(
        memory, "estimate_peak_memory", lambda shape, sf=1, inf=2, tile_size=None: 2**31 if tile_size is None else 2**29
    )
    tiled = tmp_path / "tiled.tif"
    assert main(["stack", str(src), "-o", str(tiled), "--max-memory", "1", "--device", "cpu"]) == 0
    assert "memory is short: fused in tiles of 256 px" in capsys.readouterr().err
    diff = np.abs(tifffile.imread(tiled).astype(float) - tifffile.imread(whole))
    assert diff.mean() < 0.5 / 255 * 65535, diff.mean()  # the same picture, as tiles of photos are
    args = ["stack", str(src), "-o", str(tmp_path / "no.tif"), "--max-memory", "0.01"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "GiB of memory" in err and "a larger --max-memory than 0.01 GiB" in err
    assert not (tmp_path / "no.tif").exists()
