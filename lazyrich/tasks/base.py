"""Task and TaskSequence: what a network learns, validated once where the data enters.

Conventions (docs/theory.md §1): X is (P, Ni) and Y is (P, No), one sample per row, float64.
Σxx = XᵀX/P (Ni, Ni), Σyx = YᵀX/P (No, Ni), Σyy = YᵀY/P (No, No); loss = 1/(2P)‖ŷ − Y‖²_F.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from lazyrich.device import DTYPE

WHITENING_RTOL = 1e-10
"""Relative tolerance for calling Σxx = c·I: float64 round-off of XᵀX/P stays far below it for any sane P."""


class TaskError(ValueError):
    """A task could not be built or used; the message names the task, the field and the fix."""


def _as_float64(value: Any, task: str, field: str) -> torch.Tensor:
    """Convert a numpy array, torch tensor or nested list to a float64 tensor, or raise TaskError."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TaskError(
                f"task {task!r}: {field} has dtype {value.dtype}; pass real numbers (cast with .double())."
            )
        return value.detach().to(DTYPE, copy=True)  # a private copy: later edits of the input can't leak in
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
        return torch.as_tensor(arr.astype(np.float64, copy=True))
    except (TypeError, ValueError) as exc:
        raise TaskError(
            f"task {task!r}: {field} is not numeric ({exc}); pass a real-valued numpy array or torch tensor "
            f"of shape (P, n) with one sample per row."
        ) from None


def _check_names(
    names: Sequence[str] | None, n: int, task: str, field: str, axis: str
) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(str(s) for s in names)
    if len(names) != n:
        raise TaskError(
            f"task {task!r}: {field} has {len(names)} entries but there are {n} {axis}; "
            f"give one name per {axis[:-1]} or None."
        )
    return names


def _held_out(heldout: Any, name: str, n_in: int, n_out: int) -> Task | None:
    """The held-out data of task ``name`` as a Task (from a Task or (X*, Y*)), its widths checked; None stays."""
    if heldout is None:
        return None
    held = heldout if isinstance(heldout, Task) else Task(*heldout, name=f"{name}[held-out]")
    if (held.n_in, held.n_out) != (n_in, n_out):
        raise TaskError(
            f"task {name!r}: the held-out data maps Ni={held.n_in} → No={held.n_out} but the task maps "
            f"Ni={n_in} → No={n_out}; give held-out rows of the same inputs and outputs."
        )
    return held


