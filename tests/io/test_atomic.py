"""Atomic writing, OS errors as OutputError, stale temporary files (io.atomic)."""
from __future__ import annotations

import errno
import os
import shutil
import time

import pytest
import tifffile
from io_helpers import blocky, rand
from PIL import Image

from napari_focus_stack.errors import InputError, OutputError
from napari_focus_stack.io import (
    remove_stale_temps,
    write_atomic,
    write_image,
    write_text,
)


def test_write_is_atomic_when_encoder_fails(tmp_path, monkeypatch):
    out = tmp_path / "result.jpg"
    out.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8 partial data")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="disk is full") as err:
        write_image(out, blocky(8, 8))
    assert "result.jpg" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jpg"]
    assert out.read_bytes() == b"previous result"

    def broken_tiff(fh, *args, **kwargs):
        fh.write(b"II*\x00half")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(tifffile, "imwrite", broken_tiff)
    with pytest.raises(OutputError, match="new.tif"):
        write_image(tmp_path / "new.tif", rand((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jpg"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions"
)
def test_write_to_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied") as err:
            write_image(folder / "out.png", rand((4, 4)))
        assert "out.png" in str(err.value)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_write_atomic_takes_bytes_or_an_encoder(tmp_path):
    target = tmp_path / "data.bin"
    assert write_atomic(target, b"first") == target
    assert target.read_bytes() == b"first"

    names = []

    def encoder(fh):
        names.append(os.path.basename(fh.name))
        fh.write(b"second")
        return 6  # ignored

    write_atomic(str(target), encoder)
    assert target.read_bytes() == b"second"
    # the encoder wrote to a hidden temporary file beside the target, now renamed
    assert names[0].startswith(".data.bin.") and names[0].endswith(".bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    write_text(tmp_path / "report.txt", "grüße\n")
    assert (tmp_path / "report.txt").read_bytes() == "grüße\n".encode()


def test_write_atomic_maps_os_errors_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(b"previous")

    def full_disk(fh):
        fh.write(b"{half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="report.json: the disk is full") as err:
        write_atomic(target, full_disk)
    assert isinstance(err.value.__cause__, OSError)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]

    with pytest.raises(OutputError, match="folder does not exist"):
        write_atomic(tmp_path / "missing" / "x.bin", b"x")

    def refuses(fh):  # errors of the project's own family pass through unchanged
        raise InputError("bad pixels")

    with pytest.raises(InputError, match="bad pixels"):
        write_atomic(target, refuses)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_write_atomic_refuses_protected_inputs(tmp_path):
    source = tmp_path / "frame.tif"
    source.write_bytes(b"input")
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        write_atomic(tmp_path / "." / "frame.tif", b"output", protect=[None, source])
    assert source.read_bytes() == b"input"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_modes_follow_the_umask_without_changing_it(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        def no_umask(*args):
            raise AssertionError("os.umask called while writing")

        monkeypatch.setattr(os, "umask", no_umask)
        new = write_atomic(tmp_path / "new.bin", b"x")
        assert new.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, as for any new file
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o604)
        write_image(kept.with_suffix(".png"), rand((4, 4)))
        write_atomic(kept, b"new")
        assert kept.stat().st_mode & 0o777 == 0o604  # a replaced file keeps its mode
        assert kept.with_suffix(".png").stat().st_mode & 0o777 == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_remove_stale_temps_deletes_only_the_targets_leftovers(tmp_path):
    target = tmp_path / "Ella_0_1.jpg"
    stale = [tmp_path / ".Ella_0_1.jpg.k3x_9q2z.jpg", tmp_path / ".Ella_0_1.jpg.abcdefgh.jpg"]
    keep = [
        target,  # the output itself
        tmp_path / ".Ella_0_2.jpg.abcdefgh.jpg",  # another target's temporary file
        tmp_path / ".Ella_0_1.jpg.abcdefgh.png",  # another suffix
        tmp_path / ".Ella_0_1.jpg.abc.jpg",  # not 8 random characters
        tmp_path / "Ella_0_1.jpg.abcdefgh.jpg",  # not hidden
        tmp_path / "notes.txt",
    ]
    an_hour_ago = time.time() - 3600
    for path in stale + keep:
        path.write_bytes(b"x")
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert sorted(remove_stale_temps(target)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_temps(target) == []
    assert remove_stale_temps(tmp_path / "missing" / "x.jpg") == []


def test_a_killed_write_leaves_a_temp_that_remove_stale_temps_finds(tmp_path):
    """The temporary name write_atomic uses is one remove_stale_temps removes."""
    target = tmp_path / "stack 01.tif"
    seen = []

    def killed(fh):
        seen.append(fh.name)
        fh.write(b"II*\x00half")
        fh.flush()
        shutil.copyfile(fh.name, fh.name + ".copy")  # what a kill -9 here would leave
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, killed)
    # the name says which process wrote it: as if that process had been killed, not this one
    left = seen[0].replace(f"~{os.getpid()}@", f"~{_ended_process()}@")
    assert left != seen[0]
    os.replace(seen[0] + ".copy", left)
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(left)]
    assert remove_stale_temps(target) == [tmp_path / os.path.basename(left)]
    assert list(tmp_path.iterdir()) == []


def _ended_process() -> int:
    """The id of a process that has ended."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.skipif(os.name == "nt", reason="Windows: whether a process runs is not asked")
def test_remove_stale_temps_keeps_what_a_running_writer_writes(tmp_path):
    """Two runs writing one output: neither takes the other's temporary files for a killed run's."""
    from napari_focus_stack.io.atomic import HOST

    target = tmp_path / "s1.png"
    ours = tmp_path / f".s1.png.abcdefgh~{os.getpid()}@{HOST}.png"  # this process: running
    parent = tmp_path / f".s1.png.bcdefghi~{os.getppid()}@{HOST}.png"  # another running process
    staged = tmp_path / f"..s1.png.cdefghij~{os.getppid()}@{HOST}.png.defghijk~{os.getppid()}@{HOST}.png"
    dead = tmp_path / f".s1.png.efghijkl~{_ended_process()}@{HOST}.png"
    old_version = tmp_path / ".s1.png.staged__.png"  # an earlier version's name: no writer to ask
    elsewhere = tmp_path / ".s1.png.fghijklm~1@zzzz.png"  # not a hex host: not ours at all
    foreign = tmp_path / ".s1.png.ghijklmn~1@ffff.png"  # another machine's, written just now
    foreign_old = tmp_path / ".s1.png.hijklmno~1@fffe.png"  # another machine's, two days old
    if HOST in ("ffff", "fffe"):
        pytest.skip("this machine's tag is the test's foreign one")
    for path in (ours, parent, staged, dead, old_version, elsewhere, foreign, foreign_old):
        path.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(foreign_old, (two_days_ago, two_days_ago))
    assert sorted(remove_stale_temps(target)) == sorted([dead, old_version, foreign_old])
    assert sorted(tmp_path.iterdir()) == sorted([ours, parent, staged, elsewhere, foreign])


def test_a_write_protected_file_is_not_replaced(tmp_path):
    """A rename replaces any file the folder allows: a file made read-only to keep it must be asked for."""
    kept = tmp_path / "fused.png"
    kept.write_bytes(b"keep me")
    kept.chmod(0o444)
    with pytest.raises(OutputError, match=r"fused\.png: the file exists and is write-protected \(mode 444\)"):
        write_atomic(kept, b"new")
    assert kept.read_bytes() == b"keep me" and [p.name for p in tmp_path.iterdir()] == ["fused.png"]
    kept.chmod(0o644)  # made writable again: replaced, keeping its mode
    write_atomic(kept, b"new")
    assert kept.read_bytes() == b"new"
