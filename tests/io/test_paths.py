"""Natural order, the image-name test and expanding folders and globs (io.paths)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from io_helpers import make_folder

from napari_focus_stack.io import (
    IMAGE_EXTENSIONS,
    expand_inputs,
    is_image_name,
    natural_sort_key,
    natural_sorted,
)


def test_natural_sort_numbers_case_and_name_first():
    names = ["scan_10.jpg", "scan_2.jpg", "Scan_1.jpg", "scan_1a.jpg"]
    assert natural_sorted(names) == ["Scan_1.jpg", "scan_1a.jpg", "scan_2.jpg", "scan_10.jpg"]
    assert natural_sort_key("IMG_3.JPG") < natural_sort_key("img_4.jpg")
    # the file name decides before the folder
    assert natural_sorted(["b/img_10.png", "a/img_2.png"]) == ["a/img_2.png", "b/img_10.png"]
    # ties on the name fall back to the full path, then the raw string
    assert natural_sorted(["z/f1", "a/f1"]) == ["a/f1", "z/f1"]
    assert natural_sorted(["f01", "f1"]) == ["f01", "f1"]
    paths = [Path("x/p_100.tif"), Path("x/p_20.tif")]
    assert natural_sorted(paths) == paths[::-1]


def test_folders_and_globs_give_exactly_the_image_files(tmp_path):
    images = ["a.jpg", "b.JPEG", "c.png", "d.TIF", "e.tiff", "f.bmp", "g.WebP", "h_2.jpg", "h_10.jpg"]
    junk = ["notes.txt", "raw.CR2", "anim.gif", "jpg", ".hidden.jpg", "._a.jpg", "b.jpg.part"]
    for name in images + junk:
        (tmp_path / name).write_bytes(b"not decoded")
    (tmp_path / "folder.jpg").mkdir()  # named like an image, but a folder
    # every listed extension, in any case, is an image; nothing else is
    assert {Path(n).suffix.lower() for n in images} == IMAGE_EXTENSIONS
    assert [is_image_name(n) for n in images] == [True] * len(images)
    assert [is_image_name(tmp_path / n) for n in junk] == [False] * len(junk)
    assert [p.name for p in expand_inputs(tmp_path)] == images
    assert [p.name for p in expand_inputs(str(tmp_path / "*"))] == images
    # files given one by one are kept as given, in the order given
    assert expand_inputs([tmp_path / "h_10.jpg", tmp_path / "notes.txt"]) == [
        tmp_path / "h_10.jpg",
        tmp_path / "notes.txt",
    ]


def test_a_file_given_more_than_once_is_used_once_with_one_warning(tmp_path):
    """Repeated, a frame would pass as two frames and repeat its focus step: depth indices would mean nothing."""
    from napari_focus_stack.errors import FocusStackWarning

    make_folder(tmp_path / "s", ["a_1.png", "a_2.png", "a_3.png"])
    s = tmp_path / "s"
    os.link(s / "a_1.png", tmp_path / "hard.png")
    os.symlink(s / "a_2.png", tmp_path / "soft.png")
    with pytest.warns(FocusStackWarning, match=r"^4 files were given more than once; each is used once: ") as got:
        files = expand_inputs([s, s / "a_2.png", tmp_path / "hard.png", s / ".." / "s" / "a_3.png",
                               tmp_path / "soft.png"])
    assert files == [s / "a_1.png", s / "a_2.png", s / "a_3.png"]
    assert len(got) == 1 and "hard.png" in str(got[0].message) and "soft.png" in str(got[0].message)
    with pytest.warns(FocusStackWarning, match=r"a_1\.png was given more than once; it is used once$"):
        assert expand_inputs([s / "a_1.png", s / "a_1.png", s / "a_3.png"]) == [s / "a_1.png", s / "a_3.png"]
    with pytest.warns(FocusStackWarning, match="3 files were given more than once"):
        assert expand_inputs([s, s]) == expand_inputs(s)
