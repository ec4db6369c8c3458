"""The engine form: magicgui controls generated from options.OPTIONS, kwargs for FocusStacker."""
from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox  # noqa: E402

from napari_focus_stack import FocusStacker  # noqa: E402
from napari_focus_stack._napari.engine_form import EngineForm  # noqa: E402
from napari_focus_stack.options import OPTIONS, Option  # noqa: E402

pytestmark = pytest.mark.napari

OFFERED = [o for o in OPTIONS if not o.advanced]


@pytest.fixture
def form(qtbot):
    form = EngineForm()
    qtbot.addWidget(form.native)
    return form


def test_is_a_magicgui_form_with_one_control_per_option(form):
    assert isinstance(form, Container)
    assert form.option_names == [o.name for o in OFFERED]
    assert {"radius", "smoothing", "scale_factor", "method", "align", "reference", "device"} <= set(form.option_names)
    assert not {o.name for o in OPTIONS if o.advanced} & set(form.option_names)
    for opt in OFFERED:
        control = getattr(form, opt.name)
        assert control is form[opt.name]
        assert opt.help in control.tooltip


def test_controls_take_ranges_steps_choices_and_defaults_from_the_options(form):
    for opt in OFFERED:
        control = form[opt.name]
        if opt.choices is not None:
            assert isinstance(control, ComboBox)
            assert list(control.choices) == list(opt.choices)
            assert control.value == opt.default
        elif opt.default is None:  # "automatic": one step below the range stands for None
            assert isinstance(control, SpinBox if opt.kind is int else FloatSpinBox)
            assert control.min == opt.range[0] - (opt.step or 1) == control.value
            assert control.max == opt.range[1]
        else:
            assert isinstance(control, SpinBox if opt.kind is int else FloatSpinBox)
            assert (control.min, control.max) == opt.range
            assert control.step == opt.step
            assert control.value == opt.default
    assert form.reference.label == "Reference frame (-1: middle)"


def test_kwargs_start_at_the_engine_defaults(form):
    kwargs = form.kwargs()
    assert kwargs == {o.name: o.default for o in OFFERED}
    assert kwargs["reference"] is None  # the middle frame
    ours = {k: v for k, v in vars(FocusStacker(**kwargs)).items() if not k.startswith("_")}
    theirs = {k: v for k, v in vars(FocusStacker()).items() if not k.startswith("_")}
    assert ours == theirs


def test_changing_a_control_changes_the_kwargs(form):
    form.radius.value = 5
    form.smoothing.value = 2.5
    form.scale_factor.value = 2
    form.method.value = "depthmap"
    form.align.value = "translation"
    form.reference.value = 3
    form.device.value = "cpu"
    form.prefer.value = "near"
    assert form.kwargs() == {
        "method": "depthmap", "radius": 5, "smoothing": 2.5, "scale_factor": 2, "align": "translation",
        "reference": 3, "device": "cpu", "prefer": "near",
    }
    form.reference.value = form.reference.min
    assert form.kwargs()["reference"] is None
    stacker = FocusStacker(**form.kwargs())
    assert (stacker.radius, stacker.smoothing, stacker.method) == (5, 2.5, "depthmap")


def test_a_new_option_appears_without_code_changes(qtbot):
    extra = (
        Option("winner", str, "detail", "Winner", "what wins where frames disagree", choices=("detail", "smooth")),
        Option("channel", str, None, "Channel", "deciding channel (index or name)"),
        Option("z_step", float, None, "Z step", "z step in micrometres", range=(0.001, 1000), step=0.5),
        Option("keep", bool, True, "Keep", "keep something"),
    )
    form = EngineForm(OPTIONS + extra)
    qtbot.addWidget(form.native)
    assert form.option_names[-4:] == ["winner", "channel", "z_step", "keep"]
    assert isinstance(form.winner, ComboBox) and list(form.winner.choices) == ["detail", "smooth"]
    assert isinstance(form.channel, LineEdit) and isinstance(form.keep, CheckBox)
    assert isinstance(form.z_step, FloatSpinBox) and form.z_step.min == pytest.approx(0.001 - 0.5)
    kwargs = form.kwargs()
    assert (kwargs["winner"], kwargs["channel"], kwargs["z_step"], kwargs["keep"]) == ("detail", None, None, True)
    form.z_step.value = 0.001  # the lowest real value is not None
    assert form.kwargs()["z_step"] == pytest.approx(0.001)
    form.channel.value = "GFP"
    form.z_step.value = 0.5
    form.keep.value = False
    form.winner.value = "smooth"
    kwargs = form.kwargs()
    assert (kwargs["winner"], kwargs["channel"], kwargs["z_step"], kwargs["keep"]) == ("smooth", "GFP", 0.5, False)


def test_frame_count_limits_the_reference(form):
    form.set_frame_count(7)
    assert form.reference.max == 6
    form.reference.value = 6
    form.set_frame_count(3)
    assert form.reference.value == 2  # clamped into the new stack
    form.set_frame_count(0)
    assert form.reference.max == dict((o.name, o) for o in OPTIONS)["reference"].range[1]


def test_device_status_says_where_it_runs(form):
    from napari_focus_stack._backend import gpu_status

    ok, why = gpu_status()
    form.device.value = "cpu"
    assert "CPU" in form.device_status.value
    form.device.value = "auto"
    assert why in form.device_status.value
    combo = form.device.native
    assert combo.model().item(combo.findText("gpu")).isEnabled() == ok
    assert "device_status" not in form.kwargs()


def test_both_dock_widgets_use_the_form(make_napari_viewer):
    from napari_focus_stack._napari.batch_widget import BatchWidget
    from napari_focus_stack._napari.stack_widget import FocusStackWidget

    viewer = make_napari_viewer()
    for cls in (FocusStackWidget, BatchWidget):
        widget = cls(viewer)
        assert isinstance(widget.engine, EngineForm)
        widget.deleteLater()
