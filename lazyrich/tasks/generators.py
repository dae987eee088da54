"""Synthetic task generators: the hierarchical semantic task, random regression, student–teacher.

All are seedable (``seed``), return float64 Tasks and are registered under their function names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from lazyrich.device import DTYPE
from lazyrich.tasks.base import Task, TaskError
from lazyrich.tasks.registry import register

MAX_ITEMS = 1 << 14
"""Largest hierarchy (b^depth items) we build: X is P × P, so this is already 2 GiB."""


def generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with ``seed`` (all sampling happens on CPU, so results are portable)."""
    return torch.Generator().manual_seed(int(seed))


def random_orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal (n, n) matrix: QR of a Gaussian with the signs of diag(R) fixed."""
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    return Q * torch.sign(torch.diagonal(R)).where(torch.diagonal(R) != 0, torch.ones((), dtype=DTYPE))


def whitened_inputs(n_in: int, n_samples: int | None, gen: torch.Generator) -> torch.Tensor:
    """Inputs X with XᵀX/P = I to round-off: √P·I (P = n_in) when n_samples is None, else √P·Q with
    Q (P, n_in) random orthonormal columns (needs n_samples ≥ n_in)."""
    if n_samples is None:
        return math.sqrt(n_in) * torch.eye(n_in, dtype=DTYPE)
    P = int(n_samples)
    if P < n_in:
        raise TaskError(
            f"n_samples={P} < n_in={n_in}: whitened inputs (Σxx = I) need at least n_in samples; "
            f"raise n_samples or pass n_samples=None for one-hot inputs."
        )
    Q, _ = torch.linalg.qr(torch.randn(P, n_in, generator=gen, dtype=DTYPE))
    return math.sqrt(P) * Q


def _check_positive_int(task: str, **values: Any) -> None:
    for field, v in values.items():
        if int(v) != v or v < 1:
            raise TaskError(f"task {task!r}: {field}={v!r} must be a positive integer.")


def _helmert(b: int, child: torch.Tensor, j: int) -> torch.Tensor:
    """Normalised Helmert contrast j (1 ≤ j < b) over b children: +1 on children < j, −j on child j, 0 after,
    scaled by √(b/(j(j+1))) so every contrast has the same norm (b)."""
    h = torch.where(child < j, 1.0, torch.where(child == j, -float(j), 0.0)).to(DTYPE)
    return h * math.sqrt(b / (j * (j + 1)))


def _hierarchy_size(depth: int, branching: int, noise: float) -> tuple[int, int, int]:
    """Checked (depth, branching, P = branching**depth) of a hierarchy task; refuses a bad size or noise."""
    _check_positive_int("hierarchy", depth=depth)
    if int(branching) != branching or branching < 2:
        raise TaskError(f"task 'hierarchy': branching={branching!r} must be an integer ≥ 2.")
    depth, b = int(depth), int(branching)
    P = b**depth
    if P > MAX_ITEMS:
        raise TaskError(
            f"task 'hierarchy': branching**depth = {P} items is more than {MAX_ITEMS}; "
            f"lower depth or branching."
        )
    if noise < 0:
        raise TaskError(f"task 'hierarchy': noise={noise} must be ≥ 0 (it is a standard deviation).")
    return depth, b, P


def _node_id(b: int, level: int, q: int) -> int:
    """Breadth-first id of node q at ``level`` of a b-ary tree (the root is 0)."""
    return (b**level - 1) // (b - 1) + q


_Features = tuple[list[torch.Tensor], list[str], list[int]]
"""Hierarchy features as (columns (P,) each, names, level of each)."""


def _signed_features(depth: int, b: int) -> _Features:
    """The root feature, then b−1 Helmert contrasts between the child subtrees of every internal node."""
    leaves = torch.arange(b**depth)
    columns, names, levels = [torch.ones(b**depth, dtype=DTYPE)], ["root"], [0]
    for level in range(depth):
        span = b ** (depth - level)  # leaves under a node at this level
        for q in range(b**level):
            inside = leaves // span == q
            child = (leaves // (span // b)) % b
            for j in range(1, b):
                columns.append(torch.where(inside, _helmert(b, child, j), 0.0))
                names.append(f"n{_node_id(b, level, q)}" + (f".{j}" if b > 2 else ""))
                levels.append(level)
    return columns, names, levels


def _membership_features(depth: int, b: int) -> _Features:
    """One 0/1 feature per node of the tree (root, internal nodes, leaves): 1 on the leaves below it."""
    leaves = torch.arange(b**depth)
    columns: list[torch.Tensor] = []
    names: list[str] = []
    levels: list[int] = []
    for level in range(depth + 1):
        span = b ** (depth - level)
        for q in range(b**level):
            columns.append((leaves // span == q).to(DTYPE))
            names.append("root" if level == 0 else f"leaf{q}" if level == depth else f"n{_node_id(b, level, q)}")
            levels.append(level)
    return columns, names, levels


def _level_scales(levels: Sequence[int], eps: float) -> torch.Tensor:
    """Scale 1 + ε·j of each feature, j its position within its level group; refused when one is ≤ 0."""
    count: dict[int, int] = {}
    j_in_level = []
    for lv in levels:
        j_in_level.append(count.get(lv, 0))
        count[lv] = j_in_level[-1] + 1
    scale = torch.tensor([1.0 + eps * j for j in j_in_level], dtype=DTYPE)
    if bool((scale <= 0).any()):
        raise TaskError(
            f"task 'hierarchy': break_symmetry={eps} makes a feature scale 1 + ε·j "
            f"≤ 0 (j up to {max(j_in_level)}); use |ε| < {1 / max(j_in_level):.3g}."
        )
    return scale


@register()
def hierarchy(
    depth: int = 3,
    branching: int = 2,
    encoding: str = "signed",
    break_symmetry: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> Task:
    """Hierarchical semantic task: items are the P = branching**depth leaves of a tree; X = √P·I (whitened).

    encoding:
      ``signed`` (docs/theory.md §10): a ``root`` feature (all +1) and, per internal node, contrasts between
        its child subtrees (0 outside the node). For binary trees that is +1 on the left subtree and −1 on
        the right. For b > 2 a node gets b−1 normalised Helmert contrasts (contrast j: +1 on children < j,
        −j on child j, scaled by √(b/(j(j+1)))). Features are orthogonal, so Σyx has singular values
        1 (root), then b^(−ℓ/2) with multiplicity (b−1)·b^ℓ for each level ℓ = 0..depth−1: one tied group
        per level. P × P features.
      ``membership`` (Saxe et al. 2019): one 0/1 feature per node (root, internal nodes, leaves). Singular
        values √(Σ_{k=0..depth} b^(depth−k)/P) (once) and √(Σ_{k=ℓ+1..depth} b^(depth−k)/P) with multiplicity
        (b−1)·b^ℓ for ℓ = 0..depth−1.
    break_symmetry ε: the j-th feature of each level group is scaled by (1 + ε·j) (signed: level 0 holds the
      root feature and the root's contrasts), a deterministic split of the tied singular values.
    noise: standard deviation of i.i.d. Gaussian noise added to every feature value.
    meta['feature_level'] gives each feature's level group.
    """
    depth, b, P = _hierarchy_size(depth, branching, noise)
    if encoding not in ("signed", "membership"):
        raise TaskError(f"task 'hierarchy': unknown encoding {encoding!r}; use 'signed' or 'membership'.")
    columns, names, levels = (_signed_features if encoding == "signed" else _membership_features)(depth, b)
    Y = torch.stack(columns, dim=1)
    if break_symmetry:
        Y = Y * _level_scales(levels, break_symmetry)
    if noise:
        Y = Y + noise * torch.randn(Y.shape, generator=generator(seed), dtype=DTYPE)
    X = math.sqrt(P) * torch.eye(P, dtype=DTYPE)
    meta = dict(
        depth=depth,
        branching=b,
        encoding=encoding,
        break_symmetry=break_symmetry,
        noise=noise,
        seed=seed,
        feature_level=tuple(levels),
    )
    return Task(
        X, Y, name="hierarchy", item_names=[f"leaf{i}" for i in range(P)], feature_names=names, meta=meta
    )


def default_spectrum(m: int) -> torch.Tensor:
    """The default singular values of random tasks: m values linearly spaced from 2 down to 0.5."""
    return torch.linspace(2.0, 0.5, m, dtype=DTYPE) if m > 1 else torch.tensor([2.0], dtype=DTYPE)


def _orthonormal(M: Any, rows: int, cols: int, task: str, field: str) -> torch.Tensor:
    M = torch.as_tensor(M, dtype=DTYPE).cpu()
    if M.ndim != 2 or M.shape[0] != rows or M.shape[1] < cols:
        raise TaskError(
            f"task {task!r}: {field} has shape {tuple(M.shape)}; it needs shape ({rows}, ≥{cols})."
        )
    M = M[:, :cols]
    # 1e-8: user-supplied bases may come from a float64 decomposition; anything looser is not orthonormal.
    if float((M.T @ M - torch.eye(cols, dtype=DTYPE)).abs().max()) > 1e-8:
        raise TaskError(
            f"task {task!r}: the columns of {field} are not orthonormal (‖{field}ᵀ{field} − I‖ > "
            f"1e-8); orthonormalise it, e.g. with torch.linalg.qr."
        )
    return M


def spectrum_task(
    sigma: torch.Tensor, n_samples: int | None, gen: torch.Generator, name: str, meta: dict[str, Any],
    n_test: int = 0,
) -> Task:
    """A whitened task with Σyx = sigma (No, Ni): X from ``whitened_inputs`` and Y = X·sigmaᵀ; ``n_test`` > 0 adds
    that many held-out rows x* ~ N(0, I), y* = sigma·x* (drawn after the training data, which they leave as is)."""
    X = whitened_inputs(sigma.shape[1], n_samples, gen)
    heldout = None
    if n_test:
        x_test = torch.randn(_test_size("n_test", n_test, name), sigma.shape[1], generator=gen, dtype=DTYPE)
        heldout = (x_test, x_test @ sigma.T)
    return Task(X, X @ sigma.T, name=name, meta=dict(meta, sigma_yx=sigma), heldout=heldout)


def _test_size(field: str, value: Any, task: str) -> int:
    """A checked held-out size: a positive integer."""
    if int(value) != value or value < 1:
        raise TaskError(f"task {task!r}: {field}={value!r} must be a positive integer (held-out rows), or 0 for none.")
    return int(value)


@register()
def random_regression(
    n_in: int = 8,
    n_out: int = 8,
    singular_values: Sequence[float] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    U: Any = None,
    V: Any = None,
    n_test: int = 0,
) -> Task:
    """Whitened regression with a prescribed spectrum: Σyx = U diag(s) Vᵀ exactly, Y = X·Σyxᵀ (noise-free).

    singular_values: m = min(n_in, n_out) values ≥ 0 (fewer are padded with zeros);
      default linspace(2, 0.5, m).
    n_samples: None gives one-hot items X = √P·I with P = n_in; an integer ≥ n_in gives P random inputs with
      XᵀX/P = I exactly. U (n_out, ≥m) and V (n_in, ≥m): orthonormal singular vectors, Haar-random by default.
    n_test: held-out rows x* ~ N(0, I), y* = Σyx·x* (0: none).
    meta holds U, V (first m columns), singular_values and sigma_yx.
    """
    _check_positive_int("random_regression", n_in=n_in, n_out=n_out)
    m = min(n_in, n_out)
    if singular_values is None:
        s = default_spectrum(m)
    else:
        s = torch.as_tensor(list(singular_values), dtype=DTYPE).flatten()
        if s.numel() > m or bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
            raise TaskError(
                f"task 'random_regression': singular_values must be at most m = min(n_in, n_out) "
                f"= {m} finite values ≥ 0, got {list(singular_values)}."
            )
        s = torch.cat([s, torch.zeros(m - s.numel(), dtype=DTYPE)])
    gen = generator(seed)
    U_ = (
        random_orthogonal(n_out, gen)[:, :m]
        if U is None
        else _orthonormal(U, n_out, m, "random_regression", "U")
    )
    V_ = (
        random_orthogonal(n_in, gen)[:, :m]
        if V is None
        else _orthonormal(V, n_in, m, "random_regression", "V")
    )
    sigma = U_ @ torch.diag(s) @ V_.T
    meta = dict(U=U_, V=V_, singular_values=s, seed=seed)
    return spectrum_task(sigma, n_samples, gen, "random_regression", meta, n_test)


@register()
def student_teacher(
    n_in: int = 8,
    n_hidden: int = 4,
    n_out: int = 8,
    n_samples: int = 64,
    noise: float = 0.0,
    teacher_scale: float = 1.0,
    whiten_inputs: bool = True,
    seed: int = 0,
    n_test: int = 0,
) -> Task:
    """Student–teacher regression: Y = X·W_tᵀ + noise·ε with a rank-≤n_hidden linear teacher W_t (No, Ni).

    W_t = teacher_scale · W2 W1, W1 ~ N(0, 1/n_in) (n_hidden, n_in), W2 ~ N(0, 1/n_hidden) (n_out, n_hidden).
    X: n_samples Gaussian inputs (P, n_in), ZCA-whitened to XᵀX/P = I exactly when ``whiten_inputs`` (needs
    n_samples ≥ n_in). ε ~ N(0, 1) i.i.d. meta['teacher'] holds W_t, meta['teacher_layers'] (W1, W2).
    n_test: held-out rows drawn like the training ones (Gaussian inputs through the same whitening map, the same
    teacher and noise), after them, so the training data do not depend on it (0: none).
    """
    _check_positive_int("student_teacher", n_in=n_in, n_hidden=n_hidden, n_out=n_out, n_samples=n_samples)
    if noise < 0:
        raise TaskError(f"task 'student_teacher': noise={noise} must be ≥ 0 (it is a standard deviation).")
    gen = generator(seed)
    W1 = torch.randn(n_hidden, n_in, generator=gen, dtype=DTYPE) / math.sqrt(n_in)
    W2 = torch.randn(n_out, n_hidden, generator=gen, dtype=DTYPE) / math.sqrt(n_hidden)
    W_t = teacher_scale * W2 @ W1
    X = torch.randn(n_samples, n_in, generator=gen, dtype=DTYPE)
    whitening = torch.eye(n_in, dtype=DTYPE)
    if whiten_inputs:
        if n_samples < n_in:
            raise TaskError(
                f"task 'student_teacher': whiten_inputs=True needs n_samples ≥ n_in, got n_samples="
                f"{n_samples} < n_in={n_in}; raise n_samples or pass whiten_inputs=False."
            )
        A, d, Bh = torch.linalg.svd(X, full_matrices=False)
        whitening = Bh.T @ torch.diag(math.sqrt(n_samples) / d) @ Bh  # the map X ↦ √P·A·Bh, for held-out rows
        X = math.sqrt(n_samples) * A @ Bh
    Y = X @ W_t.T
    if noise:
        Y = Y + noise * torch.randn(Y.shape, generator=gen, dtype=DTYPE)
    heldout = None
    if n_test:
        x_test = torch.randn(_test_size("n_test", n_test, "student_teacher"), n_in, generator=gen,
                             dtype=DTYPE) @ whitening
        y_test = x_test @ W_t.T
        if noise:
            y_test = y_test + noise * torch.randn(y_test.shape, generator=gen, dtype=DTYPE)
        heldout = (x_test, y_test)
    meta = dict(teacher=W_t, teacher_layers=(W1, W2), noise=noise, seed=seed)
    return Task(X, Y, name="student_teacher", meta=meta, heldout=heldout)
