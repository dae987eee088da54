"""Nothing hard-codes the CPU: device resolution, and CUDA runs that match the CPU where a GPU exists."""

import pytest
import torch
from conftest import rel_err

from lazyrich.device import resolve_device, torch_threads
from lazyrich.init import lambda_balanced
from lazyrich.tasks import hierarchy
from lazyrich.theory import TaskStats, get_theory
from lazyrich.train import train

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_auto_picks_what_exists():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_asking_for_missing_cuda_says_what_to_do():
    with pytest.raises(ValueError, match="use device=cpu or auto"):
        resolve_device("cuda")


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@CUDA
def test_training_and_theory_on_cuda_match_the_cpu():
    task = hierarchy()
    w = list(lambda_balanced(8, 8, 8, [-2.0, 0.0, 2.0], scale=0.1, generator=torch.Generator().manual_seed(0)))
    cpu = train(task, w, 0.01, t_max=2.0, n_log=5, progress=False)
    gpu = train(task, w, 0.01, t_max=2.0, n_log=5, progress=False, device="cuda")
    assert gpu.final_weights[0].is_cuda
    # float64 on both; only the summation order of the kernels differs: 1e-10 of each net's loss.
    assert rel_err(gpu.scalars["loss"], cpu.scalars["loss"], batch_dims=1) <= 1e-10
    pred = get_theory("exact").predict(TaskStats.from_task(task), w, cpu.t, device="cuda")
    assert pred.loss.is_cuda
    ref = get_theory("exact").predict(TaskStats.from_task(task), w, cpu.t)
    assert rel_err(pred.loss, ref.loss, batch_dims=1) <= 1e-10
