"""Task transforms and sequence builders: reversal, transfer, continual streams (docs/theory.md §10).

Transforms that prescribe a new Σyx need whitened inputs (Σxx = c·I): the new targets are
Y' = Y + X·(Σ' − Σyx)ᵀ/c, so that Y'ᵀX/P = Σ' exactly while the part of Y outside the span of X is kept.
The registered builders (``reversal``, ``transfer_rotated``, ``transfer_rescaled``, ``continual_stream``)
take a base task name and parameters so the CLI can pick them: ``task=reversal task.base=hierarchy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lazyrich.device import DTYPE
from lazyrich.tasks.base import Phase, Task, TaskError, TaskSequence
from lazyrich.tasks.generators import default_spectrum, generator, random_orthogonal, spectrum_task
from lazyrich.tasks.registry import make, register


def retarget(task: Task, sigma_yx: torch.Tensor, name: str, **meta: Any) -> Task:
    """The task with targets changed so that its Σyx equals ``sigma_yx`` (No, Ni); needs Σxx = c·I."""
    c = task.whitening_scale
    if c is None:
        raise TaskError(
            f"task {task.name!r}: prescribing a new Σyx needs whitened inputs (Σxx = c·I); "
            f"whiten it first, e.g. task.whiten('pca')."
        )
    Y = task.Y + task.X @ (sigma_yx.to(task.X) - task.sigma_yx).T / c
    return task.replace(Y=Y, name=name, meta=dict(task.meta, **meta))


def _base(base: str, base_params: Mapping[str, Any] | None) -> Task:
    task = make(base, **dict(base_params or {}))
    if not isinstance(task, Task):
        raise TaskError(f"base task {base!r} is a TaskSequence; a transform needs a single Task as its base.")
    return task


def _index(task: Task, key: int | str, names: Sequence[str] | None, n: int, field: str) -> int:
    if isinstance(key, str):
        if names is None or key not in names:
            raise TaskError(f"task {task.name!r}: no {field} named {key!r}; valid names: {names}.")
        return list(names).index(key)
    if int(key) != key or not -n <= key < n:
        raise TaskError(f"task {task.name!r}: {field} index {key!r} is out of range for {n} {field}s.")
    return int(key) % n


def _two_phases(first: Task, second: Task, t_budget: float | None, labels: tuple[str, str],
                suffix: str) -> TaskSequence:
    """``first`` then ``second``, each for ``t_budget``, labelled ``labels``; named ``<first's name>-<suffix>``."""
    phases = [Phase(first, t_budget, labels[0]), Phase(second, t_budget, labels[1])]
    return TaskSequence(phases, name=f"{first.name}-{suffix}")


# -- reversal --------------------------------------------------------------------------------------------
def reverse(task: Task) -> Task:
    """Full reversal: Y → −Y, hence Σyx → −Σyx (any inputs)."""
    return task.replace(Y=-task.Y, name=f"{task.name}-reversed", meta=dict(task.meta, reversal="full"))


def flip_modes(task: Task, modes: Sequence[int]) -> Task:
    """Flip the sign of the chosen singular modes (indices into the descending SVD): Σ' = U diag(±s) Vᵀ.

    Needs Σxx = c·I. Within a group of tied singular values the modes are not unique, so flip whole groups.
    """
    U, S, V = task.svd
    modes = sorted({_index(task, int(a), None, S.shape[0], "mode") for a in modes})
    sign = torch.ones_like(S)
    sign[modes] = -1.0
    m = S.shape[0]
    sigma = U[:, :m] @ torch.diag(sign * S) @ V[:, :m].T
    return retarget(
        task,
        sigma,
        f"{task.name}-flip" + "-".join(map(str, modes)),
        reversal="modes",
        flipped_modes=tuple(modes),
    )


def swap_outputs(task: Task, i: int | str, j: int | str) -> Task:
    """Swap output columns i and j of Y (feature names move with the values)."""
    i, j = (_index(task, k, task.feature_names, task.n_out, "output") for k in (i, j))
    perm = list(range(task.n_out))
    perm[i], perm[j] = j, i
    names = None if task.feature_names is None else [task.feature_names[p] for p in perm]
    return task.replace(
        Y=task.Y[:, perm],
        feature_names=names,
        name=f"{task.name}-swap-out{i}-{j}",
        meta=dict(task.meta, reversal="outputs", swapped=(i, j)),
    )


