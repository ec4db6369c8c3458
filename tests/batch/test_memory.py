"""Memory checks: stacks too large for memory are refused up front, with what to change."""
from __future__ import annotations

import pytest
from scans import N_FRAMES, by_stack, make_scan

from napari_focus_stack.batch import BatchOptions, estimate_peak_memory, memory, run_batch
from napari_focus_stack.errors import StackError


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
    assert estimate_peak_memory((1000, 1000, 3), scale_factor=2, in_flight=1) > 3 * one
    assert estimate_peak_memory((1000, 1000), scale_factor=1, in_flight=1) == pytest.approx(one / 3)
    big = (6000, 8000, 3)
    assert estimate_peak_memory(big, 2, 3, tile_size=1024) < estimate_peak_memory(big, 2, 3) / 3
    with pytest.raises(StackError, match="GiB"):
        memory.check_memory((10**6, 10**6, 3), 1, 1, what="huge")
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * 2**30)
    with pytest.raises(StackError, match=r"--tile-size \d+.*") as info:
        memory.check_memory(big, 1, 2, what="48 MP")
    assert "48 MP: 8000x6000-pixel frames" in str(info.value)
    memory.check_memory((3000, 4000, 3), 1, 2)  # 12 MP fits in 4 GiB
