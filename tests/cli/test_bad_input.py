"""Bad input on the command line: one table, one line per case, nothing written, no work wasted.

Each row is a careless or unlucky command: what it runs, the exit code, a
fragment of the one-line message, and the files that must not exist
afterwards. Rows marked ``before_work`` must be refused before the engine
starts. For every row the input frames are unchanged and no hidden
temporary file is left. New cases join the table.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from napari_focus_stack.cli import main

Args = Callable[[Path], list]


@dataclass(frozen=True)
class Case:
    id: str
    args: Args  # the command line, given the work folder
    code: int
    words: str
    absent: tuple[str, ...] = ()  # relative to the work folder: must not exist afterwards
    before_work: bool = True
    setup: Callable[[Path], None] | None = None
    one_line: bool = True
    marks: tuple = field(default=())


def _link(name: str, target: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        os.symlink(target, w / name)

    return setup


def _bomb(w: Path) -> None:
    """A JPEG whose header claims 20000 x 20000 pixels (400 million): its pixels are never decoded."""
    from PIL import Image

    (w / "bomb").mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 100 * i, np.uint8)).save(w / "bomb" / f"b_{i}.jpg")
        p = w / "bomb" / f"b_{i}.jpg"
        data = bytearray(p.read_bytes())
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
        p.write_bytes(bytes(data))


def _protected(name: str) -> Callable[[Path], None]:
    """An existing file made read-only (chmod 444) to keep it."""
    def setup(w: Path) -> None:
        (w / name).write_bytes(b"keep me")
        (w / name).chmod(0o444)

    return setup


def _corrupt_jpeg(w: Path) -> None:
    """JPEG frames, one with 2000 random bytes inside its compressed data (OpenCV decodes it without an error)."""
    from PIL import Image

    (w / "jpgs").mkdir()
    for p in sorted((w / "frames").iterdir()):
        Image.open(p).convert("RGB").save(w / "jpgs" / (p.stem + ".jpg"), quality=90)
    p = w / "jpgs" / "f_002.jpg"
    data = p.read_bytes()
    garbage = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    p.write_bytes(data[: len(data) // 2] + garbage + data[len(data) // 2 :])


def _ome(name: str, edit: Callable[[str], str] = lambda xml: xml, planes: int = 9, **meta) -> Callable[[Path], None]:
    """An OME-TIFF z-stack of `planes` planes, its OME-XML changed by `edit`."""
    def setup(w: Path) -> None:
        import tifffile

        from napari_focus_stack.synthetic import make_stack

        z = np.stack(make_stack("pcb", shape=(64, 80), n_frames=planes, seed=2, gray=True, dtype=np.uint16).frames)
        tifffile.imwrite(w / name, z, ome=True, metadata={"axes": "ZYX", **meta})
        with tifffile.TiffFile(w / name) as tif:
            xml = tif.ome_metadata
        tifffile.tiffcomment(w / name, edit(xml).encode("utf-8"))

    return setup


def _imagej(name: str, spacing: str) -> Callable[[Path], None]:
    """An ImageJ z-stack whose spacing (z step) reads `spacing`."""
    def setup(w: Path) -> None:
        import tifffile

        from napari_focus_stack.synthetic import make_stack

        z = np.stack(make_stack("pcb", shape=(64, 80), n_frames=5, seed=2, gray=True, dtype=np.uint16).frames)
        tifffile.imwrite(w / name, z, imagej=True, metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
        with tifffile.TiffFile(w / name) as tif:
            text = tif.pages[0].description
        tifffile.tiffcomment(w / name, text.replace("spacing=0.5", f"spacing={spacing}"))

    return setup


def _size_is(field: str, value: str) -> Callable[[str], str]:
    return lambda xml: xml.replace(f'{field}="0.5"', f'{field}="{value}"')


def micro(name: str, *extra) -> Args:
    return lambda w: ["stack", str(w / name), "-o", str(w / "out/f.tif"), *extra]


def _blank_after(w: Path) -> None:
    """The 4 frames of the scene, then 7 black ones: the middle frame, the reference, is black."""
    from PIL import Image

    (w / "blank").mkdir()
    for k, p in enumerate(sorted((w / "frames").iterdir())):
        (w / "blank" / f"g_{k:02d}.png").write_bytes(p.read_bytes())
    black = np.zeros_like(np.asarray(Image.open(p)))
    for k in range(4, 11):
        Image.fromarray(black).save(w / "blank" / f"g_{k:02d}.png")


def stack(*extra) -> Args:
    return lambda w: ["stack", str(w / "frames"), *[str(w / x) if isinstance(x, Path) else x for x in extra]]


def batch(*extra) -> Args:
    return lambda w: ["batch", str(w / "frames"), *[str(w / x) if isinstance(x, Path) else x for x in extra]]


P = Path  # a path relative to the work folder
ROOT = os.geteuid() == 0  # root writes into read-only folders

CASES = [
    # outputs that are one file
    Case("output is the depth map", stack("-o", P("out/x.tif"), "--depth-map", P("out/x.tif")), 2,
         "are the same file", absent=("out/x.tif",)),
    Case("depth map is the confidence map",
         stack("-o", P("out/f.png"), "--depth-map", P("out/d.tif"), "--confidence-map", P("out/d.tif")), 2,
         "are the same file", absent=("out/f.png", "out/d.tif")),
    Case("same file spelled twice", stack("-o", P("out/x.tif"), "--depth-map", P("out/../out/./x.tif")), 2,
         "are the same file", absent=("out/x.tif",)),
    Case("same file through a link to it", stack("-o", P("out/x.tif"), "--depth-map", P("out/link.tif")), 2,
         "are the same file", absent=("out/x.tif",), setup=_link("out/link.tif", "x.tif")),
    Case("same file through a linked folder", stack("-o", P("out/x.tif"), "--confidence-map", P("alias/x.tif")), 2,
         "are the same file", absent=("out/x.tif",), setup=_link("alias", "out")),
    # outputs that cannot be written
    Case("missing output folder", stack("-o", P("nowhere/x.png")), 2, "does not exist", absent=("nowhere",)),
    Case("unknown extension", stack("-o", P("out/x.gif")), 2, "unknown image type '.gif'", absent=("out/x.gif",)),
    Case("output is a folder", stack("-o", P("out")), 2, "it is a folder"),
    Case("depth map is not a TIFF", stack("-o", P("out/f.png"), "--depth-map", P("out/d.png")), 2,
         "need a .tif/.tiff name", absent=("out/f.png", "out/d.png")),
    Case("one output cannot be written: none is",
         stack("-o", P("out/f.png"), "--depth-map", P("out/d.tif"), "--confidence-map", P("nowhere/c.tif")), 2,
         "nowhere", absent=("out/f.png", "out/d.tif")),
    Case("read-only output folder", stack("-o", P("ro/f.png")), 2, "not writable", absent=("ro/f.png",),
         setup=lambda w: ((w / "ro").mkdir(), (w / "ro").chmod(0o500)),
         marks=(pytest.mark.skipif(ROOT, reason="root writes into read-only folders"),)),
    Case("output is an input", stack("-o", P("frames/f_001.png")), 2, "refusing to overwrite input file"),
    Case("write-protected existing output", stack("-o", P("out/f.png"), "--depth-map", P("out/d.tif")), 2,
         "/out/f.png: the file exists and is write-protected (mode 444). Make it writable (chmod u+w) to replace "
         "it, or choose another name.", absent=("out/d.tif",), setup=_protected("out/f.png")),
    Case("output is an input through a link", stack("-o", P("out/in.png")), 2, "refusing to overwrite input file",
         setup=_link("out/in.png", "../frames/f_001.png")),
    Case("quality 0", stack("-o", P("out/f.jpg"), "--quality", "0"), 2, "--quality must be between 1 and 100",
         absent=("out/f.jpg",)),
    Case("quality 101", stack("-o", P("out/f.jpg"), "--quality", "101"), 2, "--quality must be between 1 and 100",
         absent=("out/f.jpg",)),
    # options
    Case("negative reference", stack("-o", P("out/f.png"), "--reference", "-1"), 2,
         "reference must be 0 or more, got -1", absent=("out/f.png",)),
    Case("reference beyond the stack", stack("-o", P("out/f.png"), "--reference", "4"), 2,
         "reference must be a frame index between 0 and 3", absent=("out/f.png",), before_work=False),
    Case("radius out of range", stack("-o", P("out/f.png"), "--radius", "0"), 2, "radius must be between 1 and 20"),
    Case("--tile-size too small", stack("-o", P("out/f.png"), "--tile-size", "100"), 2,
         "tile_size must be 256 or more, got 100", absent=("out/f.png",)),
    Case("--tile-size beyond its sanity limit", stack("-o", P("out/f.png"), "--tile-size", "100000000"), 2,
         "tile_size must be between 256 and 1000000, got 100000000", absent=("out/f.png",)),
    Case("negative --max-pixels", stack("-o", P("out/f.png"), "--max-pixels", "-1"), 2, "--max-pixels must be 0"),
    # inputs
    Case("missing input", lambda w: ["stack", str(w / "nothing"), "-o", str(w / "out/f.png")], 2, "not found",
         absent=("out/f.png",)),
    Case("input is a link to itself", lambda w: ["stack", str(w / "loop"), "-o", str(w / "out/f.png")], 2,
         "loops back on itself", absent=("out/f.png",), setup=_link("loop", "loop")),
    Case("input through a looping link", lambda w: ["stack", str(w / "loop/f_001.png"), "-o", str(w / "out/f.png")],
         2, "loops back on itself", absent=("out/f.png",), setup=_link("loop", "loop")),
    Case("looping link inside the input folder", stack("-o", P("out/f.png")), 2, "loops back on itself",
         absent=("out/f.png",), setup=_link("frames/zz", "zz")),
    Case("broken link as input", lambda w: ["stack", str(w / "gone"), "-o", str(w / "out/f.png")], 2,
         "which does not exist", absent=("out/f.png",), setup=_link("gone", "elsewhere")),
    Case("the same file twice", lambda w: ["stack", str(w / "frames/f_001.png"), str(w / "frames/./f_001.png"),
                                            "-o", str(w / "out/f.png")], 2,
         "a stack needs at least 2 frames; got 1", absent=("out/f.png",), one_line=False),
    Case("the same folder twice", lambda w: ["stack", str(w / "frames"), str(w / "frames"), "-o", str(w / "out/f.png")],
         0, "4 files were given more than once; each is used once: ", before_work=False),
    Case("a file given again inside its folder", stack(P("frames/f_002.png"), "-o", P("out/f.png")), 0,
         "f_002.png was given more than once; it is used once", before_work=False),
    Case("frames over --max-pixels", stack("-o", P("out/f.png"), "--max-pixels", "1000"), 2,
         "raise the limit with --max-pixels N", absent=("out/f.png",)),
    Case("decompression bomb", lambda w: ["stack", str(w / "bomb"), "-o", str(w / "out/f.png")], 2,
         "raise the limit with --max-pixels N", absent=("out/f.png",), setup=_bomb),
    Case("garbage inside a JPEG's compressed data", lambda w: ["stack", str(w / "jpgs"), "-o", str(w / "out/f.jpg")],
         2, "f_002.jpg is not a readable image (damaged JPEG: corrupt compressed data", absent=("out/f.jpg",),
         before_work=False, setup=_corrupt_jpeg),
    Case("blank frames around the reference", lambda w: ["stack", str(w / "blank"), "-o", str(w / "out/f.png")], 0,
         "warning: the reference g_05.png is blank (every pixel is 0); g_02.png is the reference instead",
         before_work=False, setup=_blank_after),
    # microscope data
    Case("OME-XML claims more planes than the file holds", micro("short.ome.tif"), 2,
         "short.ome.tif is incomplete: its metadata describes 20 planes but 11 of them are not in the file",
         absent=("out/f.tif",), setup=_ome("short.ome.tif", lambda xml: xml.replace('SizeZ="9"', 'SizeZ="20"'))),
    *[Case(f"OME z step {v}", micro(f"z{k}.ome.tif"), 0,
           f"z{k}.ome.tif: the z step (PhysicalSizeZ) {v.lower()} is not a size (a number from 1e-12 to 1e+12); "
           "ignored: heights are frame indices", before_work=False,
           setup=_ome(f"z{k}.ome.tif", _size_is("PhysicalSizeZ", v), planes=5, PhysicalSizeZ=0.5))
      for k, v in (("nan", "NaN"), ("inf", "INF"), ("big", "1e+308"))],
    *[Case(f"ImageJ spacing {v}", micro(f"ij{k}.tif"), 0,
           f"ij{k}.tif: the z step (ImageJ spacing) {v} is not a size (a number from 1e-12 to 1e+12); "
           "ignored: heights are frame indices", before_work=False, setup=_imagej(f"ij{k}.tif", v))
      for k, v in (("inf", "inf"), ("nan", "nan"), ("zero", "0"), ("neg", "-1"))],
    *[Case(f"OME pixel size {v}", micro(f"dx{k}.ome.tif"), 0,
           f"dx{k}.ome.tif: the pixel size (PhysicalSizeX) {v.lower()} is not a size (a number from 1e-12 to 1e+12); "
           "ignored: the outputs carry no pixel size", before_work=False,
           setup=_ome(f"dx{k}.ome.tif", _size_is("PhysicalSizeX", v), planes=5, PhysicalSizeX=0.5, PhysicalSizeY=0.5))
      for k, v in (("nan", "NaN"), ("neg", "-0.2"))],
    Case("--z-step 1e308", micro("z.ome.tif", "--z-step", "1e308"), 2,
         "z_step must be a positive number from 1e-12 to 1e+12, got 1e+308", absent=("out/f.tif",),
         setup=_ome("z.ome.tif", planes=5)),
    Case("--z-step nan", micro("z.ome.tif", "--z-step", "nan"), 2,
         "z_step must be a positive number from 1e-12 to 1e+12, got nan", absent=("out/f.tif",),
         setup=_ome("z.ome.tif", planes=5)),
    # batch
    Case("batch output is a file", batch("-o", P("frames/f_001.png")), 2, "exists and is not a folder"),
    Case("batch input is a link to itself", lambda w: ["batch", str(w / "loop"), "-o", str(w / "out")], 2,
         "loops back on itself", setup=_link("loop", "loop")),
    Case("batch quality 0", batch("-o", P("out"), "--quality", "0"), 2, "quality must be"),
    Case("batch workers 0", batch("-o", P("out"), "--workers", "0"), 2, "workers must be"),
    *[Case(f"batch --scheduler {a}", batch("-o", P("out"), "--scheduler", a), 2,
           f"scheduler '{a}' is not a Dask scheduler's address ({why}); give one such as tcp://host:8786")
      for a, why in (("tcp://127.0.0.1", "missing port number in address '127.0.0.1'"),
                     ("notaurl", "missing port number in address 'notaurl'"),
                     ("tcp://[::1:1", "invalid address '[::1:1'; maybe: ipv6 needs brackets like [::1]"))],
    Case("stack --scheduler notaurl", micro("z.ome.tif", "--scheduler", "notaurl"), 2,
         "scheduler 'notaurl' is not a Dask scheduler's address", absent=("out/f.tif",),
         setup=_ome("z.ome.tif", planes=5)),
    Case("batch negative --max-pixels", batch("-o", P("out"), "--max-pixels", "-3"), 2, "--max-pixels must be 0"),
]


@pytest.fixture()
def work(tmp_path):
    from napari_focus_stack.synthetic import make_stack, save_stack

    stack = make_stack("pcb", shape=(64, 80), n_frames=4, seed=1)
    save_stack(stack, tmp_path / "frames", fmt="png", prefix="f")
    (tmp_path / "out").mkdir()
    return tmp_path


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _hidden_files(w: Path) -> list[str]:
    return [str(p.relative_to(w)) for p in w.rglob(".*") if p.is_file()]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case, work, monkeypatch, capsys):
    if case.setup is not None:
        case.setup(work)
    frames_before = _digest(work / "frames")
    if case.before_work:
        from napari_focus_stack.stacker import FocusStacker

        def no_work(*args, **kwargs):
            raise AssertionError("the engine started before the problem was found")

        monkeypatch.setattr(FocusStacker, "stack", no_work)
    code = main([*case.args(work), "-q", "--device", "cpu"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert case.words in lines[-1], err
    assert "Traceback" not in err
    if case.one_line:
        assert len(lines) == 1, err
    for rel in case.absent:
        assert not (work / rel).exists(), rel
    for kept in work.rglob("*"):  # a write-protected file is kept as it was
        if kept.is_file() and not kept.stat().st_mode & 0o222:
            assert kept.read_bytes() == b"keep me", kept
    assert _digest(work / "frames") == frames_before
    assert _hidden_files(work) == []