def swap_items(task: Task, i: int | str, j: int | str) -> Task:
    """Swap the targets of items i and j (rows of Y); X and item names stay, so item i gets j's features."""
    i, j = (_index(task, k, task.item_names, task.P, "item") for k in (i, j))
    perm = list(range(task.P))
    perm[i], perm[j] = j, i
    return task.replace(
        Y=task.Y[perm],
        name=f"{task.name}-swap-items{i}-{j}",
        meta=dict(task.meta, reversal="items", swapped=(i, j)),
    )


def reversal_sequence(
    task: Task,
    kind: str = "full",
    modes: Sequence[int] | None = None,
    i: int | str = 0,
    j: int | str = 1,
    t_budget: float | None = None,
) -> TaskSequence:
    """[task, reversed task]. kind: ``full`` (reverse), ``modes`` (flip_modes, default all nonzero modes),
    ``outputs`` (swap_outputs i, j) or ``items`` (swap_items i, j)."""
    if kind == "full":
        rev = reverse(task)
    elif kind == "modes":
        S = task.svd[1]
        rev = flip_modes(task, range(int((S > 0).sum())) if modes is None else list(modes))
    elif kind == "outputs":
        rev = swap_outputs(task, i, j)
    elif kind == "items":
        rev = swap_items(task, i, j)
    else:
        raise TaskError(
            f"task {task.name!r}: unknown reversal kind {kind!r}; use 'full', 'modes', 'outputs' or 'items'."
        )
    return _two_phases(task, rev, t_budget, ("learn", "reversal"), "reversal")


@register()
def reversal(
    base: str = "hierarchy",
    base_params: Mapping[str, Any] | None = None,
    kind: str = "full",
    modes: Sequence[int] | None = None,
    i: int = 0,
    j: int = 1,
    t_budget: float | None = None,
) -> TaskSequence:
    """Reversal learning: learn the base task, then its reversal (kind: full | modes | outputs | items)."""
    return reversal_sequence(_base(base, base_params), kind, modes, i, j, t_budget)


# -- transfer --------------------------------------------------------------------------------------------
def _plane_rotation(n: int, angle: float) -> torch.Tensor:
    """(n, n) rotation by ``angle`` in the planes (e_α, e_{α+h}), h = ⌊n/2⌋, α < h."""
    G = torch.eye(n, dtype=DTYPE)
    h = n // 2
    a = torch.arange(h)
    G[a, a] = G[a + h, a + h] = math.cos(angle)
    G[a + h, a] = math.sin(angle)
    G[a, a + h] = -math.sin(angle)
    return G


def rotated_pair(
    task_or_params: Task | Mapping[str, Any], angle: float, side: str = "input", t_budget: float | None = None
) -> TaskSequence:
    """[source, target] with the same singular values and singular vectors rotated by ``angle`` (radians).

    Rotated: on the input side, v'_α = cos θ·v_α + sin θ·v_{α+h} and v'_{α+h} = cos θ·v_{α+h} − sin θ·v_α
    for α < h = ⌊Ni/2⌋, with v the source's right singular vectors in descending order. The target's
    top-h input subspace then makes principal angles all equal to θ with the source's, and each of its top-h
    singular vectors makes angle θ with its source counterpart. ``output`` does the same to the left singular
    vectors u (h = ⌊No/2⌋); ``both`` rotates both sides by θ. θ ∈ [0, π/2]. Needs whitened inputs.
    task_or_params: a Task, or a mapping of parameters for ``make`` whose optional key ``name`` picks the task
    (default ``random_regression``).
    """
    if isinstance(task_or_params, Task):
        task = task_or_params
    else:
        params = dict(task_or_params)
        task = _base(params.pop("name", "random_regression"), params)
    if not 0.0 <= angle <= math.pi / 2:
        raise TaskError(
            f"task {task.name!r}: angle={angle} must lie in [0, π/2] radians (a principal angle)."
        )
    if side not in ("input", "output", "both"):
        raise TaskError(f"task {task.name!r}: side={side!r} must be 'input', 'output' or 'both'.")
    U, S, V = task.svd
    if side in ("input", "both"):
        V = V @ _plane_rotation(task.n_in, angle)
    if side in ("output", "both"):
        U = U @ _plane_rotation(task.n_out, angle)
    m = S.shape[0]
    target = retarget(
        task,
        U[:, :m] @ torch.diag(S) @ V[:, :m].T,
        f"{task.name}-rotated",
        transfer="rotated",
        angle=angle,
        side=side,
    )
    return _two_phases(task, target, t_budget, ("source", "target"), "rotated")


