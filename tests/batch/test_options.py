"""BatchOptions: validated at construction, engine options from the one options model."""
from __future__ import annotations

import pytest

from napari_focus_stack.batch import BatchOptions
from napari_focus_stack.errors import FocusStackError, ParameterError
from napari_focus_stack.options import EngineOptions


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(format="jpg", bit_depth=16), "JPEG"),
        (dict(radius=0), "radius"),
        (dict(format="gif"), "format"),
        (dict(quality=0), "quality"),
        (dict(quality=95.5), "quality"),
        (dict(workers=0), "workers"),
        (dict(retries=-1), "retries"),
        (dict(max_pixels=-5), "max_pixels"),
        (dict(colour="red"), "unknown batch option"),
        (dict(engine=EngineOptions(), radius=3), "not both"),
    ],
)
def test_invalid_options_raise_parameter_error(kwargs, words):
    with pytest.raises(ParameterError, match=words) as info:
        BatchOptions(**kwargs)
    assert isinstance(info.value, FocusStackError) and isinstance(info.value, ValueError)


def test_engine_fields_or_engine_options():
    a = BatchOptions(radius=5, device="cpu", depth_maps=True)
    b = BatchOptions(EngineOptions(radius=5, device="cpu"), depth_maps=True)
    assert a == b and a.engine.radius == 5
    assert a.engine_kwargs() == EngineOptions(radius=5, device="cpu").kwargs()
    flat = a.as_dict()
    assert flat["radius"] == 5 and flat["depth_maps"] is True and "engine" not in flat
    with pytest.raises(AttributeError):
        a.quality = 10  # frozen
