"""Natural order, the image-name test and expanding folders and globs (io.paths)."""
from __future__ import annotations

from pathlib import Path

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