def rescaled_pair(
    task: Task,
    singular_values: Sequence[float] | None = None,
    scale: float | Sequence[float] | None = None,
    t_budget: float | None = None,
) -> TaskSequence:
    """[source, target] with the same singular vectors and new singular values: either ``singular_values``
    (m values, fewer padded with zeros) or the source's times ``scale`` (a number or m numbers).
    Needs whitened inputs."""
    U, S, V = task.svd
    m = S.shape[0]
    if (singular_values is None) == (scale is None):
        raise TaskError(f"task {task.name!r}: rescaled_pair needs exactly one of singular_values or scale.")
    if singular_values is not None:
        s_new = torch.as_tensor(list(singular_values), dtype=DTYPE)
        if s_new.numel() > m:
            raise TaskError(
                f"task {task.name!r}: {s_new.numel()} singular values given, the task has m = {m}."
            )
        s_new = torch.cat([s_new, torch.zeros(m - s_new.numel(), dtype=DTYPE)])
    else:
        factor = torch.as_tensor(scale if isinstance(scale, int | float) else list(scale), dtype=DTYPE)
        if factor.numel() not in (1, m):
            raise TaskError(f"task {task.name!r}: scale needs 1 or m = {m} values, got {factor.numel()}.")
        s_new = S.cpu() * factor
    sigma = U[:, :m] @ torch.diag(s_new.to(S)) @ V[:, :m].T
    target = retarget(task, sigma, f"{task.name}-rescaled", transfer="rescaled", singular_values=s_new)
    return _two_phases(task, target, t_budget, ("source", "target"), "rescaled")


@register()
def transfer_rotated(
    base: str = "random_regression",
    base_params: Mapping[str, Any] | None = None,
    angle: float = 0.5,
    side: str = "input",
    t_budget: float | None = None,
) -> TaskSequence:
    """Transfer between a base task and a copy with singular vectors rotated by ``angle`` radians."""
    return rotated_pair(_base(base, base_params), angle, side, t_budget)


@register()
def transfer_rescaled(
    base: str = "random_regression",
    base_params: Mapping[str, Any] | None = None,
    scale: float = 2.0,
    t_budget: float | None = None,
) -> TaskSequence:
    """Transfer between a base task and a copy with the same singular vectors, singular values × ``scale``."""
    return rescaled_pair(_base(base, base_params), scale=scale, t_budget=t_budget)


def new_feature(task: Task, item: int | str, value: float = 1.0) -> Task:
    """Property generalisation (Saxe et al. 2019): a new output feature trained on one item only.

    Returns a 1-sample task X = task.X[item] (1, Ni), Y = [[value]] (1, 1). Protocol: freeze W1, add a readout
    row w (1, Nh) from zero and train it on this task. Gradient flow gives w = value·(W1 x_i)ᵀ/‖W1 x_i‖², so
    the new feature's value on item j is value·(x_iᵀ W1ᵀW1 x_j)/(x_iᵀ W1ᵀW1 x_i); with one-hot items X = √P·I
    that is value·(W1ᵀW1)_ij/(W1ᵀW1)_ii. meta['eval_X'] holds all items for evaluating it.
    """
    i = _index(task, item, task.item_names, task.P, "item")
    label = task.item_names[i] if task.item_names else str(i)
    return Task(
        task.X[i : i + 1],
        torch.full((1, 1), float(value), dtype=DTYPE, device=task.device),
        name=f"{task.name}-new-feature@{label}",
        item_names=[label],
        feature_names=["new_feature"],
        meta=dict(base=task.name, item=i, value=value, eval_X=task.X, eval_item_names=task.item_names),
    )


