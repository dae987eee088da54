"""Real-data tasks, PCA-whitened so that Σxx = I exactly: scikit-learn digits, MNIST-1D, torchvision datasets.

Nothing here downloads. scikit-learn's digits ship with the package, MNIST-1D is generated procedurally with
``mnist1d.data.make_dataset``, and torchvision datasets must already be on disk. Heavy imports happen inside
the functions, never when lazyrich is imported.

Shared recipe: subsample, centre the inputs (column means removed, since the networks have no biases),
PCA-whiten to k dimensions (Σxx = I_k), and encode class labels as targets: ``onehot`` (1 on the class,
0 elsewhere) or ``pm1`` (+1 on the class, −1 elsewhere). meta['labels'] keeps the integer labels.
``n_test`` held-out samples (disjoint from the training ones) go through the training data's centring and
whitening map: they are the task's held-out data (``Task.heldout``).
"""

from __future__ import annotations

import inspect
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lazyrich.device import DTYPE
from lazyrich.tasks.base import Task, TaskError
from lazyrich.tasks.registry import register

TARGETS = ("onehot", "pm1")


def class_targets(labels: np.ndarray, n_classes: int, targets: str, task: str) -> torch.Tensor:
    """(P,) integer labels → (P, n_classes) float64 targets in the ``onehot`` or ``pm1`` encoding."""
    if targets not in TARGETS:
        raise TaskError(f"task {task!r}: targets={targets!r} is not one of {TARGETS}.")
    Y = torch.zeros(len(labels), n_classes, dtype=DTYPE)
    Y[torch.arange(len(labels)), torch.as_tensor(labels, dtype=torch.long)] = 1.0
    return 2.0 * Y - 1.0 if targets == "pm1" else Y


def _subsample(n_total: int, n_samples: int | None, seed: int, task: str) -> np.ndarray:
    if n_samples is None:
        return np.arange(n_total)
    if int(n_samples) != n_samples or not 1 <= n_samples <= n_total:
        raise TaskError(
            f"task {task!r}: n_samples={n_samples!r} must be an integer in [1, {n_total}] (the size "
            f"of the data), or None for all of it."
        )
    return np.sort(np.random.default_rng(seed).choice(n_total, size=int(n_samples), replace=False))


def whitened_class_task(
    x: np.ndarray, labels: np.ndarray, n_classes: int, k: int, targets: str, name: str, meta: dict[str, Any],
    heldout: tuple[np.ndarray, np.ndarray] | None = None,
) -> Task:
    """Centre x (P, d), PCA-whiten it to k dimensions and attach class targets; k must not exceed the rank.
    ``heldout`` = (x* (P*, d), labels* (P*,)) become the held-out data, through the same centring and map."""
    Y = class_targets(labels, n_classes, targets, name)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if int(k) != k or k < 1:
        raise TaskError(f"task {name!r}: k={k!r} must be a positive integer (the number of PCA dimensions).")
    held = None
    if heldout is not None:
        held = (np.asarray(heldout[0], dtype=np.float64).reshape(len(heldout[0]), -1),
                class_targets(heldout[1], n_classes, targets, name))
    raw = Task(
        x,
        Y,
        name=name,
        feature_names=[str(c) for c in range(n_classes)],
        meta=dict(meta, labels=torch.as_tensor(labels, dtype=torch.long), targets=targets),
        heldout=held,
    )
    return raw.whiten("pca", k=int(k), center=True)


def _split(n_total: int, n_samples: int | None, n_test: int, seed: int, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices) of ``n_total`` samples: ``n_test`` held out at random (seeded), the
    training set drawn from the rest like :func:`_subsample` (all of the rest when ``n_samples`` is None)."""
    if int(n_test) != n_test or not 0 <= n_test < n_total:
        raise TaskError(f"task {task!r}: n_test={n_test!r} must be an integer in [0, {n_total - 1}] (held-out "
                        f"samples).")
    if not n_test:
        return _subsample(n_total, n_samples, seed, task), np.arange(0)
    order = np.random.default_rng(seed).permutation(n_total)
    test, rest = np.sort(order[: int(n_test)]), np.sort(order[int(n_test):])
    return rest[_subsample(len(rest), n_samples, seed, task)], test


@register()
def digits(k: int = 16, targets: str = "onehot", n_samples: int | None = None, seed: int = 0,
           n_test: int = 0) -> Task:
    """scikit-learn's 8×8 handwritten digits (1797 × 64, bundled offline), centred and PCA-whitened to k dims.

    targets: ``onehot`` or ``pm1`` over the 10 classes.
    n_samples: a random subset (seeded) or None for all 1797 (all but the held-out ones).
    n_test: samples held out (seeded, disjoint from the training set), 0 for none.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    idx, test = _split(len(data.target), n_samples, n_test, seed, "digits")
    meta = dict(source="sklearn.datasets.load_digits", k=k, seed=seed, n_test=n_test)
    heldout = (data.data[test], data.target[test]) if n_test else None
    return whitened_class_task(data.data[idx], data.target[idx], 10, k, targets, "digits", meta, heldout)


