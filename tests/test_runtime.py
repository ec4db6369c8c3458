"""Process-wide tuning (_runtime): thread counts, glibc allocator thresholds, NumPy's huge-page advice."""
from __future__ import annotations

import subprocess
import sys

import pytest

from napari_focus_stack._runtime import MAX_DEFAULT_THREADS, default_threads


def test_default_threads_are_shared_among_stacks():
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
    assert default_threads(share=10**6) == 1


def _in_a_fresh_process(code: str) -> list[str]:
    """What ``code`` prints, split into words, run by a new Python (malloc settings are process-wide)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tuning is Linux-only")
def test_tune_malloc_sets_the_thresholds_and_stops_huge_page_advice():
    # in a fresh process: the settings are process-wide
    code = (
        "import ctypes, numpy as np\n"
        "from napari_focus_stack._runtime import tune_malloc\n"
        "ok = tune_malloc()\n"
        "print(ok, np._core.multiarray._set_madvise_hugepage(True), tune_malloc())\n"
    )
    out = _in_a_fresh_process(code)
    if out[0] == "False":
        pytest.skip("not glibc")
    assert out == ["True", "False", "True"]  # the advice was off; a second call is a no-op that says so


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_decoded_frame_stays_on_the_heap_once_tuned():
    # untuned (the library in someone else's process): nothing changes
    from napari_focus_stack._runtime import fit_malloc_to_frames

    if not __import__("napari_focus_stack._runtime", fromlist=["_tuned"])._tuned:
        assert fit_malloc_to_frames(36_000_000) is None
    code = (
        "from napari_focus_stack import _runtime as r\n"
        "r.tune_malloc()\n"
        "print(r.fit_malloc_to_frames(1000), r.fit_malloc_to_frames(36_000_000), r.fit_malloc_to_frames(10**12),"
        " r.fit_malloc_to_frames(5))\n"
    )
    out = _in_a_fresh_process(code)
    small, twelve_mp, huge, after = (int(v) for v in out)
    assert small == 32 << 20  # small frames keep the tuned threshold
    assert twelve_mp == 36_000_000 + (1 << 20)  # a 12 MP RGB frame decoded: just above it
    assert huge == after == 256 << 20  # capped, and never lowered again
