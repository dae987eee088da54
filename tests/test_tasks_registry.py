"""Tests for lazyrich/tasks/registry.py: lookup, parameter checks, plug-in failures, entry points."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from importlib import metadata

import numpy as np
import pytest
from omegaconf import OmegaConf

from lazyrich.tasks import Task, TaskError, available, describe_all, make, register, registry, task_defaults


@pytest.fixture
def scratch() -> Iterator[list[str]]:
    """Names registered by a test; removed afterwards so tests stay independent."""
    names: list[str] = []
    yield names
    for n in names:
        registry._REGISTRY.pop(n, None)
        registry._ORIGIN.pop(n, None)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[metadata.EntryPoint]]:
    """Replace the installed entry points with a list the test fills in."""
    eps: list[metadata.EntryPoint] = []
    registry._reset_entry_points()
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    yield eps
    registry._reset_entry_points()


def test_unknown_name_lists_tasks_and_suggests() -> None:
    with pytest.raises(
        TaskError, match=r"unknown task 'hierarchi'\. Did you mean 'hierarchy'\?.*Valid tasks:.*digits"
    ):
        make("hierarchi")


def test_unknown_parameter_lists_valid_ones() -> None:
    with pytest.raises(
        TaskError,
        match=r"'hierarchy' got unknown parameter\(s\) 'dept'.*did you mean 'depth'.*"
        r"Valid parameters: depth=3, branching=2",
    ):
        make("hierarchy", dept=2)


def test_missing_required_parameter() -> None:
    with pytest.raises(TaskError, match=r"'torchvision_dataset'.*missing.*root"):
        make("torchvision_dataset")


def test_plugin_function_raising_is_wrapped(scratch: list[str]) -> None:
    @register("broken_inside")
    def broken_inside(n: int = 1) -> Task:
        raise ZeroDivisionError("division by zero in the plug-in")

    scratch.append("broken_inside")
    with pytest.raises(
        TaskError, match=r"'broken_inside'.*failed with n=3: ZeroDivisionError: division by zero"
    ) as e:
        make("broken_inside", n=3)
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_plugin_returning_wrong_type(scratch: list[str]) -> None:
    @register()
    def returns_array() -> np.ndarray:
        return np.eye(2)

    scratch.append("returns_array")
    with pytest.raises(TaskError, match=r"'returns_array'.*returned a ndarray, not a Task or TaskSequence"):
        make("returns_array")


def test_register_default_name_renames_default_task_and_rejects_clash(scratch: list[str]) -> None:
    @register
    def tiny_task(scale: float = 1.0) -> Task:
        return Task(np.eye(2), scale * np.eye(2))

    scratch.append("tiny_task")
    assert make("tiny_task", scale=2.0).name == "tiny_task"
    with pytest.raises(TaskError, match="already registered"):
        register("hierarchy")(tiny_task)


def test_reserved_parameter_names_are_rejected() -> None:
    def uses_name(name: str = "x") -> Task:
        return Task(np.eye(2), np.eye(2))

    with pytest.raises(TaskError, match=r"'uses_name'.*\['name'\] clash with the config keys"):
        register()(uses_name)
    assert "uses_name" not in available()


def test_broken_entry_point_is_reported_and_builtins_survive(
    fake_entry_points: list[metadata.EntryPoint],
) -> None:
    fake_entry_points += [
        metadata.EntryPoint("ghost_task", "no_such_module_xyz:build", registry.ENTRY_POINT_GROUP),
        metadata.EntryPoint("good_task", "lazyrich.tasks.generators:hierarchy", registry.ENTRY_POINT_GROUP),
        metadata.EntryPoint(
            "hierarchy", "lazyrich.tasks.generators:random_regression", registry.ENTRY_POINT_GROUP
        ),
    ]
    assert make("hierarchy").shape == (8, 8, 8)
    assert not registry._entry_points_loaded  # built-ins never touch the entry points
    with pytest.raises(
        TaskError,
        match=r"'ghost_task' is unavailable: entry point ghost_task = "
        r"'no_such_module_xyz:build'.*failed to load: ModuleNotFoundError",
    ):
        make("ghost_task")
    assert make("good_task", depth=2).shape == (4, 4, 4)  # loaded and registered under the entry-point name
    assert make("hierarchy").svd[1][0] == pytest.approx(1.0)  # the built-in wins over a clashing plug-in
    listing = describe_all()
    assert "ghost_task  [BROKEN]" in listing and "rename the entry point" in listing
    assert "good_task  [entry point" in listing


def test_available_and_describe_all() -> None:
    tasks = available()
    for name in [
        "hierarchy",
        "random_regression",
        "student_teacher",
        "digits",
        "mnist1d",
        "torchvision_dataset",
        "reversal",
        "transfer_rotated",
        "transfer_rescaled",
        "continual_stream",
    ]:
        assert isinstance(tasks[name], inspect.Signature)
    text = describe_all()
    assert "hierarchy\n    Hierarchical semantic task" in text
    assert "parameters: depth=3, branching=2, encoding='signed'" in text


def test_task_defaults_are_hydra_nodes() -> None:
    assert task_defaults("hierarchy") == dict(
        depth=3, branching=2, encoding="signed", break_symmetry=0.0, noise=0.0, seed=0
    )
    assert task_defaults("torchvision_dataset")["root"] == "???"
    for name in available():
        cfg = OmegaConf.create(task_defaults(name))  # every built-in must compose as a config node
        assert set(cfg.keys()) == set(task_defaults(name))
    cfg = OmegaConf.merge(OmegaConf.create(task_defaults("hierarchy")), OmegaConf.from_dotlist(["depth=2"]))
    assert make("hierarchy", **OmegaConf.to_container(cfg)).P == 4
    assert OmegaConf.is_missing(OmegaConf.create(task_defaults("torchvision_dataset")), "root")
