"""A cheap check of a JPEG's marker structure, for the fast OpenCV decoder.

OpenCV's decoder reports no error for damaged compressed data: libjpeg
prints "Corrupt JPEG data: ..." on stderr (naming no file) and goes on with
what it makes of the bytes, so a frame with garbage inside it would be fused
as if it were fine. Pillow's decoder raises on the same data but is slower.
:func:`jpeg_damage` walks the marker structure of the file's bytes, which
garbage breaks almost surely (random bytes hold a marker every 256 bytes or
so: a restart marker out of sequence, a marker where none may stand, a
segment that runs past the end, no end-of-image marker), for a few
milliseconds on a 12 MP frame. A file that fails it goes to Pillow, which
decodes it if the structure was merely unusual and raises if it is damaged.

What it does not see: a bit flipped inside the compressed data (the
structure holds; libjpeg decodes a wrong block or two).
"""
from __future__ import annotations

import numpy as np

__all__ = ["jpeg_damage"]

_RST0, _RST7 = 0xD0, 0xD7
_SOI, _EOI, _SOS, _DRI = 0xD8, 0xD9, 0xDA, 0xDD
# markers that may follow a scan: tables, another scan, restart interval, comments, application data
_BETWEEN_SCANS = frozenset({0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)})
_STANDALONE = frozenset({0x01, *range(_RST0, _RST7 + 1), _SOI, _EOI})


def jpeg_damage(data: np.ndarray) -> str | None:
    """Why the bytes of a JPEG file cannot be a complete, undamaged JPEG, or None when the structure holds.

    Parameters
    ----------
    data : ndarray of uint8
        The whole file.

    Returns
    -------
    str or None
        A short reason ("restart marker out of sequence in the compressed
        data", "no end-of-image marker: truncated"...), or None.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (64, 48), (90, 120, 30)).save(buf, "JPEG")
    >>> good = np.frombuffer(buf.getvalue(), np.uint8)
    >>> jpeg_damage(good) is None
    True
    >>> jpeg_damage(good[:-2])
    'no end-of-image marker: truncated'
    """
    data = np.asarray(data, dtype=np.uint8).ravel()
    n = data.size
    if n < 4 or data[0] != 0xFF or data[1] != _SOI:
        return "no start-of-image marker"
    # every 0xFF that starts a marker: followed by neither a stuffed 0x00 nor another (fill) 0xFF
    ff = np.flatnonzero(data[:-1] == 0xFF)
    follow = data[ff + 1]
    keep = (follow != 0x00) & (follow != 0xFF)
    marks, codes = ff[keep], follow[keep]
    restart = False
    components: set[int] = set()  # the frame's component ids
    sequential = False
    scanned: list[int] = []  # components of a sequential frame scanned so far
    pos = 2
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 1 >= n:
            return "no end-of-image marker: truncated"
        if data[pos] != 0xFF:
            return f"bytes that are no marker at offset {pos}"
        code = int(data[pos + 1])
        if code == _EOI:
            if not components:
                return "no image frame before the end-of-image marker"
            if sequential and len(scanned) < len(components):
                return "end-of-image marker before every colour component was decoded"
            return None
        if code in _STANDALONE:
            return f"marker 0x{code:02X} where none may stand (offset {pos})"
        if pos + 3 >= n:
            return "no end-of-image marker: truncated"
        length = (int(data[pos + 2]) << 8) | int(data[pos + 3])
        end = pos + 2 + length
        if length < 2 or end > n:
            return "a segment runs past the end of the file: truncated or damaged"
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            if components:
                return "a second image frame"
            nf = int(data[pos + 9]) if length >= 8 else 0
            if nf < 1 or length != 8 + 3 * nf:
                return "a damaged frame header"
            components = {int(data[pos + 10 + 3 * k]) for k in range(nf)}
            sequential = code in (0xC0, 0xC1)
        elif code == _DRI and length >= 4:
            restart = ((int(data[pos + 4]) << 8) | int(data[pos + 5])) > 0
        if code != _SOS:
            pos = end
            continue
        why = _scan_header_damage(data, pos, length, components, sequential, scanned)
        if why:
            return why
        # the compressed data runs to the first marker that is not a restart marker
        k = int(np.searchsorted(marks, end))
        after = codes[k:]
        is_rst = (after >= _RST0) & (after <= _RST7)
        stop = int(np.argmin(is_rst)) if after.size and not is_rst.all() else None
        if stop is None:
            return "no end-of-image marker: truncated"
        if stop:
            if not restart:
                return "restart markers in the compressed data of an image that has none"
            got = after[:stop].astype(np.int64) - _RST0
            if not np.array_equal(got, np.arange(stop) % 8):
                return "restart marker out of sequence in the compressed data"
        pos = int(marks[k + stop])
        if int(codes[k + stop]) not in _BETWEEN_SCANS | {_EOI}:
            return f"marker 0x{int(codes[k + stop]):02X} inside the compressed data"


def _scan_header_damage(
    data: np.ndarray, pos: int, length: int, components: set[int], sequential: bool, scanned: list[int]
) -> str | None:
    """Why the start-of-scan header at ``pos`` is not one the frame can have, or None."""
    if not components:
        return "a scan before the image frame"
    ns = int(data[pos + 4])
    if not 1 <= ns <= 4 or length != 6 + 2 * ns:
        return "a damaged scan header"
    ids = [int(data[pos + 5 + 2 * k]) for k in range(ns)]
    if not set(ids) <= components or len(set(ids)) != ns:
        return "a scan of colour components the frame does not have"
    ss, se, a = (int(x) for x in data[pos + 5 + 2 * ns : pos + 8 + 2 * ns])
    if sequential:
        if (ss, se, a) != (0, 63, 0) or set(ids) & set(scanned):
            return "a scan that a sequential JPEG cannot have"
        scanned.extend(ids)
    elif not ss <= se <= 63:
        return "a damaged scan header"
    return None