class Task:
    """A supervised regression task (X, Y) with cached second-order statistics.

    X: (P, Ni) inputs, Y: (P, No) targets, one sample per row; stored as float64 tensors and read-only by
    convention (treat the returned tensors as immutable; derive new tasks with :meth:`replace`).
    ``item_names`` names the P rows, ``feature_names`` the No output columns. ``heldout``: held-out data of the
    same task, a Task or (X* (P*, Ni), Y* (P*, No)); its statistics Σxx*, Σyx*, Σyy* give the test loss, which
    the trainer logs and every theory predicts from the product.
    """

    def __init__(
        self,
        X: Any,
        Y: Any,
        *,
        name: str = "task",
        item_names: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
        heldout: Task | tuple[Any, Any] | None = None,
    ) -> None:
        name = str(name)
        X = _as_float64(X, name, "X")
        Y = _as_float64(Y, name, "Y").to(X.device)
        for field, t, shape in (("X", X, "(P, Ni)"), ("Y", Y, "(P, No)")):
            if t.ndim != 2:
                raise TaskError(
                    f"task {name!r}: {field} has shape {tuple(t.shape)} but must be 2-D {shape}, one sample "
                    f"per row; reshape it, e.g. {field}.reshape(P, -1) (or {field}[:, None] for one column)."
                )
            if 0 in t.shape:
                raise TaskError(
                    f"task {name!r}: {field} has shape {tuple(t.shape)}; it needs at least one row "
                    f"and one column."
                )
        if X.shape[0] != Y.shape[0]:
            raise TaskError(
                f"task {name!r}: X has P={X.shape[0]} rows but Y has {Y.shape[0]}; X and Y need one row per "
                f"sample, in the same order (transpose if you built them column-wise)."
            )
        for field, t in (("X", X), ("Y", Y)):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise TaskError(
                    f"task {name!r}: {field} contains {bad} NaN/inf entries; drop or impute those "
                    f"samples before building the task."
                )
        P = X.shape[0]
        sigma_yx = Y.T @ X / P
        scale = float(torch.linalg.norm(X)) * float(torch.linalg.norm(Y)) / P
        if float(torch.linalg.norm(sigma_yx)) <= 1e-13 * scale or scale == 0.0:
            raise TaskError(
                f"task {name!r}: zero signal, Σyx = YᵀX/P is 0 (Y is all zero or orthogonal to X), so there "
                f"is nothing to learn; check that Y is not all zeros and that X and Y rows are aligned."
            )
        self._X, self._Y, self._name = X, Y, name
        self._item_names = _check_names(item_names, P, name, "item_names", "items (rows of X)")
        self._feature_names = _check_names(
            feature_names, Y.shape[1], name, "feature_names", "outputs (columns of Y)"
        )
        self._meta: Mapping[str, Any] = MappingProxyType(dict(meta or {}))
        self.__dict__["sigma_yx"] = sigma_yx
        self._heldout = _held_out(heldout, name, X.shape[1], Y.shape[1])

    # -- construction helpers --------------------------------------------------------------------------------
    @classmethod
    def from_numpy(cls, X: np.ndarray, Y: np.ndarray, **kwargs: Any) -> Task:
        """Build a task from numpy arrays X (P, Ni) and Y (P, No); keyword arguments as for ``Task``."""
        return cls(np.asarray(X), np.asarray(Y), **kwargs)

    def replace(self, **changes: Any) -> Task:
        """A new Task with some of X, Y, name, item_names, feature_names, meta, heldout replaced (validated
        again). A new X or Y drops the held-out data (it belonged to the old task) unless ``heldout`` is given."""
        fields = dict(
            X=self._X,
            Y=self._Y,
            name=self._name,
            item_names=self._item_names,
            feature_names=self._feature_names,
            meta=dict(self._meta),
            heldout=None if {"X", "Y"} & set(changes) else self._heldout,
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise TaskError(
                f"task {self._name!r}: replace() got unknown fields {sorted(unknown)}; "
                f"valid fields are {sorted(fields)}."
            )
        fields.update(changes)
        return Task(fields.pop("X"), fields.pop("Y"), **fields)

    def to(self, device: str | torch.device) -> Task:
        """The same task with X and Y on ``device``."""
        device = torch.device(device)
        if self._X.device == device:
            return self
        heldout = None if self._heldout is None else self._heldout.to(device)
        return self.replace(X=self._X.to(device), Y=self._Y.to(device), heldout=heldout)

    # -- read-only fields ------------------------------------------------------------------------------------
    @property
    def X(self) -> torch.Tensor:
        """Inputs, (P, Ni) float64."""
        return self._X

    @property
    def Y(self) -> torch.Tensor:
        """Targets, (P, No) float64."""
        return self._Y

    @property
    def name(self) -> str:
        """Task name, used in error messages and logs."""
        return self._name

    @property
    def item_names(self) -> tuple[str, ...] | None:
        """Names of the P items (rows of X), or None."""
        return self._item_names

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """Names of the No outputs (columns of Y), or None."""
        return self._feature_names

    @property
    def meta(self) -> Mapping[str, Any]:
        """Read-only mapping of generator metadata."""
        return self._meta

    @property
    def heldout(self) -> Task | None:
        """Held-out data of the same task (a Task with the same Ni and No), or None."""
        return self._heldout

    @property
    def P(self) -> int:
        """Number of samples."""
        return self._X.shape[0]

    @property
    def n_in(self) -> int:
        """Input dimension Ni."""
        return self._X.shape[1]

    @property
    def n_out(self) -> int:
        """Output dimension No."""
        return self._Y.shape[1]

    @property
    def device(self) -> torch.device:
        """Device of X and Y."""
        return self._X.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """(P, Ni, No)."""
        return self.P, self.n_in, self.n_out

    # -- statistics ------------------------------------------------------------------------------------------
    @cached_property
    def sigma_xx(self) -> torch.Tensor:
        """Σxx = XᵀX/P, (Ni, Ni)."""
        return self._X.T @ self._X / self.P

    @cached_property
    def sigma_yx(self) -> torch.Tensor:  # computed in __init__ for the zero-signal check
        """Σyx = YᵀX/P, (No, Ni)."""
        return self._Y.T @ self._X / self.P

    @cached_property
    def sigma_yy(self) -> torch.Tensor:
        """Σyy = YᵀY/P, (No, No)."""
        return self._Y.T @ self._Y / self.P

    @cached_property
    def svd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full SVD Σyx = U diag(S) Vᵀ: U (No, No), S (m,) descending, V (Ni, Ni); m = min(Ni, No).

        Signs are fixed so that the largest-magnitude entry of each of the first m columns of V is positive.
        """
        U, S, Vh = torch.linalg.svd(self.sigma_yx, full_matrices=True)
        V = Vh.T.clone()
        U = U.clone()
        m = S.shape[0]
        idx = V[:, :m].abs().argmax(dim=0)
        sign = torch.sign(V[idx, torch.arange(m, device=V.device)])
        sign[sign == 0] = 1.0
        V[:, :m] *= sign
        U[:, :m] *= sign
        return U, S, V

    @cached_property
    def whitening_scale(self) -> float | None:
        """c if Σxx = c·I within a relative 1e-10 (max-abs entry), else None."""
        sxx = self.sigma_xx
        c = float(torch.diagonal(sxx).mean())
        if c <= 0.0:
            return None
        dev = float((sxx - c * torch.eye(self.n_in, dtype=sxx.dtype, device=sxx.device)).abs().max())
        return c if dev <= WHITENING_RTOL * c else None

    @property
    def top_singular_value(self) -> float:
        """s̃₁, the largest singular value of Σyx in whitened units (divided by c where Σxx = c·I): with λ it sets
        the fastest rate of the flow, √(λ² + 4s̃₁²), and so the largest step GD can take and follow it."""
        return float(self.svd[1][0]) / (self.whitening_scale or 1.0)

    @property
    def is_whitened(self) -> bool:
        """True when Σxx = I (assumption A1), within the relative tolerance of ``whitening_scale``."""
        c = self.whitening_scale
        return c is not None and abs(c - 1.0) <= WHITENING_RTOL

    # -- transformations -------------------------------------------------------------------------------------
    def whiten(
        self, method: str = "zca", k: int | None = None, eps: float | None = None, center: bool = False
    ) -> Task:
        """A new task with Σxx = I to round-off, through the SVD X = A D Bᵀ.

        ``pca``: X' = √P·A_k (P, k); keeps the top k principal directions, k ≤ rank (default: the rank).
        ``zca``: X' = √P·A Bᵀ (P, Ni); keeps the input coordinates, needs rank(X) = Ni.
        ``eps``: singular values of X at or below eps·d_max count as zero (default max(P, Ni)·machine eps).
        ``center``: subtract the column means of X first (off by default: the networks have no biases).
        Y is unchanged, so Σyx changes to that of the new inputs. The map is stored as meta['whitening']
        (Ni, k'), with X' = (X − meta['whitening_mean']) @ map (no mean when not centered). Held-out inputs go
        through the same map (the training data's mean and directions), so they are not exactly whitened.
        """
        X = self._X - self._X.mean(dim=0, keepdim=True) if center else self._X
        P, Ni = X.shape
        A, d, Bh = torch.linalg.svd(X, full_matrices=False)
        tol = (max(P, Ni) * torch.finfo(DTYPE).eps if eps is None else eps) * float(d[0])
        rank = int((d > tol).sum())
        if rank == 0:
            raise TaskError(
                f"task {self._name!r}: X is zero{' after centering' if center else ''}; "
                f"there is nothing to whiten."
            )
        if method == "pca":
            k = rank if k is None else int(k)
            if not 1 <= k <= rank:
                raise TaskError(
                    f"task {self._name!r}: whiten(method='pca', k={k}) but X has numerical rank "
                    f"{rank} (P={P}, Ni={Ni}); use 1 ≤ k ≤ {rank}."
                )
            X_new = math.sqrt(P) * A[:, :k]
            mapping = Bh[:k].T / d[:k] * math.sqrt(P)
        elif method == "zca":
            if k is not None:
                raise TaskError(
                    f"task {self._name!r}: whiten(method='zca') keeps all Ni={Ni} inputs and takes "
                    f"no k; use method='pca', k={k} to reduce dimension."
                )
            if rank < Ni:
                raise TaskError(
                    f"task {self._name!r}: X has rank {rank} < Ni={Ni} (P={P}), so ZCA whitening cannot "
                    f"reach Σxx = I; use whiten(method='pca', k=...) with k ≤ {rank}."
                )
            X_new = math.sqrt(P) * A @ Bh
            mapping = Bh.T @ torch.diag(math.sqrt(P) / d) @ Bh
        else:
            raise TaskError(f"task {self._name!r}: unknown whitening method {method!r}; use 'zca' or 'pca'.")
        mean = self._X.mean(dim=0) if center else None
        meta = dict(self._meta, whitening=mapping, whitening_method=method, whitening_mean=mean)
        held = self._heldout
        if held is not None:
            held = held.replace(X=((held.X - mean) if center else held.X) @ mapping, Y=held.Y)
        return self.replace(X=X_new, meta=meta, heldout=held)

    def describe(self) -> str:
        """One-line summary: name, shapes, whitening and the leading singular values of Σyx."""
        c = self.whitening_scale
        white = "whitened" if self.is_whitened else (f"Σxx={c:.3g}·I" if c is not None else "not whitened")
        S = self.svd[1]
        rank = int((S > S[0] * max(self.n_in, self.n_out) * torch.finfo(DTYPE).eps).sum())
        head = ", ".join(f"{float(s):.3g}" for s in S[:6]) + (", …" if S.shape[0] > 6 else "")
        held = f", held-out P*={self._heldout.P}" if self._heldout is not None else ""
        return (
            f"{self._name}: P={self.P}, Ni={self.n_in} → No={self.n_out}, {white}, rank {rank}, s̃ = [{head}]{held}"
        )

    def __repr__(self) -> str:
        return f"Task(name={self._name!r}, P={self.P}, n_in={self.n_in}, n_out={self.n_out})"


@dataclass(frozen=True)
class Phase:
    """One phase of a TaskSequence: a task, an optional time budget t (in units of τ) and a name."""

    task: Task
    t_budget: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, Task):
            raise TaskError(f"phase {self.name!r}: task is a {type(self.task).__name__}, expected a Task.")
        if self.t_budget is not None:
            t = float(self.t_budget)
            if not (math.isfinite(t) and t > 0):
                raise TaskError(
                    f"phase {self.name or self.task.name!r}: t_budget={self.t_budget} must be a "
                    f"positive finite time, or None to train to convergence."
                )
            object.__setattr__(self, "t_budget", t)
        if self.name is None:
            object.__setattr__(self, "name", self.task.name)


class TaskSequence:
    """An ordered list of phases whose tasks share Ni and No (continual, reversal and transfer runs)."""

    def __init__(self, phases: Sequence[Phase | Task], name: str = "sequence") -> None:
        phases = tuple(p if isinstance(p, Phase) else Phase(p) for p in phases)
        if not phases:
            raise TaskError(f"task sequence {name!r}: no phases; give at least one Phase(task).")
        first = phases[0].task
        for i, ph in enumerate(phases[1:], start=1):
            if (ph.task.n_in, ph.task.n_out) != (first.n_in, first.n_out):
                raise TaskError(
                    f"task sequence {name!r}: phase {i} ({ph.name!r}) has Ni={ph.task.n_in}, "
                    f"No={ph.task.n_out} but phase 0 ({phases[0].name!r}) has Ni={first.n_in}, "
                    f"No={first.n_out}; all phases train the same network, so give them the same input and "
                    f"output dimensions."
                )
        self._phases, self._name = phases, str(name)

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The phases, in order."""
        return self._phases

    @property
    def name(self) -> str:
        """Sequence name."""
        return self._name

    @property
    def n_in(self) -> int:
        """Shared input dimension Ni."""
        return self._phases[0].task.n_in

    @property
    def n_out(self) -> int:
        """Shared output dimension No."""
        return self._phases[0].task.n_out

    @property
    def tasks(self) -> list[Task]:
        """The tasks of the phases, in order."""
        return [p.task for p in self._phases]

    def __len__(self) -> int:
        return len(self._phases)

    def __iter__(self) -> Iterator[Phase]:
        return iter(self._phases)

    def __getitem__(self, i: int) -> Phase:
        return self._phases[i]

    def to(self, device: str | torch.device) -> TaskSequence:
        """The same sequence with every task on ``device``."""
        return TaskSequence([Phase(p.task.to(device), p.t_budget, p.name) for p in self._phases], self._name)

    def describe(self) -> str:
        """One line per phase."""
        lines = [f"{self._name}: {len(self)} phases, Ni={self.n_in} → No={self.n_out}"]
        for i, p in enumerate(self._phases):
            budget = "to convergence" if p.t_budget is None else f"t ≤ {p.t_budget:g}"
            lines.append(f"  [{i}] {p.name} ({budget}): {p.task.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TaskSequence(name={self._name!r}, phases={[p.name for p in self._phases]})"
