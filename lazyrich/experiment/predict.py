"""The theory of a batch: which theory describes it (:func:`choose_theory`), its prediction on the trainer's
time grid (:func:`predict_theory`), where it restarts after a phase switch, and the summary columns it adds
(agreement tolerance, saddle verdicts). It runs beside the trainer, from the same initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import init as inits
from lazyrich import metrics
from lazyrich.tasks import Task, TaskSequence
from lazyrich.theory.base import low_precision_reason
from lazyrich.train import TRAINING_OPTIONS, TrainOptions

__all__ = ["add_balance_law", "add_saddle_columns", "batch_theories", "choose_theory", "derived_agreement",
           "predict_theory", "rebalanced"]


def _training(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training options set in ``options`` (layer_lr, output_scale, weight_decay; None ones left out)."""
    return {k: options[k] for k in TRAINING_OPTIONS if (options or {}).get(k) is not None}


def choose_theory(name: str | None, task: Task, weights: list[torch.Tensor],
                  options: Mapping[str, Any] | None = None) -> tuple[Any, list[str]]:
    """(Theory or None, notes): theory ``name`` if it applies to ``weights`` on ``task`` (``auto`` picks the
    most exact that applies; ``none`` skips); the notes say which theory was chosen, or why none was.
    ``options`` (e.g. the trainer's ``lr`` and ``dtype``) go to the theories that take them (aligned_gd, gd_flow,
    escape); the training options (``layer_lr``, ``output_scale``, ``weight_decay``) go to every theory, and one
    that does not model an option set refuses in its check (``auto`` then picks one that does)."""
    if name in (None, "none", "null"):
        return None, ["theory=none"]
    from lazyrich import theory as th
    from lazyrich.theory.registry import filter_options

    stats = th.TaskStats.from_task(task)
    if name == "auto":
        chosen, why = th.select_theory(stats, weights, **_training(options))
        return chosen, [f"theory=auto chose {chosen.name}: {why}"]
    chosen = th.get_theory(name, **filter_options(name, dict(options or {})))
    reason = chosen.check(stats, weights)
    if reason is not None:
        trained_in = (options or {}).get("dtype")  # weights promoted from a lower-precision trainer: say so first
        cause = low_precision_reason([trained_in]) if isinstance(trained_in, torch.dtype) else None
        return None, [f"theory {name} skipped: {cause or ''}{reason}"]
    return chosen, [f"theory={name}"]


def predict_theory(name: str | None, task: Task, weights: list[torch.Tensor],
                   t: torch.Tensor, options: Mapping[str, Any] | None = None) -> tuple[Any, list[str]]:
    """(Prediction or None, notes) of theory ``name`` (``auto`` picks the most exact that applies; ``none``
    skips) for ``weights`` on the grid ``t`` (B, T); the notes say which theory ran, or why none did.
    ``options`` go to the theories that take them (see :func:`choose_theory`)."""
    chosen, notes = choose_theory(name, task, weights, options)
    if chosen is None:
        return None, notes
    from lazyrich import theory as th

    try:
        prediction = chosen.predict(th.TaskStats.from_task(task), weights, t)
    except (ValueError, ArithmeticError, torch.linalg.LinAlgError) as err:  # the simulation is still written
        return None, [*notes, f"theory {chosen.name} skipped: {type(err).__name__}: {err}"]
    return prediction, notes + list(getattr(prediction, "notes", []))


