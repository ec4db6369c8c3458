"""outputs: every output checked before the work, written all or none."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_focus_stack.errors import OutputError
from napari_focus_stack.io.outputs import Output, check_outputs, same_file, write_outputs

IMAGE = np.full((8, 10, 3), 120, np.uint8)
MAP = np.zeros((8, 10), np.float32)


def test_same_file_through_spellings_links_and_hard_links(tmp_path):
    a = tmp_path / "a.tif"
    assert same_file(a, tmp_path / "." / "sub" / ".." / "a.tif")  # neither exists yet
    os.symlink("a.tif", tmp_path / "link.tif")  # dangling until a.tif is written
    assert same_file(a, tmp_path / "link.tif")
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.tif")
    assert same_file(a, tmp_path / "hard.tif")
    assert not same_file(a, tmp_path / "b.tif")


def test_check_outputs_writes_nothing(tmp_path):
    outs = [Output("image", tmp_path / "f.png", "-o"), Output("depth", tmp_path / "d.tif", "--depth-map")]
    check_outputs(outs, inputs=[tmp_path / "in.png"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match=r"-o .*f\.tif and --depth-map .*f\.tif are the same file"):
        check_outputs([Output("image", tmp_path / "f.tif", "-o"), Output("depth", tmp_path / "f.tif", "--depth-map")])


def test_write_outputs_all_or_none(tmp_path, monkeypatch):
    from napari_focus_stack.io import outputs as mod

    image, depth = tmp_path / "f.png", tmp_path / "d.tif"
    image.write_bytes(b"old image")
    outs = [Output("image", image), Output("depth", depth)]
    real = mod.write_image

    def failing(path, data, **kwargs):
        if Path(path).name.startswith(".d.tif"):
            raise KeyboardInterrupt  # interrupted while writing the second output
        return real(path, data, **kwargs)

    monkeypatch.setattr(mod, "write_image", failing)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(outs, {"image": IMAGE, "depth": MAP})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"] and image.read_bytes() == b"old image"
    monkeypatch.setattr(mod, "write_image", real)
    sizes = write_outputs(outs, {"image": IMAGE, "depth": MAP})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tif", "f.png"]
    assert sizes == {"image": image.stat().st_size, "depth": depth.stat().st_size}


def test_write_outputs_removes_what_a_killed_run_left(tmp_path):
    target = tmp_path / "f.png"
    for name in (".f.png.staged__.png", "..f.png.staged__.png.a1b2c3d4.png", ".f.png.zz99yy88.png"):
        (tmp_path / name).write_bytes(b"partial")
    write_outputs([Output("image", target)], {"image": IMAGE})
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_a_replaced_output_keeps_its_permissions(tmp_path):
    target = tmp_path / "f.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_outputs([Output("image", target)], {"image": IMAGE})
    assert target.stat().st_mode & 0o777 == 0o640


def test_an_encoder_failure_names_the_output_and_not_the_folder(tmp_path, monkeypatch):
    """Not ".f.tif.staged__.tif: ... Check the output folder": the folder is fine, the data is not."""
    import tifffile

    def refuse(*args, **kwargs):
        raise ValueError("cannot convert NaN to integer ratio")

    monkeypatch.setattr(tifffile, "imwrite", refuse)
    target = tmp_path / "f.tif"
    with pytest.raises(OutputError) as err:
        write_outputs([Output("image", target)], {"image": IMAGE})
    assert str(err.value) == (
        f"could not write {target}: the encoder failed (ValueError: cannot convert NaN to integer ratio)."
    )
    assert list(tmp_path.iterdir()) == []


def test_two_runs_writing_one_output_keep_each_others_staged_files(tmp_path):
    """Each run's cleanup of what killed runs left must not take the other's staged file for one."""
    from napari_focus_stack.io.encoders import write_image
    from napari_focus_stack.io.outputs import staged_outputs

    target = tmp_path / "s1.png"
    first = staged_outputs([Output("image", target)])
    stages = first.__enter__()
    write_image(stages["image"], IMAGE)  # the first run has staged its output, not yet renamed it
    write_outputs([Output("image", target)], {"image": IMAGE // 2})  # the second run, start to end
    first.__exit__(None, None, None)  # the first renames its staged file: still there
    assert np.asarray(Image.open(target)).tolist() == IMAGE.tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["s1.png"]
