"""The engine form: one magicgui control per engine option, shared by both dock widgets.

The controls are generated from :data:`napari_focus_stack.options.OPTIONS`
(the options marked ``advanced`` stay on the command line): a control is
named after its option (``form.radius``), starts at its default and takes
its range, step, choices and help text from it. An option added there
appears here with no change to this module.

How an option becomes a control:

- choices: a combo box;
- ``bool``: a check box;
- ``int`` / ``float`` with a range: a spin box. When the default is None
  ("automatic", e.g. ``reference``: the middle frame), the spin box starts
  one step below the range at a value that stands for None, which the label
  names (``Reference frame (-1: middle)``);
- anything else: a line edit, empty for None.

:meth:`EngineForm.kwargs` returns the :class:`~napari_focus_stack.FocusStacker`
keyword arguments; the engine validates them.
"""
from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox

from .._backend import gpu_status
from ..options import OPTIONS, Option, format_number

__all__ = ["EngineForm", "control_for"]

#: What None means, for the options whose default is None (the rest say "auto").
NONE_TEXT = {"reference": "middle"}


def _none_value(opt: Option) -> float | None:
    """The spin-box value that stands for None, or None when the option has no such value."""
    if opt.default is not None or opt.range is None or opt.kind not in (int, float):
        return None
    return opt.range[0] - (opt.step or 1)


def _decimals(*values: float) -> int:
    """Decimals a float spin box needs to show every one of `values` exactly (1 to 6)."""
    return max(1, *(min(6, len(f"{v:.6f}".rstrip("0").split(".")[1])) for v in values))


def control_for(opt: Option) -> Any:
    """A magicgui value widget for one engine option (named after it).

    Parameters
    ----------
    opt : Option
        The option: its name, default, range, step, choices and help.

    Returns
    -------
    magicgui.widgets.ValueWidget
        A ComboBox, CheckBox, SpinBox, FloatSpinBox or LineEdit whose
        ``value`` is the option's value (a spin box's None value aside: see
        :meth:`EngineForm.kwargs`).
    """
    tip = opt.help
    common = {"name": opt.name, "label": opt.label}
    if opt.choices is not None:
        return ComboBox(choices=list(opt.choices), value=opt.default, tooltip=tip, **common)
    if opt.kind is bool:
        return CheckBox(value=bool(opt.default), text="", tooltip=tip, **common)
    if opt.kind in (int, float) and opt.range is not None:
        lo, hi = opt.range
        none = _none_value(opt)
        tip = f"{tip} ({format_number(lo)} to {format_number(hi)})"
        if none is not None:
            text = NONE_TEXT.get(opt.name, "auto")
            common["label"] = f"{opt.label} ({format_number(none)}: {text})"
            tip += f"; {format_number(none)}: {text}"
        value = none if opt.default is None else opt.default
        if opt.kind is int:
            return SpinBox(value=int(value), min=int(none if none is not None else lo), max=int(hi),
                           step=int(opt.step or 1), tooltip=tip, **common)
        step = float(opt.step or 0.1)
        lowest = float(none if none is not None else lo)
        spin = FloatSpinBox(step=step, tooltip=tip, **common)
        spin.native.setDecimals(_decimals(step, lowest, hi, value))  # first: Qt rounds limits and value to it
        spin.min, spin.max, spin.value = lowest, float(hi), float(value)
        return spin
    return LineEdit(value="" if opt.default is None else str(opt.default), tooltip=tip, **common)



class EngineForm(Container):
    """The engine options as a magicgui form.

    Parameters
    ----------
    options : sequence of Option
        What to offer; default :data:`~napari_focus_stack.options.OPTIONS`
        without the advanced ones.

    Attributes
    ----------
    option_names : list of str
        The options offered, in form order; ``form.<name>`` is each control.
    device_status : magicgui.widgets.Label
        Where a run would compute, and why (present when ``device`` is offered).

    Examples
    --------
    >>> form = EngineForm()  # doctest: +SKIP
    >>> form.radius.value = 5  # doctest: +SKIP
    >>> FocusStacker(**form.kwargs())  # doctest: +SKIP
    """

    def __init__(self, options: tuple[Option, ...] | None = None):
        options = tuple(o for o in (OPTIONS if options is None else options) if not o.advanced)
        self._options = {o.name: o for o in options}
        self.option_names = list(self._options)
        widgets = [control_for(o) for o in options]
        if "device" in self._options:
            self.device_status = Label(name="device_status", label=" ", value="")  # " ": no label shown
            self.device_status.native.setWordWrap(True)
            widgets.insert(self.option_names.index("device") + 1, self.device_status)
        super().__init__(labels=True)
        self.extend(widgets)  # added after construction, so magicgui gives the labels one width
        if "device" in self._options:
            self._gpu_ok, self._gpu_why = gpu_status()
            self._offer_devices()
            self.device.changed.connect(self._update_device_status)
            self._update_device_status()

    def kwargs(self) -> dict[str, Any]:
        """The :class:`FocusStacker` keyword arguments the form is set to (None for "automatic")."""
        out = {}
        for name, opt in self._options.items():
            value = self[name].value
            if opt.choices is None and opt.kind is not bool and not (opt.kind in (int, float) and opt.range):
                value = value.strip() or None  # a line edit: empty is None
            elif opt.default is None and value < opt.range[0]:  # the spin box's None value
                value = None
            out[name] = value
        return out

    def set_frame_count(self, n: int) -> None:
        """Limit the reference frame control to a stack of `n` frames (0 lifts the limit)."""
        if "reference" not in self._options:
            return
        hi = self._options["reference"].range[1]
        self.reference.max = int(min(hi, n - 1)) if n > 0 else int(hi)

    # -------------------------------------------------------------- device
    def _offer_devices(self) -> None:
        if self._gpu_ok or "gpu" not in self._options["device"].choices:
            return
        combo = self.device.native
        item = combo.model().item(combo.findText("gpu"))
        item.setEnabled(False)
        item.setToolTip(f"GPU unavailable: {self._gpu_why}")

    def _update_device_status(self, *_: Any) -> None:
        device = self.device.value
        if device == "cpu":
            text = "Runs on the CPU (NumPy/SciPy/OpenCV)."
        elif self._gpu_ok:
            text = f"Runs on the GPU: {self._gpu_why}."
        elif device == "gpu":
            text = f"GPU unavailable: {self._gpu_why}."
        else:
            text = f"Auto: CPU, because {self._gpu_why}."
        self.device_status.value = text