def rebalanced(weights: list[torch.Tensor], layer_lr: Any = None) -> tuple[list[torch.Tensor], str]:
    """The theory's restart point after a phase switch: the simulated product re-factorised at its measured λ̂.

    GD drifts W2ᵀW2 − W1W1ᵀ by O(η·t) (docs/theory.md §8) while the closed form needs it exact; re-factorising keeps
    the network function and λ̂ and moves the Gram blocks by the size of that drift, which the note reports. With
    layer rates ``layer_lr`` ((B, L) or None) the balance is that of V_l = W_l/ρ_l, the weights in the rates'
    units (:class:`lazyrich.train.TrainOptions`).
    """
    if len(weights) != 2:
        return weights, "theory restarts from the simulated weights"
    to_v = TrainOptions.of(layer_lr=layer_lr).to_rate_units(weights[0].shape[0], 2).to(weights[0])
    v = [w * to_v[:, l, None, None] for l, w in enumerate(weights)]
    lam, dev = inits.balance(v)
    scale = sum(torch.linalg.matrix_norm(w) ** 2 for w in v)
    rel = float((dev[:, 0] / scale.clamp_min(1e-300)).max())
    try:
        w1, w2 = inits.refactorise(metrics.product(v), lam[:, 0], n_hidden=weights[0].shape[1], rotate=False)
    except ValueError as err:
        return weights, f"theory restarts from the simulated weights (cannot re-balance them: {err})"
    return [w1 / to_v[:, 0, None, None], w2 / to_v[:, 1, None, None]], (
        f"theory restarts from the simulated W2W1 re-factorised at its measured λ̂ (GD left a relative balance "
        f"deviation of up to {rel:.2g})")


def batch_theories(name: str, activation: str, task: Task | TaskSequence, weights: list[torch.Tensor],
                   training: str = "", options: Mapping[str, Any] | None = None
                   ) -> tuple[tuple[str | None, str | None], list[str]]:
    """((theory of the first phase, theory of later phases), notes) for theory ``name`` of a batch of ``weights``
    (networks with ``activation``) on ``task``: names, None for no theory. ``auto`` is resolved here, once for the
    whole batch, so that every chunk runs the same theory. ``training`` names what the trainer does that no
    theory models (e.g. minibatch SGD; empty for full-batch GD): a theory of gradient descent at the trainer's
    step is then refused, and a flow theory is kept as the noise-free reference, with a note saying so.
    ``options``: the batch's training options (:func:`~lazyrich.experiment.batch.options_of`), which ``auto``
    takes into account."""
    if name in ("none", None, "null"):
        return (None, None), ["theory=none"]
    if activation not in ("none", "linear"):
        return (None, None), ["theory skipped: the theories describe linear networks; model.activation is set."]
    if name != "auto" and training and _dynamics(name) == "gd":
        return (None, None), [f"theory {name} skipped: it predicts full-batch gradient descent step by step, but "
                              f"this run trains by {training}; use theory=exact (or ode) for the full-batch flow "
                              f"as a reference."]
    caveat = [f"the theory predicts full-batch gradient flow, not {training}: its curves are the noise-free "
              f"reference for this run (theory_mismatch in the summary)."] if training else []
    if name != "auto":
        return (name, name), caveat
    sequence = isinstance(task, TaskSequence)
    chosen, notes = choose_theory(name, list(task)[0].task if sequence else task, weights, options)
    return (chosen.name, name), [("phase 0: " if sequence else "") + n for n in notes] + caveat


def _dynamics(name: str) -> str:
    """What theory ``name`` declares it predicts (:attr:`lazyrich.theory.base.Theory.dynamics`)."""
    from lazyrich.theory import get_theory

    return get_theory(name).dynamics


