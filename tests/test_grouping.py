"""Stack detection: OpenScan names, numbered files, subfolders, user patterns."""
from __future__ import annotations

from pathlib import Path

import pytest

from napari_focus_stack import split_into_stacks as split_top_level
from napari_focus_stack.errors import InputError, StackError
from napari_focus_stack.grouping import detect_stacks, split_into_stacks
from napari_focus_stack.stacker import FocusStacker


def touch(folder: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        out.append(p)
    return out


def openscan_names(poses=3, frames=4, name="Ella_0") -> list[str]:
    return [f"{name}_{p}-{f}.jpg" for p in range(poses) for f in range(1, frames + 1)]


def kinds(plan) -> list[str]:
    return [p.kind for p in plan.problems]


# ----------------------------------------------------------------- split_into_stacks


def test_split_openscan_natural_order():
    names = [
        "Ella_0_10-2.jpg", "Ella_0_2-10.jpg", "Ella_0_2-9.jpg", "Ella_0_10-1.jpg", "Ella_0_2-1.jpg", "Ella_0_10-10.jpg",
    ]
    stacks = split_into_stacks(names)
    assert stacks == [
        ["Ella_0_2-1.jpg", "Ella_0_2-9.jpg", "Ella_0_2-10.jpg"],
        ["Ella_0_10-1.jpg", "Ella_0_10-2.jpg", "Ella_0_10-10.jpg"],
    ]


def test_split_keeps_the_given_objects():
    paths = [Path("a/scan_1-2.jpg"), Path("a/scan_1-1.jpg")]
    stacks = split_into_stacks(paths)
    assert stacks == [[paths[1], paths[0]]]
    assert stacks[0][0] is paths[1]


def test_split_chunks_natural_order():
    names = [f"IMG_{i}.png" for i in (10, 1, 2, 12, 11, 3)]
    assert split_into_stacks(names, stack_size=3) == [
        ["IMG_1.png", "IMG_2.png", "IMG_3.png"],
        ["IMG_10.png", "IMG_11.png", "IMG_12.png"],
    ]


def test_split_remainder_is_an_error_naming_the_files():
    names = [f"IMG_{i}.png" for i in range(1, 8)]
    with pytest.raises(StackError, match=r"1 file\(s\) are left over.*IMG_7.png"):
        split_into_stacks(names, stack_size=3)


def test_split_openscan_with_wrong_stack_size():
    with pytest.raises(StackError, match="Ella_0_1"):
        split_into_stacks(openscan_names(2, 4)[:-1], stack_size=4)


def test_split_without_names_or_size_is_one_stack():
    names = ["b.jpg", "a10.jpg", "a9.jpg"]
    assert split_into_stacks(names) == [["a9.jpg", "a10.jpg", "b.jpg"]]
    assert split_into_stacks([]) == []


def test_split_entry_points_agree():
    names = openscan_names(2, 3)
    assert FocusStacker.split_into_stacks(names) == split_into_stacks(names) == split_top_level(names)


# ----------------------------------------------------------------- detect_stacks


def test_auto_openscan_folder(tmp_path):
    touch(tmp_path, *openscan_names(12, 5))
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan"
    assert "all 60 files" in plan.reason
    assert [s.name for s in plan.stacks][:3] == ["Ella_0_0", "Ella_0_1", "Ella_0_2"]
    assert plan.stacks[-1].name == "Ella_0_11"  # natural, not lexical, order
    assert all(len(s) == 5 for s in plan.stacks)
    assert plan.stacks[0].numbers == (1, 2, 3, 4, 5)
    assert plan.problems == []


def test_openscan_reports_unmatched_short_gap_and_ignored(tmp_path):
    names = openscan_names(3, 4)
    names.remove("Ella_0_1-3.jpg")  # gap in stack 1, which is also short
    touch(tmp_path, *names, "thumbnail.jpg", "notes.txt", ".hidden.jpg")
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan"
    assert "thumbnail.jpg" in plan.reason or "unmatched" in plan.reason
    assert [f.name for f in plan.unmatched] == ["thumbnail.jpg"]
    by_kind = {p.kind: p for p in plan.problems}
    assert set(by_kind) == {"ignored", "unmatched", "gap", "short"}
    assert "notes.txt" in by_kind["ignored"].message
    assert "frame 3 missing between Ella_0_1-2.jpg and Ella_0_1-4.jpg" in by_kind["gap"].message
    assert by_kind["short"].stack == "Ella_0_1" and "3 frames" in by_kind["short"].message
    assert all(".hidden" not in str(f) for f in plan.files)
    assert plan.problems_for("Ella_0_1") == [by_kind["gap"], by_kind["short"]]
    text = plan.summary()
    assert "thumbnail.jpg" in text and "[gap]" in text and "mode: openscan" in text


def test_one_frame_stack_and_duplicates(tmp_path):
    touch(tmp_path, *openscan_names(2, 3), "Ella_0_7-1.jpg", "Ella_0_0-2.png")
    plan = detect_stacks(tmp_path)
    assert "too_few" in kinds(plan) and "duplicate" in kinds(plan)
    dup = next(p for p in plan.problems if p.kind == "duplicate")
    assert {f.name for f in dup.files} == {"Ella_0_0-2.jpg", "Ella_0_0-2.png"}


def test_number_mode_chunks_and_reports_gaps(tmp_path):
    names = [f"IMG_{i:04d}.JPG" for i in range(1, 14) if i != 5]  # 12 files, IMG_0005 missing
    touch(tmp_path, *names)
    plan = detect_stacks(tmp_path, stack_size=4)
    assert plan.mode == "number"
    assert [s.name for s in plan.stacks] == ["IMG_0001-0004", "IMG_0006-0009", "IMG_0010-0013"]
    gap = next(p for p in plan.problems if p.kind == "gap")
    assert "IMG_0004.JPG and IMG_0006.JPG" in gap.message and "shifted" in gap.message
    assert kinds(plan) == ["gap"]


def test_number_mode_remainder_is_reported(tmp_path):
    touch(tmp_path, *[f"f{i}.png" for i in range(1, 11)])
    plan = detect_stacks(tmp_path, mode="number", stack_size=4)
    short = [p for p in plan.problems if p.kind == "short"]
    assert len(short) == 1 and "2 file(s) are left over" in short[0].message
    assert [f.name for f in short[0].files] == ["f9.png", "f10.png"]


def test_number_mode_needs_a_size(tmp_path):
    with pytest.raises(InputError, match="stack size"):
        detect_stacks(tmp_path, mode="number")


def test_folder_mode(tmp_path):
    touch(
        tmp_path, "pose 2/a1.tif", "pose 2/a2.tif", "pose 10/a1.tif", "pose 10/a2.tif", "pose 1/a1.tif", "pose 1/a2.tif"
    )
    plan = detect_stacks(tmp_path)
    assert plan.mode == "folder"
    assert [s.name for s in plan.stacks] == ["pose 1", "pose 2", "pose 10"]
    plan = detect_stacks(tmp_path, mode="folder")
    assert len(plan.stacks) == 3


def test_folder_mode_with_loose_files_reports_them(tmp_path):
    touch(tmp_path, "s1/a.png", "s1/b.png", "loose.png")
    plan = detect_stacks(tmp_path, mode="folder")
    assert [f.name for f in plan.unmatched] == ["loose.png"]


def test_regex_mode(tmp_path):
    touch(tmp_path, *[f"sample{s}_z{z:02d}.tif" for s in ("A", "B") for z in (3, 1, 2)], "overview.tif")
    plan = detect_stacks(tmp_path, pattern=r"(?P<stack>sample\w)_z(?P<frame>\d+)")
    assert plan.mode == "regex"
    assert [s.name for s in plan.stacks] == ["sampleA", "sampleB"]
    assert [f.name for f in plan.stacks[0].frames] == ["sampleA_z01.tif", "sampleA_z02.tif", "sampleA_z03.tif"]
    assert [f.name for f in plan.unmatched] == ["overview.tif"]


@pytest.mark.parametrize("pattern", ["(?P<stack", r"(?P<pose>\d+)"])
def test_regex_mode_bad_pattern(tmp_path, pattern):
    with pytest.raises(InputError, match="pattern"):
        detect_stacks(tmp_path, mode="regex", pattern=pattern)


def test_auto_falls_back_to_one_stack(tmp_path):
    touch(tmp_path, "b.jpg", "a10.jpg", "a9.jpg")
    plan = detect_stacks(tmp_path)
    assert plan.mode == "single" and "one stack" in plan.reason
    assert [f.name for f in plan.stacks[0].frames] == ["a9.jpg", "a10.jpg", "b.jpg"]


def test_empty_folder(tmp_path):
    touch(tmp_path, "readme.md")
    plan = detect_stacks(tmp_path)
    assert plan.stacks == []
    assert "empty" in kinds(plan) and "ignored" in kinds(plan)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        detect_stacks(tmp_path / "nope")


def test_exclude_and_file_lists(tmp_path):
    files = touch(tmp_path, *openscan_names(2, 3), "Ella_0_0.jpg")
    plan = detect_stacks(files, exclude=[tmp_path / "Ella_0_0.jpg"])
    assert plan.mode == "openscan" and plan.problems == [] and plan.root is None
    assert len(plan.to_dict()["stacks"]) == 2


def test_non_ascii_and_spaces(tmp_path):
    touch(tmp_path / "scän dir", *openscan_names(2, 2, name="Éllà 0"))
    plan = detect_stacks(tmp_path / "scän dir")
    assert [s.name for s in plan.stacks] == ["Éllà 0_0", "Éllà 0_1"]


def test_unknown_mode(tmp_path):
    with pytest.raises(InputError, match="unknown grouping mode"):
        detect_stacks(tmp_path, mode="poses")


def test_one_z_stack_per_file(tmp_path):
    import numpy as np
    import tifffile

    for k in (2, 10, 1):
        tifffile.imwrite(tmp_path / f"pos{k}.tif", np.zeros((5, 16, 16), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "overview.tif", np.zeros((16, 16), np.uint16))  # a single image
    plan = detect_stacks(tmp_path)
    assert plan.mode == "file" and "3 of 4 files are multi-page TIFF z-stacks" in plan.reason
    assert [s.name for s in plan.stacks] == ["pos1", "pos2", "pos10"]
    assert [s.frames for s in plan.stacks] == [(tmp_path / f"pos{k}.tif",) for k in (1, 2, 10)]
    assert [p.kind for p in plan.problems] == ["unmatched"] and "overview.tif" in plan.problems[0].message
    assert "one per file" in plan.summary()
    assert detect_stacks(tmp_path, mode="file").stacks == plan.stacks


# ----------------------------------------------------------------- OpenScan3


def openscan3_names(positions=3, frames=5, scan=1) -> list[str]:
    return [f"scan{scan:02d}_{p:03d}_fs{f:02d}.jpg" for p in range(positions) for f in range(frames)]


def test_openscan3_scan_folder_one_stack_per_position_in_fs_order(tmp_path):
    names = openscan3_names(3, 12)
    touch(tmp_path, *reversed(names), "scan.json")
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan3" and "OpenScan3" in plan.reason
    assert [s.name for s in plan.stacks] == ["scan01_000", "scan01_001", "scan01_002"]
    first = plan.stacks[0]
    assert [f.name for f in first.frames] == [f"scan01_000_fs{k:02d}.jpg" for k in range(12)]  # fs10 after fs09
    assert first.numbers == tuple(range(12))
    assert (first.scan, first.position) == (1, 0) and plan.stacks[2].position == 2
    assert kinds(plan) == ["ignored"]
    assert not plan.fatal


def test_openscan3_classic_names_keep_their_mode(tmp_path):
    touch(tmp_path, *openscan_names(2, 3))
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan" and all(s.scan is None for s in plan.stacks)


def test_openscan3_project_folder_is_a_batch_of_scans(tmp_path):
    touch(tmp_path, "openscan_project.json")
    touch(tmp_path / "scan01", *openscan3_names(2, 4, scan=1), "scan.json")
    touch(tmp_path / "scan02", *openscan3_names(3, 4, scan=2))
    touch(tmp_path / "scan01" / "stacked", "stacked_scan01_000.jpg", "stacked_scan01_001.jpg")
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan3" and "project" in plan.reason and "scan01/stacked" in plan.reason
    assert [s.name for s in plan.stacks] == ["scan01_000", "scan01_001", "scan02_000", "scan02_001", "scan02_002"]
    assert [(s.scan, s.position) for s in plan.stacks][2] == (2, 0)
    assert all(f.parent.name == f"scan{s.scan:02d}" for s in plan.stacks for f in s.frames)
    assert all("stacked" not in f.name for f in plan.files)
    assert {p.kind for p in plan.problems} == {"ignored"} and not plan.fatal
    assert plan.to_dict()["stacks"][2]["scan"] == 2


def test_openscan3_photos_without_focus_stacking(tmp_path):
    touch(tmp_path, "scan01_000.jpg", "scan01_001.jpg", *openscan3_names(1, 3, scan=1)[:0])
    plan = detect_stacks(tmp_path)
    assert plan.mode == "openscan3" and plan.stacks == []
    assert kinds(plan) == ["too_few"] and "without focus stacking" in plan.problems[0].message


def test_openscan3_single_photo_beside_a_stack_is_not_a_frame(tmp_path):
    touch(tmp_path, *openscan3_names(1, 3), "scan01_000.jpg")
    plan = detect_stacks(tmp_path)
    assert [len(s) for s in plan.stacks] == [3]
    assert [f.name for f in plan.unmatched] == ["scan01_000.jpg"]


def test_split_openscan3_names():
    names = list(reversed(openscan3_names(2, 11)))
    stacks = split_into_stacks(names)
    assert stacks == [openscan3_names(1, 11), openscan3_names(2, 11)[11:]]


# ----------------------------------------------------------------- repeated frame numbers


def test_repeated_numbers_in_auto_mode_are_fatal_and_say_what_fits(tmp_path):
    files = touch(tmp_path, *[f"pos{p}_{f}.jpg" for p in "AB" for f in range(1, 4)])
    plan = detect_stacks(tmp_path)
    assert plan.mode == "single"
    (dup,) = plan.fatal
    assert dup.kind == "duplicate" and set(dup.files) == set(files)
    assert "pos" + "A_1.jpg" in dup.message and "pos" + "B_1.jpg" in dup.message
    assert "--pattern '(?P<stack>.*?)[ _-]?(?P<frame>\\d+)$'" in dup.message
    assert "2 stacks: 2 x 3 frames" in dup.message
    assert "fatal" in plan.summary() and "\n" not in dup.message
    # the suggested pattern does fit
    fixed = detect_stacks(tmp_path, pattern=r"(?P<stack>.*?)[ _-]?(?P<frame>\d+)$")
    assert [s.name for s in fixed.stacks] == ["posA", "posB"] and not fixed.problems


def test_repeated_numbers_without_a_fitting_grouping_say_how_to_give_one(tmp_path):
    touch(tmp_path, "a_1.jpg", "a_2.jpg", "b_1.jpg")  # by prefix, b would be a stack of one frame
    plan = detect_stacks(tmp_path)
    assert plan.fatal and "--pattern with the named groups 'stack' and 'frame'" in plan.fatal[0].message


def test_same_frame_twice_is_fatal_in_auto_mode_only(tmp_path):
    touch(tmp_path, *openscan3_names(2, 3), "scan01_000_fs01.png")
    plan = detect_stacks(tmp_path)
    (dup,) = plan.fatal
    assert {f.name for f in dup.files} == {"scan01_000_fs01.jpg", "scan01_000_fs01.png"}
    assert "twice" in dup.message
    explicit = detect_stacks(tmp_path, mode="openscan3")
    assert "duplicate" in kinds(explicit) and not explicit.fatal