@register()
def mnist1d(
    k: int = 16, n_samples: int = 4000, targets: str = "onehot", split: str = "train", seed: int = 0,
    n_test: int = 0,
) -> Task:
    """MNIST-1D (Greydanus 2020) generated offline by ``mnist1d.data.make_dataset``, PCA-whitened to k.

    Generates ⌈n_samples/0.8⌉ (train) or ⌈n_samples/0.2⌉ (test) samples, rounded up to a multiple of 10,
    with the package's default arguments and ``seed``, and keeps the first n_samples of ``split``
    (seed=42 with n_samples=4000 gives the published dataset). Python's and numpy's global RNG states are
    restored afterwards. n_test: the first n_test samples of the other split are held out (more are generated
    if needed, which then changes the data set), 0 for none.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    if split not in ("train", "test"):
        raise TaskError(f"task 'mnist1d': split={split!r} must be 'train' or 'test'.")
    if int(n_samples) != n_samples or n_samples < 1:
        raise TaskError(f"task 'mnist1d': n_samples={n_samples!r} must be a positive integer.")
    if int(n_test) != n_test or n_test < 0:
        raise TaskError(f"task 'mnist1d': n_test={n_test!r} must be an integer ≥ 0 (held-out samples).")
    args = get_dataset_args()

    def split_size(total: int, which: str) -> int:  # mirrors make_dataset: split index int(total · train_split)
        n_train = int(total * args.train_split)
        return n_train if which == "train" else total - n_train

    other = "test" if split == "train" else "train"
    frac = args.train_split if split == "train" else 1.0 - args.train_split
    total = int(math.ceil(n_samples / frac / 10.0)) * 10
    while split_size(total, split) < n_samples or split_size(total, other) < n_test:
        total += 10
    args.num_samples, args.seed = total, int(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    parts = {"train": (data["x"], data["y"]), "test": (data["x_test"], data["y_test"])}
    x, y = parts[split]
    meta = dict(source="mnist1d.data.make_dataset", num_samples=total, split=split, k=k, seed=seed, n_test=n_test)
    heldout = (parts[other][0][:n_test], parts[other][1][:n_test]) if n_test else None
    return whitened_class_task(x[:n_samples], y[:n_samples], 10, k, targets, "mnist1d", meta, heldout)


def _dataset_arrays(ds: Any, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, ...), integer labels (n,)) of samples ``idx``, via .data/.targets when present."""
    data, labels = getattr(ds, "data", None), getattr(ds, "targets", None)
    if labels is None:
        labels = getattr(ds, "labels", None)
    if data is not None and labels is not None and len(data) == len(labels) == len(ds):
        data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        return data[idx], labels[idx].astype(np.int64)
    xs, ys = zip(*(ds[int(i)] for i in idx), strict=True)
    return np.stack([np.asarray(x) for x in xs]), np.asarray(ys, dtype=np.int64)


@register()
def torchvision_dataset(
    root: str,
    dataset: str = "MNIST",
    split: str = "train",
    n_samples: int | None = 10000,
    k: int = 32,
    targets: str = "onehot",
    seed: int = 0,
) -> Task:
    """A torchvision classification dataset already on disk under ``root`` (never downloaded), PCA-whitened.

    dataset: a class in torchvision.datasets (MNIST, FashionMNIST, CIFAR10…); split: ``train`` or ``test``.
    Needs the optional extra: ``pip install lazyrich[vision]``.
    """
    task = "torchvision_dataset"
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:
        raise TaskError(
            f"task {task!r} needs torchvision, which is not installed ({exc}); install it with "
            f"`pip install lazyrich[vision]`."
        ) from None
    cls = getattr(tvd, str(dataset), None)
    if not inspect.isclass(cls):
        raise TaskError(
            f"task {task!r}: torchvision.datasets has no dataset {dataset!r}; use a class name such as "
            f"'MNIST', 'FashionMNIST' or 'CIFAR10'."
        )
    if split not in ("train", "test"):
        raise TaskError(f"task {task!r}: split={split!r} must be 'train' or 'test'.")
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"download": False} if "download" in params else {}
    if "train" in params:
        kwargs["train"] = split == "train"
    elif "split" in params:
        kwargs["split"] = split
    root_path = Path(root).expanduser()
    try:
        ds = cls(str(root_path), **kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise TaskError(
            f"task {task!r}: {dataset} ({split}) is not present under root={str(root_path)!r} ({exc}). "
            f"lazyrich never downloads; fetch it once elsewhere, e.g. "
            f"torchvision.datasets.{dataset}(root, download=True), and point task.root at that folder."
        ) from None
    x, labels = _dataset_arrays(ds, _subsample(len(ds), n_samples, seed, task))
    n_classes = len(getattr(ds, "classes", [])) or int(labels.max()) + 1
    meta = dict(source=f"torchvision.datasets.{dataset}", root=str(root_path), split=split, k=k, seed=seed)
    return whitened_class_task(x, labels, n_classes, k, targets, str(dataset), meta)
