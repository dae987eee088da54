"""Theory registry, entry points, check reasons and the shared interface (theory/registry.py, base.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import rel_err

from lazyrich.init import deep_balanced, gaussian, lambda_balanced
from lazyrich.theory import (
    Prediction,
    TaskStats,
    Theory,
    TheoryNotApplicable,
    available_theories,
    describe_theories,
    get_theory,
    register_theory,
    registry,
    select_theory,
)

F64 = torch.float64
BUILT_INS = {"aligned", "auto", "deep_aligned", "exact", "lazy", "ode", "saxe"}


def whitened_stats(n_in: int = 4, n_out: int = 3, seed: int = 0) -> TaskStats:
    g = torch.Generator().manual_seed(seed)
    P = 12
    q, _ = torch.linalg.qr(torch.randn(P, n_in, generator=g, dtype=F64))
    X = math.sqrt(P) * q
    return TaskStats.from_data(X, X @ torch.randn(n_in, n_out, generator=g, dtype=F64))


class _EchoTheory(Theory):
    """A plug-in stand-in: predicts that nothing moves."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def _check(self, stats, weights):
        return None

    def _predict(self, stats, weights, t):
        return get_theory("lazy")._predict(stats, weights, t * 0)


class _FakeEntryPoint:
    def __init__(self, name: str, target):
        self.name, self.value, self._target = name, f"fake.module:{name}", target
        self.group = registry.ENTRY_POINT_GROUP

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Patch importlib.metadata.entry_points as the registry sees it; undo the cache afterwards."""

    def install(*eps):
        monkeypatch.setattr(registry.metadata, "entry_points",
                            lambda group=None: [ep for ep in eps if group in (None, ep.group)])
        registry._clear_entry_point_cache()

    yield install
    registry._clear_entry_point_cache()


def test_built_in_names_and_unknown_name():
    assert BUILT_INS <= set(available_theories())
    assert get_theory("ode", rtol=1e-9).rtol == 1e-9
    with pytest.raises(ValueError, match="unknown theory 'nope'") as err:
        get_theory("nope")
    for name in BUILT_INS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="does not take options"):
        get_theory("exact", colour="red")


def test_describe_theories_gives_one_line_each():
    text = describe_theories()
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert BUILT_INS <= set(lines) and all(lines[name] for name in BUILT_INS)
    assert "closed form" in lines["exact"]


def test_register_theory_sets_the_name_and_refuses_clashes():
    @register_theory("_test_echo")
    class Echo(_EchoTheory):
        pass

    try:
        assert Echo.name == "_test_echo" and isinstance(get_theory("_test_echo"), Echo)
        with pytest.raises(ValueError, match="already registered"):
            register_theory("ode")(Echo)
        with pytest.raises(TypeError):
            register_theory("_not_a_theory")(object)
    finally:
        registry._REGISTRY.pop("_test_echo", None)


def test_entry_points_load_lazily_and_broken_ones_name_themselves(fake_entry_points):
    calls = []

    class Plugin(_EchoTheory):
        def __init__(self, **kw):
            calls.append(kw)
            super().__init__(**kw)

    fake_entry_points(_FakeEntryPoint("plug", Plugin), _FakeEntryPoint("broken", ImportError("no module x")))
    names = available_theories()
    assert {"plug", "broken"} <= set(names) and BUILT_INS <= set(names)
    assert calls == []  # listing does not import
    assert "broken: plug-in 'fake.module:broken'" in describe_theories()  # described without importing
    theory = get_theory("plug", scale=2.0)
    assert isinstance(theory, Plugin) and theory.scale == 2.0 and Plugin.name == "plug"
    stats = whitened_stats()
    w1, w2 = lambda_balanced(4, 3, 3, 1.0, generator=torch.Generator().manual_seed(0))
    assert theory.predict(stats, [w1, w2], torch.tensor([0.0, 1.0], dtype=torch.float64)).loss.shape == (1, 2)
    with pytest.raises(ImportError, match=r"theory 'broken'.*fake.module:broken.*no module x"):
        get_theory("broken")
    assert get_theory("exact").name == "exact"  # a broken plug-in does not hide the built-ins


def test_entry_point_that_is_not_a_theory(fake_entry_points):
    fake_entry_points(_FakeEntryPoint("weird", 42), _FakeEntryPoint("factory", lambda: "not a theory"))
    with pytest.raises(TypeError, match="weird"):
        get_theory("weird")
    with pytest.raises(TypeError, match="factory.*not a Theory"):
        get_theory("factory")


def test_check_reasons():
    stats = whitened_stats()
    g = torch.Generator().manual_seed(1)
    w1, w2 = lambda_balanced(4, 3, 3, 2.0, generator=g)
    exact = get_theory("exact")
    assert exact.check(stats, [w1, w2]) is None
    assert "λ-balanced" in exact.check(stats, [w1 * 1.1, w2])
    deep = deep_balanced([4, 3, 3, 3], 1.0, generator=g)
    assert "deep_aligned" in exact.check(stats, deep)
    assert "Nh = min(Ni, No) = 3" in exact.check(stats, gaussian([4, 4, 3], generator=g))
    X = torch.randn(10, 4, generator=g, dtype=F64)
    unwhitened = TaskStats.from_data(X, X[:, :3])
    for name in ("exact", "aligned", "saxe", "lazy", "deep_aligned"):
        assert "task.whiten" in get_theory(name).check(unwhitened, [w1, w2]), name
    assert get_theory("ode").check(unwhitened, [w1, w2]) is None
    with pytest.raises(TheoryNotApplicable, match="theory 'exact' does not apply: .*λ-balanced"):
        exact.predict(stats, [w1 * 1.1, w2], torch.tensor([1.0]))
    with pytest.raises(ValueError, match="task has Ni = 4"):
        exact.check(stats, [w1[:, :3], w2])


def test_auto_selection_and_per_network_grids():
    stats = whitened_stats()
    g = torch.Generator().manual_seed(2)
    w1, w2 = lambda_balanced(4, 3, 3, [0.5, -1.0], generator=g)
    theory, why = select_theory(stats, [w1, w2])
    assert theory.name == "exact" and why.startswith("exact applies")
    t = torch.tensor([[0.0, 0.5, 1.0], [0.0, 2.0, 4.0]], dtype=F64)  # per-net grids, as when lr differs
    auto = get_theory("auto").predict(stats, [w1, w2], t)
    assert auto.theory == "exact" and auto.notes[0].startswith("auto: picked exact")
    ode = get_theory("ode").predict(stats, [w1, w2], t)
    assert torch.equal(auto.t, t)
    assert rel_err(auto.product, ode.product, batch_dims=1) <= 1e-9  # ODE default tolerance, ×100
    wide = gaussian([4, 5, 3], generator=g, batch=2)
    theory, why = select_theory(stats, wide, rtol=1e-9, tau=2.0)  # options go where they are taken
    assert theory.name == "ode" and "exact: " in why and "Nh" in why
    assert theory.rtol == 1e-9 and theory.tau == 2.0


def test_prediction_shapes_and_task_stats_duck_typing():
    stats = whitened_stats()
    task = SimpleNamespace(sigma_xx=stats.sigma_xx, sigma_yx=stats.sigma_yx, sigma_yy=stats.sigma_yy,
                           P=stats.P)
    w1, w2 = lambda_balanced(4, 3, 3, [1.0, 2.0, 3.0], generator=torch.Generator().manual_seed(3))
    pred = get_theory("exact").predict(task, [w1, w2], torch.linspace(0, 1, 5, dtype=torch.float64))
    assert isinstance(pred, Prediction)
    shapes = {"t": (3, 5), "product": (3, 5, 3, 4), "w1tw1": (3, 5, 4, 4), "wwt_out": (3, 5, 3, 3),
              "loss": (3, 5), "kernel_distance": (3, 5), "ntk_rel_change": (3, 5), "svals": (3, 5, 3),
              "converges_to_saddle": (3,), "final_loss": (3,)}
    for name, shape in shapes.items():
        assert tuple(getattr(pred, name).shape) == shape, name
    assert pred.converges_to_saddle.dtype == torch.bool and pred.product.dtype == F64
    # The loss helper agrees with the data definition 1/(2P)‖W Xᵀ − Yᵀ‖² for a non-whitened task too.
    g = torch.Generator().manual_seed(4)
    X, Y = torch.randn(9, 4, generator=g, dtype=F64), torch.randn(9, 3, generator=g, dtype=F64)
    W = torch.randn(3, 4, generator=g, dtype=F64)
    raw = TaskStats.from_data(X, Y)
    from lazyrich.theory import loss_from_product

    direct = ((X @ W.mT - Y) ** 2).sum() / (2 * 9)
    assert rel_err(loss_from_product(W, raw), direct) <= 1e-12  # rounding of two summations (~50 terms)