def new_item(task: Task, feature: int | str, value: float = 1.0) -> Task:
    """New item (the dual of ``new_feature``, Saxe et al. 2019): a new item known to have one feature.

    Returns X = [[1]], Y = [[value]] (1 × 1), with meta['output_row'] = the feature index f. Protocol: freeze
    W2, add an input column w (Nh,) for the new one-hot item from zero, and train ŷ_f = W2[f]·w on this task.
    Gradient flow gives w = value·W2[f]ᵀ/‖W2[f]‖², so the new item's predicted features are
    value·(W2W2ᵀ)[:, f]/(W2W2ᵀ)[f, f].
    """
    f = _index(task, feature, task.feature_names, task.n_out, "output")
    label = task.feature_names[f] if task.feature_names else str(f)
    one = torch.ones((1, 1), dtype=DTYPE, device=task.device)
    return Task(
        one,
        value * one,
        name=f"{task.name}-new-item@{label}",
        item_names=["new_item"],
        feature_names=[label],
        meta=dict(base=task.name, output_row=f, value=value),
    )


# -- continual -------------------------------------------------------------------------------------------
@register()
def continual_stream(
    K: int = 3,
    n_in: int = 8,
    n_out: int = 8,
    similarity: float | None = None,
    singular_values: Sequence[float] | None = None,
    n_samples: int | None = None,
    t_budget: float | None = None,
    seed: int = 0,
) -> TaskSequence:
    """K whitened tasks on shared inputs X (as ``random_regression``), learned one after another.

    similarity=None: independent tasks Σ_k = U_k diag(s) V_kᵀ with Haar-random U_k, V_k and one spectrum s
    (default linspace(2, 0.5, m)). similarity=ρ ∈ [−1, 1]: a chain Σ_{k+1} = ρ·Σ_k + √(1−ρ²)·‖Σ_0‖·N_k with
    N_k a random unit-norm matrix orthogonal (Frobenius) to Σ_0, N_0, …, N_{k−1}. Then every ‖Σ_k‖ = ‖Σ_0‖ and
    cos(Σ_i, Σ_j) = ⟨Σ_i, Σ_j⟩/(‖Σ_i‖‖Σ_j‖) = ρ^|i−j| exactly; the spectra of later tasks differ from Σ_0's.
    Theory (§6): loss on task i after converging on task k is ½‖Σ_k − Σ_i‖² = ‖Σ_0‖²(1 − ρ^|i−k|) + const.
    """
    for field, v in dict(K=K, n_in=n_in, n_out=n_out).items():
        if int(v) != v or v < 1:
            raise TaskError(f"task 'continual_stream': {field}={v!r} must be a positive integer.")
    m = min(n_in, n_out)
    s = (
        default_spectrum(m)
        if singular_values is None
        else torch.as_tensor(list(singular_values), dtype=DTYPE)
    )
    if s.numel() != m or bool((s < 0).any()):
        raise TaskError(f"task 'continual_stream': singular_values needs m = {m} values ≥ 0.")
    gen = generator(seed)

    def random_sigma() -> torch.Tensor:
        U, V = random_orthogonal(n_out, gen)[:, :m], random_orthogonal(n_in, gen)[:, :m]
        return U @ torch.diag(s) @ V.T

    sigmas = [random_sigma()]
    if similarity is None:
        sigmas += [random_sigma() for _ in range(K - 1)]
    else:
        rho = float(similarity)
        if not -1.0 <= rho <= 1.0:
            raise TaskError(
                f"task 'continual_stream': similarity={similarity} must lie in [−1, 1] (a cosine)."
            )
        if K > n_in * n_out:
            raise TaskError(
                f"task 'continual_stream': a chain of K={K} tasks needs K ≤ n_in·n_out = "
                f"{n_in * n_out} orthogonal directions; lower K or enlarge the task."
            )
        norm = torch.linalg.norm(sigmas[0])
        basis = [sigmas[0].flatten() / norm]
        for _ in range(K - 1):
            n = torch.randn(n_out * n_in, generator=gen, dtype=DTYPE)
            for _ in range(2):  # Gram–Schmidt twice, for orthogonality to round-off
                for q in basis:
                    n = n - (q @ n) * q
            n = n / torch.linalg.norm(n)
            basis.append(n)
            sigmas.append(
                rho * sigmas[-1] + math.sqrt(max(0.0, 1.0 - rho * rho)) * norm * n.view(n_out, n_in)
            )
    X_gen_state = gen.get_state()
    tasks = []
    for k, sigma in enumerate(sigmas):
        gen.set_state(X_gen_state)  # every task gets the same inputs X
        tasks.append(spectrum_task(sigma, n_samples, gen, f"task{k}", dict(similarity=similarity, index=k)))
    return TaskSequence([Phase(t, t_budget, t.name) for t in tasks], name="continual_stream")
