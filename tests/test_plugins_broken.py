"""Plug-ins never take the built-ins down (issue 11): a plug-in that exits, fails to import, or has a default
no config can hold is marked broken with its reason, and every built-in keeps working.

The plug-ins are simulated without installing anything: a throwaway folder holds their modules and a
``*.dist-info`` with ``entry_points.txt``; the registries read it instead of the installed entry points.
"""

import sys
from importlib import metadata

import pytest
from hydra import compose, initialize_config_dir

from lazyrich import cli, theory
from lazyrich.config.compose import conf_dir, register_configs
from lazyrich.tasks import registry as task_registry
from lazyrich.theory import registry as theory_registry

MODULES = {
    "fault_exit_mod.py": "import sys\nsys.exit('plug-in gave up at import')\n",
    "fault_plugins.py": (
        "import numpy as np\nfrom lazyrich.tasks import Task\n\n"
        "def array_task(scales=np.array([1.0, 2.0])):\n    return Task(np.eye(2), np.diag(scales))\n"
    ),
}
ENTRY_POINTS = """[lazyrich.tasks]
exits = fault_exit_mod:task
array_default = fault_plugins:array_task
broken_import = fault_missing_mod:task

[lazyrich.theories]
exits_theory = fault_exit_mod:Theory
"""


@pytest.fixture
def plugin_dir(tmp_path):
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    info = tmp_path / "fault_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fault-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return tmp_path


@pytest.fixture
def plugins_in_process(plugin_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir))
    dist = metadata.PathDistribution(plugin_dir / "fault_plugins-0.1.dist-info")
    eps = {group: [ep for ep in dist.entry_points if ep.group == group]
           for group in (task_registry.ENTRY_POINT_GROUP, theory_registry.ENTRY_POINT_GROUP)}
    monkeypatch.setattr(task_registry, "_entry_points", lambda: eps[task_registry.ENTRY_POINT_GROUP])
    monkeypatch.setattr(theory_registry.metadata, "entry_points", lambda group: eps[group])
    task_registry._reset_entry_points()
    theory_registry._clear_entry_point_cache()
    yield
    task_registry._reset_entry_points()
    theory_registry._clear_entry_point_cache()
    for name in ("fault_exit_mod", "fault_plugins"):
        sys.modules.pop(name, None)


def test_broken_task_plugins_are_listed_with_their_reason_and_builtins_work(plugins_in_process):
    names = task_registry.available()
    assert "hierarchy" in names and "random_regression" in names
    assert not {"exits", "array_default", "broken_import"} & set(names)
    broken = task_registry.broken_entry_points()
    assert "SystemExit: plug-in gave up at import" in broken["exits"]
    assert "scales=ndarray" in broken["array_default"] and "cannot go into a config" in broken["array_default"]
    assert "No module named 'fault_missing_mod'" in broken["broken_import"]
    with pytest.raises(task_registry.TaskError, match="fault_missing_mod"):
        task_registry.make("broken_import")
    assert task_registry.make("hierarchy").n_in == 8


def test_a_theory_plugin_that_exits_is_an_error_naming_it_not_an_exit(plugins_in_process):
    with pytest.raises(ImportError, match="exits_theory.*SystemExit: plug-in gave up"):
        theory.get_theory("exits_theory")
    assert theory.get_theory("exact").name == "exact"


def test_cli_lists_builtins_beside_broken_plugins_and_shows_the_import_error(plugins_in_process, capsys):
    cli.main(["tasks"])
    listed = capsys.readouterr().out
    assert "hierarchy" in listed and "exits  [BROKEN]" in listed and "array_default  [BROKEN]" in listed
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "task=broken_import", "logger=none"])
    text = str(info.value)
    assert "\n" not in text and "task 'broken_import' is unavailable" in text and "fault_missing_mod" in text
    register_configs()  # the array-default plug-in is not stored: every built-in still composes
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["task=hierarchy", "logger=none"])
    assert cfg.task.name == "hierarchy"
