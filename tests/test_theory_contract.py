"""One contract for every registered theory, plug-ins included: registering a theory is enough to have it tested.

Each theory runs on a few small scenarios (square, funnel, inverted funnel, task-aligned, three layers, a wide
Gaussian funnel; λ of both signs and λ = 0), plain and with training options (layer rates, an output multiplier,
weight decay: the trainer's options, which every theory is given). Wherever its ``check`` accepts, its prediction
must have the documented shapes, be float64 and finite, and agree with an independent reference for the dynamics
it declares (``Theory.dynamics``): a gradient-flow theory declared ``exact`` with a tight DOP853 solve of the flow
(with the same options), a gradient-descent theory declared ``exact`` with the trainer itself (a theory that hands
the work to another, such as ``auto``, is held to the declaration of the one that ran). Wherever ``check``
refuses, ``predict`` must refuse with the same reason; a theory that does not model an option set refuses it in
one line.
"""

from __future__ import annotations

import pytest
import torch

from lazyrich import init, tasks
from lazyrich.theory import TaskStats, available_theories, get_theory
from lazyrich.theory.base import TheoryNotApplicable
from lazyrich.theory.registry import filter_options
from lazyrich.train import TRAINING_OPTIONS, TrainOptions, train

F64 = torch.float64
LR = 1e-3
T_MAX = 3.0
N_LOG = 7

EXACT_RTOL = 1e-7
"""Largest gap an exact theory may show against its reference, relative to the quantity's largest magnitude over
the run: the flow reference is DOP853 at rtol 2.5e-14, the ode theory itself defaults to rtol 1e-10 over ~10
time units (a few 1e-9 accumulated), the closed forms are accurate to ~1e-11 (docs: theory, precision)."""

GD_RTOL = 1e-9
"""Exact GD theories against the trainer: the same map applied for t/lr = 3000 steps in float64 (rounding grows
like √steps · 1e-16 · condition number, far below 1e-9)."""


def _task(n_in: int, n_out: int):
    return tasks.make("random_regression", n_in=n_in, n_out=n_out, seed=3).whiten()


def _in_rates(weights, options):
    """Weights balanced in the units of their layer rates (W_l = ρ_l·V_l), as the experiment's init builds them."""
    if not options.get("layer_lr"):
        return weights
    to_v = TrainOptions.of(**options).to_rate_units(weights[0].shape[0], len(weights))
    return [w / to_v[:, l, None, None] for l, w in enumerate(weights)]


def _two_layer(n_in: int, n_out: int, lams, *, aligned: bool = False, **options):
    task = _task(n_in, n_out)
    gen = torch.Generator().manual_seed(0)
    w1, w2 = init.lambda_balanced(n_in, min(n_in, n_out), n_out, lams, scale=0.3, generator=gen,
                                  align_to=task.sigma_yx if aligned else None)
    return task, _in_rates([w1, w2], options), options


def _wide_gaussian():
    """A wide i.i.d. funnel (N_h = 256 ≫ 3): W1 ~ N(0, 0.5/N_h), W2 ~ N(0, 0.5/N_h), the init theory wide is for."""
    task = _task(3, 2)
    return task, init.gaussian([3, 256, 2], 0.5**0.5, variance="hidden", generator=torch.Generator().manual_seed(2),
                               batch=2), {}


def _three_layer(**options):
    task = _task(3, 3)
    weights = [torch.stack(ws) for ws in zip(*[
        init.deep_balanced([3, 3, 3, 3], lams, scale=0.4, generator=torch.Generator().manual_seed(1),
                           align_to=task.sigma_yx) for lams in ([0.5, -0.5], [1.0, 0.0])], strict=True)]
    return task, _in_rates(weights, options), options


SCENARIOS = {
    "square": lambda: _two_layer(3, 3, [-1.0, 0.0, 1.5]),
    "zero_balanced": lambda: _two_layer(3, 3, [0.0]),
    "funnel": lambda: _two_layer(4, 2, [0.5, 2.0]),
    "inverted_funnel": lambda: _two_layer(2, 4, [-2.0, -0.5]),
    "aligned": lambda: _two_layer(3, 3, [-0.5, 0.0, 2.0], aligned=True),
    "three_layers": _three_layer,
    "wide_gaussian": _wide_gaussian,
    # the training options: each theory that models them keeps the same contract with them
    "funnel_rates": lambda: _two_layer(4, 2, [0.5, -1.0], layer_lr=[0.3, 2.0]),
    "inverted_funnel_alpha": lambda: _two_layer(2, 4, [-2.0, 0.5], output_scale=1.7),
    "aligned_rates_alpha": lambda: _two_layer(3, 3, [-0.5, 0.0, 2.0], aligned=True, layer_lr=[0.5, 1.5],
                                              output_scale=0.8),
    "aligned_decay": lambda: _two_layer(3, 3, [-0.5, 1.0], aligned=True, weight_decay=0.2, layer_lr=[0.7, 1.3]),
    "square_decay": lambda: _two_layer(3, 3, [-1.0, 1.5], weight_decay=0.1, output_scale=1.3),
    "three_layers_options": lambda: _three_layer(layer_lr=[1.0, 2.0, 0.5], output_scale=1.3, weight_decay=0.1),
}

