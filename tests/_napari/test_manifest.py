"""The npe2 manifest: valid, discoverable, and every contribution resolves to an importable command."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

npe2 = pytest.importorskip("npe2")

pytestmark = pytest.mark.napari

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "napari.yaml"
LINK = ROOT / "src" / "napari_focus_stack" / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_file(MANIFEST)


def _referenced_commands(manifest) -> set[str]:
    c = manifest.contributions
    ids = {r.command for r in c.readers or ()}
    ids |= {w.command for w in c.writers or ()}
    ids |= {w.command for w in c.widgets or ()}
    ids |= {s.command for s in c.sample_data or () if hasattr(s, "command")}
    for items in (c.menus or {}).values():
        ids |= {i.command for i in items if hasattr(i, "command")}
    return ids


def test_package_holds_a_relative_symlink_to_the_root_manifest():
    assert LINK.is_symlink()
    target = os.readlink(LINK)
    assert not os.path.isabs(target)
    assert LINK.resolve() == MANIFEST.resolve()


def test_installed_plugin_uses_this_manifest():
    pm = npe2.PluginManager.instance()
    pm.discover()
    installed = pm.get_manifest("napari-focus-stack")
    assert installed.contributions.commands == npe2.PluginManifest.from_file(MANIFEST).contributions.commands


def test_every_contribution_names_a_declared_command(manifest):
    declared = {cmd.id for cmd in manifest.contributions.commands}
    missing = _referenced_commands(manifest) - declared
    assert not missing, f"contributions refer to undeclared commands: {missing}"
    assert all(cid.startswith(manifest.name + ".") for cid in declared)


def test_every_command_imports(manifest):
    for cmd in manifest.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        assert callable(obj), cmd.python_name


def test_commands_name_the_plugin_modules(manifest):
    """A renamed module or function fails here (and above), it is never skipped."""
    names = {cmd.id.split(".", 1)[1]: cmd.python_name for cmd in manifest.contributions.commands}
    assert names == {
        "focus_stack_widget": "napari_focus_stack._napari.stack_widget:FocusStackWidget",
        "batch_widget": "napari_focus_stack._napari.batch_widget:BatchWidget",
        "get_reader": "napari_focus_stack._napari._reader:get_reader",
        "write_image_layer": "napari_focus_stack._napari._writer:write_image_layer",
        "write_labels_layer": "napari_focus_stack._napari._writer:write_labels_layer",
        "write_surface_layer": "napari_focus_stack._napari._mesh_writer:write_surface_layer",
        "write_layers": "napari_focus_stack._napari._writer:write_layers",
        "make_sample_data": "napari_focus_stack._napari._sample_data:make_sample_data",
    }


def test_npe2_validate_imports(manifest):
    manifest.validate_imports()


def test_tests_run_on_qt6():
    """napari 0.9 warns on every start under PyQt5: the tests use PyQt6, in qtpy and pytest-qt alike."""
    import qtpy
    from pytestqt.qt_compat import qt_api

    assert qtpy.API_NAME == "PyQt6"
    assert qt_api.pytest_qt_api == "pyqt6"


def test_extras_install_qt6():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("napari", "testing"):
        deps = " ".join(extras[extra]).lower()
        assert "pyqt6" in deps and "pyqt5" not in deps, extra


def test_reader_patterns_match_the_engine_extensions(manifest):
    from napari_focus_stack.io import IMAGE_EXTENSIONS

    (reader,) = manifest.contributions.readers
    assert reader.accepts_directories
    assert set(reader.filename_patterns) == {f"*{ext}" for ext in IMAGE_EXTENSIONS}


def test_menu_ids_are_contributable(manifest):
    from napari._app_model.constants._menus import is_menu_contributable

    menus = manifest.contributions.menus
    assert "napari/layers/project" in menus
    for menu_id in menus:
        assert is_menu_contributable(menu_id), menu_id


def test_widget_sits_under_layers_project(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()
    items = get_app_model().menus.get_menu("napari/layers/project")
    commands = [item.command.id for item in items if hasattr(item, "command")]
    assert "napari-focus-stack.focus_stack_widget" in commands


def test_plugin_name_alone_docks_the_focus_stack_widget(make_napari_viewer):
    # what `napari -w napari-focus-stack` does
    from napari_focus_stack._napari.stack_widget import FocusStackWidget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-focus-stack")
    assert isinstance(widget, FocusStackWidget)
