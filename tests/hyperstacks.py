"""Calibrated microscope files for the tests: ImageJ hyperstacks, OME-TIFF, OME-Zarr (a plain module)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

PIXEL, Z_STEP = 0.1, 0.5  # micrometres
RED, GREEN = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


def lut(rgb):
    return np.round(np.outer(rgb, np.arange(256))).astype(np.uint8)


def write_imagej(path, data, axes="TCZYX"):
    """An ImageJ hyperstack (axes in ImageJ's order TZCYX) calibrated 0.1 um x 0.5 um, red and green channels."""
    order = [a for a in "TZCYX" if a in axes]
    meta = {"axes": "".join(order), "unit": "micron", "spacing": Z_STEP}
    if "C" in axes:
        meta.update(mode="composite", LUTs=[lut(RED), lut(GREEN)][: data.shape[axes.index("C")]])
    tifffile.imwrite(
        path, np.ascontiguousarray(np.transpose(data, [axes.index(a) for a in order])), imagej=True,
        resolution=(1 / PIXEL, 1 / PIXEL), metadata=meta,
    )
    return path


def write_ome(path, data, axes="TCZYX"):
    """An OME-TIFF with the same calibration and named channels (DAPI, GFP)."""
    meta = {"axes": axes, "PhysicalSizeX": PIXEL, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": PIXEL,
            "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": Z_STEP, "PhysicalSizeZUnit": "µm"}
    if "C" in axes:
        meta["Channel"] = {"Name": ["DAPI", "GFP"], "Color": [-16776961, 16711935]}
    tifffile.imwrite(path, data, ome=True, metadata=meta)
    return path


def write_ome_zarr(folder, tczyx):
    """A two-level OME-Zarr (NGFF 0.4 layout, zarr format 2) with the same calibration."""
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(folder), mode="w", zarr_format=2)
    root.create_array("0", data=tczyx, chunks=(1, 1, 1) + tczyx.shape[3:])
    root.create_array("1", data=tczyx[..., ::2, ::2], chunks=(1, 1, 1) + tczyx[..., ::2, ::2].shape[3:])
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"
    ]
    scale = [1.0, 1.0, Z_STEP, PIXEL, PIXEL]
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale},
                                                         {"type": "translation", "translation": [0, 0, 3.0, 0, 0]}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": scale[:3] + [2 * PIXEL] * 2}]},
        ],
    }]
    root.attrs["omero"] = {"channels": [{"label": "DAPI", "color": "0000FF"}, {"label": "GFP", "color": "00FF00"}]}
    return folder


def edit_description(path, edit):
    """Rewrite the first page's description (ImageJ metadata, OME-XML) with ``edit(text) -> text``."""
    with tifffile.TiffFile(path) as tif:
        text = tif.pages[0].description
    tifffile.tiffcomment(path, edit(text).encode("utf-8"))  # OME-XML may hold "µm"
    return path