SHAPES = {
    "t": lambda b, ni, no, m: (b, N_LOG), "product": lambda b, ni, no, m: (b, N_LOG, no, ni),
    "w1tw1": lambda b, ni, no, m: (b, N_LOG, ni, ni), "wwt_out": lambda b, ni, no, m: (b, N_LOG, no, no),
    "loss": lambda b, ni, no, m: (b, N_LOG), "kernel_distance": lambda b, ni, no, m: (b, N_LOG),
    "ntk_rel_change": lambda b, ni, no, m: (b, N_LOG), "svals": lambda b, ni, no, m: (b, N_LOG, m),
    "final_loss": lambda b, ni, no, m: (b,),
}
COMPARED = ("product", "w1tw1", "wwt_out", "loss", "kernel_distance")


def _theory(name: str, options=None):
    return get_theory(name, **filter_options(name, {"lr": LR, "dtype": "float64", **(options or {})}))


@pytest.fixture(scope="module")
def references():
    """Per scenario: the task, the weights, the training options, the GD trajectory at LR with them (its t grid is
    every theory's grid) and a tight DOP853 solve of the flow with them on that grid."""
    out = {}
    for name, make in SCENARIOS.items():
        task, weights, options = make()
        traj = train(task, weights, LR, t_max=T_MAX, n_log=N_LOG, n_matrix=N_LOG, progress=False, **options)
        flow = get_theory("ode", rtol=2.5e-14, atol=1e-15, **options).predict(TaskStats.from_task(task), weights,
                                                                               traj.t)
        out[name] = (task, weights, options, traj, flow)
    return out


def _gap(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value − reference| relative to max |reference| of each network (over t and entries)."""
    dims = tuple(range(1, reference.ndim))
    scale = reference.abs().amax(dim=dims).clamp_min(1e-300)
    return float(((value - reference).abs().amax(dim=dims) / scale).max())


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", available_theories())
def test_every_theory_keeps_its_contract(name, scenario, references):
    task, weights, options, traj, flow = references[scenario]
    theory, stats = _theory(name, options), TaskStats.from_task(task)
    reason = theory.check(stats, weights)
    assert theory.dynamics in ("flow", "gd") and isinstance(theory.exact, bool)
    unmodelled = [o for o in TrainOptions.of(**options).active if o not in theory.modelled]
    if unmodelled:  # one line that names what it cannot predict, and the option's key
        assert reason is not None and "\n" not in reason and f"trainer.{unmodelled[0]}" in reason, reason
    if reason is not None:
        assert isinstance(reason, str) and reason.strip()
        with pytest.raises(TheoryNotApplicable, match="does not apply"):
            theory.predict(stats, weights, traj.t)
        return
    pred = theory.predict(stats, weights, traj.t)
    b, m = weights[0].shape[0], min(task.n_in, task.n_out)
    for field, shape in SHAPES.items():
        value = getattr(pred, field)
        assert tuple(value.shape) == shape(b, task.n_in, task.n_out, m), field
        assert value.dtype == F64 and bool(torch.isfinite(value).all()), field
    assert pred.converges_to_saddle.shape == (b,) and pred.converges_to_saddle.dtype == torch.bool
    torch.testing.assert_close(pred.t, traj.t.to(F64), rtol=0, atol=0)
    ran = _theory(pred.theory, options) if pred.theory in available_theories() else theory
    if not (theory.exact and ran.exact):  # auto is held to the theory it ran (e.g. wide, an approximation)
        return
    if theory.dynamics == "flow":
        gaps = {f: _gap(getattr(pred, f), getattr(flow, f)) for f in COMPARED}
        assert max(gaps.values()) <= EXACT_RTOL, gaps
    else:
        sim = {"loss": traj.scalars["loss"], "product": traj.matrices["product"]}
        gaps = {f: _gap(getattr(pred, f)[:, traj.matrix_index] if f == "product" else getattr(pred, f), v)
                for f, v in sim.items()}
        assert max(gaps.values()) <= GD_RTOL, gaps


def test_the_contract_covers_every_kind_of_theory(references):
    """Each built-in applies somewhere in the scenarios (so no theory passes by refusing everything), each
    training option a theory declares it models is met by it in some scenario, and the comparison can fail: a
    flow theory fed a wrong reference is caught."""
    applied = {name for name in available_theories() for task, weights, options, _, _ in references.values()
               if _theory(name, options).check(TaskStats.from_task(task), weights) is None}
    builtin = {"exact", "aligned", "saxe", "deep_aligned", "ode", "auto", "lazy", "escape", "aligned_gd", "gd_flow",
               "wide", "gram_ode"}
    assert builtin <= applied, builtin - applied
    met = {(name, option) for name in available_theories() for task, weights, options, _, _ in references.values()
           if _theory(name, options).check(TaskStats.from_task(task), weights) is None
           for option in TrainOptions.of(**options).active}
    declared = {(name, option) for name in available_theories() for option in TRAINING_OPTIONS
                if option in _theory(name).modelled}
    assert declared <= met, declared - met
    task, weights, _, traj, flow = references["square"]
    shifted = get_theory("exact").predict(TaskStats.from_task(task), weights, traj.t * 1.001)
    assert _gap(shifted.loss, flow.loss) > EXACT_RTOL
