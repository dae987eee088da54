"""Tests for lazyrich/tasks/real.py: digits, MNIST-1D and the torchvision adapter (all offline)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lazyrich.tasks import TaskError, digits, make, mnist1d, torchvision_dataset

# PCA whitening returns √P times orthonormal singular vectors of X, so Σxx − I is pure round-off: ~1e-15 for
# P ≈ 2000; 1e-12 is the spec's exactness bar and fails for any scaling or centring mistake.
EXACT = 1e-12


def _assert_whitened(t, k: int) -> None:
    assert t.n_in == k
    assert float((t.sigma_xx - torch.eye(k, dtype=torch.float64)).abs().max()) < EXACT  # of Σxx's scale, 1


@pytest.mark.slow
def test_digits_is_exactly_whitened_with_onehot_targets() -> None:
    t = digits(k=16)
    assert t.P == 1797 and t.n_out == 10
    _assert_whitened(t, 16)
    assert torch.equal(t.Y.sum(1), torch.ones(1797, dtype=torch.float64))
    assert torch.equal(t.Y.argmax(1), t.meta["labels"])


def test_digits_subsample_and_pm1() -> None:
    t = digits(k=8, targets="pm1", n_samples=300, seed=1)
    assert t.P == 300
    _assert_whitened(t, 8)
    assert set(t.Y.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(t.Y, digits(k=8, targets="pm1", n_samples=300, seed=1).Y)
    with pytest.raises(TaskError, match="targets"):
        digits(targets="soft")
    with pytest.raises(TaskError, match=r"rank 61.*k ≤ 61"):  # 3 of the 64 pixels are constant
        digits(k=100)


def test_mnist1d_small_is_exactly_whitened_and_keeps_global_rng() -> None:
    import numpy as np

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    t = mnist1d(k=12, n_samples=200, seed=0)
    assert np.array_equal(np.random.get_state()[1], before)  # make_dataset reseeds numpy; we restore it
    assert t.P == 200 and t.n_out == 10
    _assert_whitened(t, 12)
    test_split = mnist1d(k=12, n_samples=50, split="test")
    assert test_split.P == 50


@pytest.mark.slow
def test_real_modules_import_lazily() -> None:
    code = (
        "import sys, lazyrich.tasks; "
        "bad = [m for m in ('sklearn', 'mnist1d', 'torchvision') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_missing_torchvision_gives_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` raise ImportError
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(TaskError, match=r"needs torchvision.*pip install lazyrich\[vision\]"):
        torchvision_dataset("/nonexistent")
    with pytest.raises(TaskError, match=r"lazyrich\[vision\]"):
        make("torchvision_dataset", root="/nonexistent")


class _FakeMNIST:
    """Stands in for torchvision.datasets.MNIST: uint8 images in .data, labels in .targets."""

    calls: list[dict] = []

    def __init__(self, root: str, train: bool = True, transform=None, download: bool = False) -> None:
        self.calls.append(dict(root=root, train=train, download=download))
        if root.endswith("missing"):
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        gen = torch.Generator().manual_seed(0)
        self.data = torch.randint(0, 256, (120, 6, 6), generator=gen, dtype=torch.uint8)
        self.targets = torch.arange(120) % 10
        self.classes = [str(c) for c in range(10)]

    def __len__(self) -> int:
        return len(self.targets)


def test_torchvision_adapter_with_a_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.ModuleType("torchvision")
    fake.datasets = types.ModuleType("torchvision.datasets")
    fake.datasets.MNIST = _FakeMNIST
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    _FakeMNIST.calls.clear()
    t = torchvision_dataset("/data", dataset="MNIST", split="test", n_samples=100, k=10, targets="pm1")
    assert _FakeMNIST.calls == [dict(root="/data", train=False, download=False)]
    assert t.P == 100 and t.n_out == 10
    _assert_whitened(t, 10)
    with pytest.raises(TaskError, match=r"not present under root='/missing'.*never downloads.*download=True"):
        torchvision_dataset("/missing")
    assert all(call["download"] is False for call in _FakeMNIST.calls)


def test_torchvision_adapter_never_downloads(tmp_path) -> None:
    pytest.importorskip("torchvision", reason="torchvision is the optional `vision` extra")
    with pytest.raises(TaskError, match=r"not present under root=.*never downloads"):
        torchvision_dataset(str(tmp_path), dataset="MNIST")
    with pytest.raises(TaskError, match="no dataset 'NotADataset'"):
        torchvision_dataset(str(tmp_path), dataset="NotADataset")
    assert not any(tmp_path.iterdir())  # nothing was fetched
