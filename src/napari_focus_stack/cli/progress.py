"""A progress bar on stderr for the command line."""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """tqdm progress bar on stderr that only appears after one second.

    Called as ``progress(done, total, stage)``, the engine's progress callback.
    """

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar, self.start = desc, enabled, None, time.monotonic()

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.start < 1.0 and done < total:
                return
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="frame", file=sys.stderr, leave=False)
        self.bar.set_postfix_str(stage, refresh=False)
        self.bar.update(done - self.bar.n)  # a reused alignment passes a stack's first pass at once

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