def derived_agreement(summary: pd.DataFrame, prediction: Any, task: Task, lr: np.ndarray, dtype: torch.dtype, *,
                      two_layer: bool, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """theory_rtol: the GD–flow tolerance derived from the leading O(lr) correction (lazyrich.theory.gd_flow) for
    two-layer flow theories, rounding only for the GD theories; theory_agrees is then judged against it. With a
    held-out set, the same for the test loss (theory_test_rtol, theory_test_agrees). ``options``: the batch's
    training options, which the derived tolerance includes.

    A theory that states its own error (``Prediction.expected_error``, theory ``wide``: ε on the product) adds
    ``theory_expected_err`` = ε beside it, and its loss-curve tolerances grow by 2ε' + ε'² with ε' = 2ε: a product
    off by ε' moves ½‖A − Σyx‖² by at most ‖A − Σyx‖·ε' + ½ε'², relative to its largest value; ε' is twice the
    typical law, beyond the worst calibrated case (1.6×)."""
    if prediction is None or "theory_max_rel_err" not in summary or not two_layer:
        return summary
    from lazyrich.theory import TaskStats
    from lazyrich.theory.gd_flow import DTYPE_FLOOR, gd_flow_rtol

    eps = torch.finfo(dtype).eps
    expected = getattr(prediction, "expected_error", None)
    flow = prediction.theory in ("exact", "aligned", "ode", "gram_ode") or expected is not None
    if prediction.theory != "aligned_gd" and not flow:
        return summary
    summary = summary.copy()
    train_options = TrainOptions.of(**_training(options))
    widen = 0.0 if expected is None else 4 * expected.cpu().numpy() + (2 * expected.cpu().numpy()) ** 2
    for curve, prefix in (("loss", "theory"), ("test_loss", "theory_test")):
        if f"{prefix}_max_rel_err" not in summary:
            continue
        rtol = (np.full(len(summary), DTYPE_FLOOR * eps) if prediction.theory == "aligned_gd" else
                gd_flow_rtol(prediction, TaskStats.from_task(task), torch.tensor(np.array(lr)), dtype, curve=curve,
                             options=train_options, balanced=prediction.theory == "exact").cpu().numpy())
        summary[f"{prefix}_rtol"] = rtol + widen
        summary[f"{prefix}_agrees"] = summary[f"{prefix}_max_rel_err"].to_numpy() <= rtol + widen
    if expected is not None:
        summary["theory_expected_err"] = expected.cpu().numpy()
    return summary


def add_balance_law(summary: pd.DataFrame, trajectory: Any, init64: list[torch.Tensor],
                    options: Mapping[str, Any]) -> pd.DataFrame:
    """``lam_law_gap``: how far the measured λ̂(t) of each pair strays from λ̂(0)·e^{−2γmt}, the law of gradient
    flow with weight decay γ and equal layer rates m (docs/theory.md §11), relative to the size of the terms it is
    made of, (‖V_{l+1}‖² + ‖V_l‖²)/n_l at init (:func:`lazyrich.metrics.balance_law_gap`); NaN for networks whose
    layer rates differ (no law). Under SGD (γ = 0 included) it measures the drift away from that law."""
    batch, n_layers = init64[0].shape[0], len(init64)
    train_options = TrainOptions.of(**_training(options))
    rates = train_options.rates(batch, n_layers)
    to_v = train_options.to_rate_units(batch, n_layers).to(init64[0])
    v = [w * to_v[:, l, None, None] for l, w in enumerate(init64)]
    gaps = []
    for l in range(n_layers - 1):
        size = (torch.linalg.matrix_norm(v[l]) ** 2 + torch.linalg.matrix_norm(v[l + 1]) ** 2) / v[l].shape[-2]
        gaps.append(metrics.balance_law_gap(trajectory.t, trajectory.scalars[f"lam_hat_{l + 1}"].cpu(),
                                            train_options.decay(batch) * rates[:, 0], size.cpu()))
    gap = torch.stack(gaps, -1).amax(-1)
    uniform = (rates == rates[:, :1]).all(-1)
    summary = summary.copy()
    summary["lam_law_gap"] = torch.where(uniform, gap, torch.full_like(gap, float("nan"))).numpy()
    return summary


def add_saddle_columns(summary: pd.DataFrame, prediction: Any) -> pd.DataFrame:
    """The theory's verdict per network: does the flow converge to a saddle, and to what loss as t → ∞."""
    if prediction is None or getattr(prediction, "converges_to_saddle", None) is None:
        return summary
    summary = summary.copy()
    summary["theory_saddle"] = prediction.converges_to_saddle.cpu().numpy().astype(bool)
    summary["theory_limit_loss"] = prediction.final_loss.cpu().numpy()
    if getattr(prediction, "ode_fallback", None) is not None:  # the closed form handed these to the ode theory
        summary["theory_ode_fallback"] = prediction.ode_fallback.cpu().numpy().astype(bool)
    return summary
