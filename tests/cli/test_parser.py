"""The parser: every command has help, the engine options come from the options model."""
import subprocess
import sys

import pytest

from napari_focus_stack.cli import build_parser, main
from napari_focus_stack.options import OPTIONS, EngineOptions


@pytest.mark.parametrize("cmd", [[], ["stack"], ["demo"], ["info"], ["batch"]])
def test_help(cmd):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_focus_stack.cli", *cmd, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "usage" in proc.stdout


def test_parser_defaults():
    args = build_parser().parse_args(["stack", "a.jpg", "-o", "b.jpg"])
    assert (args.radius, args.smoothing, args.scale_factor, args.method) == (8, 4, 1, "pyramid")


def _engine_actions(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices[command]._actions if a.dest in {o.name for o in OPTIONS}}


@pytest.mark.parametrize("command", ["stack", "batch", "demo"])
def test_engine_options_are_generated_from_the_options_model(command):
    actions = _engine_actions(command)
    assert set(actions) == {o.name for o in OPTIONS}
    for opt in OPTIONS:
        action = actions[opt.name]
        assert action.option_strings == [opt.flag]
        assert action.default == (opt.default if opt.kind is not bool else bool(opt.default))
        assert action.choices == opt.choices
        if opt.kind is bool:
            assert action.nargs == 0  # a switch
        else:
            assert action.type is opt.kind
        assert opt.help in action.help
        if opt.range is not None and opt.range[1] < 100_000:
            assert f"{opt.range[0]:g}-{opt.range[1]:g}" in action.help


def test_parsed_defaults_are_the_engine_defaults():
    args = build_parser().parse_args(["stack", "a.jpg", "-o", "b.jpg"])
    assert EngineOptions.from_mapping(args) == EngineOptions()


def test_nothing_in_the_package_imports_the_command_line():
    code = (
        "import sys, napari_focus_stack, napari_focus_stack.batch, napari_focus_stack.grouping, "
        "napari_focus_stack.synthetic, napari_focus_stack.stacker\n"
        "assert not any(m.startswith('napari_focus_stack.cli') for m in sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_out_of_range_engine_option_is_one_line(capsys):
    assert main(["stack", "a.jpg", "b.jpg", "-o", "o.jpg", "--smoothing", "11"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["napari-focus-stack: error: smoothing must be between 1 and 10, got 11.0"]


def test_stack_runs_without_the_batch_planner_or_the_generator(tmp_path):
    # each is a few hundredths of a second of start-up that a plain stack run does not need
    import subprocess
    import sys

    from napari_focus_stack.synthetic import make_stack, save_stack

    paths = save_stack(make_stack("checker", shape=(64, 80), n_frames=3, seed=0), tmp_path, fmt="png")
    code = (
        "import sys\n"
        "from napari_focus_stack.cli import main\n"
        f"assert main(['stack', *{[str(p) for p in paths]!r}, '-o', {str(tmp_path / 'f.png')!r}, '-q']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('napari_focus_stack.') and m.split('.')[1] in "
        "('batch', 'grouping', 'synthetic', 'cli')))\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    loaded = eval(out[0])  # noqa: S307  (our own printout)
    assert not any(m.split(".")[1] in ("grouping", "synthetic") for m in loaded), loaded
    assert not {"napari_focus_stack.batch.plan", "napari_focus_stack.batch.run", "napari_focus_stack.cli.batch",
                "napari_focus_stack.cli.demo"} & set(loaded), loaded
    assert out[1] == "False"
