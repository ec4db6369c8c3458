"""Layers to frames and results to layers (no dock widget involved)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_focus_stack import StackError  # noqa: E402
from napari_focus_stack._napari import layer_metadata as md  # noqa: E402
from napari_focus_stack._napari.layers import (  # noqa: E402
    find_result,
    layers_source,
    put_result,
    result_layers,
    stack_source,
)
from napari_focus_stack.io import FrameSource, ImageMeta  # noqa: E402
from napari_focus_stack.result import FrameReport, StackReport, StackResult  # noqa: E402

pytestmark = pytest.mark.napari

SHAPE = (12, 16)


def _result(rgb=True, dtype=np.uint8, n=4, exif=b"Exif-ref") -> tuple[StackResult, FrameSource]:
    rng = np.random.default_rng(0)
    frame_shape = (*SHAPE, 3) if rgb else SHAPE
    frames = [rng.integers(0, 200, frame_shape).astype(dtype) for _ in range(n)]
    source = FrameSource.from_inputs(frames)
    meta = ImageMeta(None, frame_shape, np.dtype(dtype), exif, b"icc-profile")
    result = StackResult(
        image=frames[1], depth_raw=rng.random(SHAPE).astype(np.float32) * (n - 1),
        confidence=rng.random(SHAPE).astype(np.float32), transforms=[np.eye(3)] * n,
        report=StackReport([FrameReport(i, f"frame {i}") for i in range(n)], n // 2, "cpu", "CPU", {}), meta=meta,
    )
    result.depth = result.depth_raw
    return result, source


def test_result_layers_roles_names_and_display():
    result, source = _result()
    aligned = np.zeros((4, *SHAPE, 3), np.uint8)
    specs = result_layers(result, "stack", source, scale=(0.5, 0.25), translate=(3.0, 4.0), aligned=aligned)
    assert [role for role, _, _ in specs] == ["aligned", "confidence", "depth", "fused"]  # fused ends on top
    by_role = {role: (data, kwargs) for role, data, kwargs in specs}
    for role, (_, kwargs) in by_role.items():
        assert kwargs["name"] == f"stack {role}"
        assert kwargs["scale"] == (0.5, 0.25) and kwargs["translate"] == (3.0, 4.0)
        meta = kwargs["metadata"]
        assert meta[md.ROLE] == role and meta[md.INPUT] == "stack"
        assert meta[md.REPORT] == result.report.to_dict()  # JSON-ready, as layer metadata should be
        assert meta[md.NAMES] == list(source.names)
        assert (meta[md.EXIF], meta[md.ICC]) == (b"Exif-ref", b"icc-profile")  # saved results keep them
    assert by_role["fused"][0] is result.image and by_role["fused"][1]["rgb"]
    assert by_role["depth"][1]["colormap"] == "turbo"
    assert by_role["depth"][1]["contrast_limits"] == [0.0, 3.0]  # the dims slider's frame positions
    assert by_role["confidence"][1]["visible"] is False and by_role["confidence"][1]["contrast_limits"] == [0, 1]
    assert by_role["aligned"][1]["visible"] is False and by_role["aligned"][1]["rgb"]
    assert "aligned" not in {r for r, _, _ in result_layers(result, "stack", source)}


def test_gray_results_take_the_input_contrast():
    result, source = _result(rgb=False, dtype=np.uint16)
    specs = {role: kwargs for role, _, kwargs in result_layers(result, "g", source, contrast_limits=(10, 900))}
    assert specs["fused"]["contrast_limits"] == [10, 900] and not specs["fused"]["rgb"]
    assert specs["depth"]["contrast_limits"] == [0.0, 3.0]


def test_stack_source_reads_names_and_exif_from_the_reader_metadata(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    metadata = {md.NAMES: ["a.jpg", "b.jpg", "c.jpg"], md.PATHS: ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"],
                md.FRAME_EXIF: [b"e0", b"e1", b"e2"], md.EXIF: b"e1", md.ICC: b"icc"}
    layer = viewer.add_image(data, metadata=metadata)
    source = stack_source(layer)
    assert source.names == ["a.jpg", "b.jpg", "c.jpg"]
    assert [str(p) for p in source.paths] == ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"]
    assert [source.meta(k).exif for k in range(3)] == [b"e0", b"e1", b"e2"]
    assert source.meta(0).icc == b"icc"
    np.testing.assert_array_equal(source.read(2), data[2])
    # metadata that does not fit the layer (it was edited) is not trusted
    layer.metadata = {md.NAMES: ["a.jpg"], md.PATHS: ["/x/a.jpg"], md.EXIF: b"e"}
    source = stack_source(layer)
    assert len(source.names) == 3 and source.paths == [None] * 3 and source.meta(2).exif == b"e"


def test_layers_source_names_frames_after_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((8, 8), np.uint8), name="near", metadata={md.EXIF: b"ea"})
    b = viewer.add_image(np.ones((8, 8), np.uint8), name="far")
    source = layers_source([a, b])
    assert source.names == ["near", "far"] and source.meta(0).exif == b"ea"
    np.testing.assert_array_equal(source.read(1), b.data)
    c = viewer.add_image(np.ones((6, 8), np.uint8), name="small")
    with pytest.raises(StackError):
        layers_source([a, c])


def test_put_result_refills_a_rerun_and_replaces_another_kind(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, *SHAPE, 3), np.uint8), name="stack", rgb=True)
    result, source = _result()
    first = {}
    for spec in result_layers(result, "stack", source):
        first[spec[0]] = put_result(viewer.layers, spec)
    assert [layer.name for layer in viewer.layers] == ["stack", "stack confidence", "stack depth", "stack fused"]
    assert find_result(viewer.layers, "stack", "depth") is first["depth"]
    assert find_result(viewer.layers, "other", "depth") is None

    again, _ = _result()
    again.depth = again.depth * 0 + 1
    for spec in result_layers(again, "stack", source):
        assert put_result(viewer.layers, spec) is first[spec[0]]  # same layer, new data
    assert len(viewer.layers) == 4 and (first["depth"].data == 1).all()

    gray, gray_source = _result(rgb=False)
    fused_spec = [s for s in result_layers(gray, "stack", gray_source) if s[0] == "fused"][0]
    index = viewer.layers.index(first["fused"])
    new = put_result(viewer.layers, fused_spec)
    assert new is not first["fused"] and not new.rgb
    assert viewer.layers.index(new) == index and len(viewer.layers) == 4


def test_put_result_sets_only_the_properties_that_changed(make_napari_viewer):
    # every property set redraws the layer (slow with software OpenGL): a rerun
    # with the same settings refills the data only, a changed setting still lands
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, *SHAPE, 3), np.uint8), name="stack", rgb=True)
    result, source = _result()
    specs = list(result_layers(result, "stack", source))
    layers = {spec[0]: put_result(viewer.layers, spec) for spec in specs}
    depth = layers["depth"]
    fired = []
    for name in ("scale", "translate", "contrast_limits", "colormap", "blending", "gamma"):
        getattr(depth.events, name).connect(lambda event, name=name: fired.append(name))
    again, _ = _result()
    for spec in result_layers(again, "stack", source):
        put_result(viewer.layers, spec)
    assert fired == []
    role, data, kwargs = next(s for s in result_layers(again, "stack", source) if s[0] == "depth")
    limits = [float(kwargs["contrast_limits"][0]), float(kwargs["contrast_limits"][1]) + 1]
    put_result(viewer.layers, (role, data, {**kwargs, "scale": (2.0, 3.0), "contrast_limits": limits}))
    assert tuple(depth.scale) == (2.0, 3.0) and list(depth.contrast_limits) == limits
    assert "scale" in fired and "contrast_limits" in fired
