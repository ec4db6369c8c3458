"""Memory checks: stacks too large for memory are refused up front, with what to change."""
from __future__ import annotations

import pytest

from napari_focus_stack.batch import BatchOptions, run_batch
from napari_focus_stack.errors import StackError
from napari_focus_stack.jobs import estimate_peak_memory, memory
from scans import N_FRAMES, by_stack, make_scan


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_too_large_for_memory_is_refused_up_front(tmp_path, monkeypatch):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    side = 12000  # claimed in the JPEG header; the pixels are never decoded
    for i in range(1, N_FRAMES + 1):
        p = scan / f"Ella_0_1-{i}.jpg"
        data = bytearray(p.read_bytes())
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = side.to_bytes(2, "big") + side.to_bytes(2, "big")
        p.write_bytes(bytes(data))
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 2**30)
    result = run_batch(scan, out, BatchOptions(scale_factor=2, device="cpu"))
    entries = by_stack(result)
    err = entries["Ella_0_1"]["error"]
    assert entries["Ella_0_1"]["status"] == "failed"
    assert "12000x12000" in err and "GiB" in err and "scale-factor 1" in err and "8.0 GiB" in err
    assert entries["Ella_0_0"]["status"] == "done"


def test_memory_estimate(monkeypatch):
    one = estimate_peak_memory((1000, 1000, 3), scale_factor=1, in_flight=1)
    # the working copies grow with the pixels worked on, besides some fixed costs
    assert estimate_peak_memory((1000, 1000, 3), scale_factor=2, in_flight=1) > 2.5 * one
    assert one / 3 < estimate_peak_memory((1000, 1000), scale_factor=1, in_flight=1) < 0.6 * one
    big = (6000, 8000, 3)
    assert estimate_peak_memory(big, 2, 3, tile_size=1024) < estimate_peak_memory(big, 2, 3) / 2
    with pytest.raises(StackError, match="GiB"):
        memory.check_memory((10**6, 10**6, 3), 1, 1, what="huge")
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * 2**30)
    with pytest.raises(StackError, match=r"--tile-size \d+.*") as info:
        memory.check_memory(big, 1, 2, what="48 MP")
    assert "48 MP: 8000x6000-pixel frames" in str(info.value)
    memory.check_memory((3000, 4000, 3), 1, 2)  # 12 MP fits in 2 GiB


def test_tiles_are_chosen_when_memory_is_short(monkeypatch):
    twelve = (3000, 4000, 3)
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    assert memory.fit_memory(twelve, 1, 2) is None  # fits whole
    assert memory.fit_memory(twelve, 1, 2, max_memory=1.0) is None  # a Raspberry Pi's 1 GiB a stack: whole
    # half of that
    tile = memory.fit_memory(twelve, 1, 2, max_memory=0.5)
    assert tile in memory.TILE_SIZES and estimate_peak_memory(twelve, 1, 3, tile) <= 2**29
    assert all(estimate_peak_memory(twelve, 1, 3, t) > 2**29 for t in memory.TILE_SIZES if t > tile)
    monkeypatch.setattr(memory, "available_memory", lambda: 1.5 * 2**30)
    assert memory.fit_memory(twelve, 1, 2, share=3) == tile  # the same, from the free memory
    assert memory.fit_memory(twelve, 1, 2, tile_size=tile, share=3) == tile  # the user's tiles fit: kept
    with pytest.raises(StackError, match="a larger --max-memory than 0.01 GiB"):
        memory.fit_memory(twelve, 1, 2, max_memory=0.01)
    with pytest.raises(StackError, match="smaller tiles"):  # the user's tiles do not fit
        memory.fit_memory(twelve, 1, 2, tile_size=4096, max_memory=0.5)


def test_batch_fuses_in_tiles_when_memory_is_short(tmp_path, monkeypatch):
    from napari_focus_stack.synthetic import make_stack, save_stack

    scan, out = tmp_path / "scan", tmp_path / "out"
    save_stack(make_stack("pcb", shape=(600, 800), n_frames=3, seed=1), scan)
    # pretend whole frames need 2 GiB and 512-px tiles half of it, whatever this machine
    monkeypatch.setattr(
        memory, "estimate_peak_memory", lambda shape, sf=1, inf=2, tile_size=None: 2**31 if tile_size is None else 2**29
    )
    result = run_batch(scan, out, BatchOptions(device="cpu", max_memory=1.0))
    (entry,) = result.stacks
    assert entry["status"] == "done" and entry["tile_size"] == 512
    assert any("fused in tiles of 512 px" in w for w in entry["warnings"])
