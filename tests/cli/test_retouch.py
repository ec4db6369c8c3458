"""``stack --retouch MASK``: the mask is read and checked by the job plan, before any frame is fused."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_focus_stack import FocusStacker
from napari_focus_stack.cli import main
from napari_focus_stack.io.mask import write_retouch_mask
from napari_focus_stack.jobs import Job, plan_job
from napari_focus_stack.synthetic import make_stack, save_stack

SHAPE = (120, 160)


@pytest.fixture(scope="module")
def stack():
    return make_stack("astronaut", shape=SHAPE, n_frames=4, seed=1)


@pytest.fixture()
def frame_dir(tmp_path, stack):
    folder = tmp_path / "frames"
    save_stack(stack, folder, fmt="png", prefix="frame")
    return folder


def _mask(label=2, shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[30:90, 40:120] = label
    return mask


@pytest.fixture()
def no_fusion(monkeypatch):
    """Fail the test if any frame is fused."""
    def refuse(*args, **kwargs):
        raise AssertionError("a frame was fused before the mask was checked")

    monkeypatch.setattr("napari_focus_stack.pipeline.fuse_stack", refuse)


def test_retouch_mask_is_applied(frame_dir, tmp_path, stack, capsys):
    mask_file = write_retouch_mask(tmp_path / "mask.tif", _mask())
    out = tmp_path / "fused.png"
    assert main(["stack", str(frame_dir), "-o", str(out), "--depth-map", str(tmp_path / "d.tif"),
                 "--retouch", str(mask_file)]) == 0
    err = capsys.readouterr().err
    assert "retouched from frame 2 (4800 px)" in err
    paths = sorted(frame_dir.iterdir())
    want = FocusStacker().stack(paths, retouch=_mask())
    assert np.array_equal(np.asarray(Image.open(out)), want.image)
    depth = tifffile.imread(tmp_path / "d.tif")
    assert np.all(depth[_mask() == 2] == 1)


def test_a_png_mask_works_too(frame_dir, tmp_path):
    Image.fromarray(_mask(3)).save(tmp_path / "mask.png")
    assert main(["stack", str(frame_dir), "-o", str(tmp_path / "o.tif"), "-q",
                 "--retouch", str(tmp_path / "mask.png")]) == 0


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((100, 160), np.uint8), "mask.tif is 160 x 100 pixels, the fused image 160 x 120"),
        (_mask(7), "mask.tif: label 7 is no frame: the stack has 4 frames (0 keeps the automatic result, "
                   "1-4 take frames 1-4 in input order)"),
        (np.zeros(SHAPE, np.float32), "mask.tif: a retouch mask holds integer labels"),
        (np.zeros((*SHAPE, 3), np.uint8), "mask.tif: a retouch mask is one 2-D image of labels"),
    ],
    ids=["size", "label", "float", "rgb"],
)
def test_masks_that_do_not_fit_are_refused_in_one_line(frame_dir, tmp_path, capsys, no_fusion, mask, message):
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    out = tmp_path / "o.png"
    code = main(["stack", str(frame_dir), "-o", str(out), "--retouch", str(tmp_path / "mask.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_missing_mask_and_the_mask_as_output_are_refused(frame_dir, tmp_path, capsys, no_fusion):
    code = main(["stack", str(frame_dir), "-o", str(tmp_path / "o.png"), "--retouch", str(tmp_path / "nope.tif")])
    assert code == 2 and "nope.tif" in capsys.readouterr().err
    mask_file = write_retouch_mask(tmp_path / "mask.tif", _mask())
    before = mask_file.read_bytes()
    code = main(["stack", str(frame_dir), "-o", str(mask_file), "--retouch", str(mask_file)])
    assert code == 2 and "overwrite" in capsys.readouterr().err
    assert mask_file.read_bytes() == before


def test_the_plan_checks_the_mask_against_the_output_size(frame_dir, no_fusion):
    paths = sorted(frame_dir.iterdir())
    from napari_focus_stack.options import EngineOptions

    upscaled = EngineOptions(scale_factor=2, upscale_output=True)
    plan = plan_job(Job(paths, upscaled, retouch=_mask(shape=(240, 320))))
    assert plan.retouch.shape == (240, 320)
    with pytest.raises(ValueError, match="the fused image 320 x 240"):
        plan_job(Job(paths, upscaled, retouch=_mask()))


def test_microscope_data_is_refused(tmp_path, no_fusion):
    from hyperstacks import write_imagej

    data = np.zeros((3, 32, 40), np.uint16)
    path = write_imagej(tmp_path / "cells.tif", data, axes="ZYX")
    with pytest.raises(ValueError, match="microscope data .* cannot be retouched"):
        plan_job(Job([path], retouch=np.zeros((32, 40), np.uint8)))
