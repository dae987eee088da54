"""notebooks/figN.ipynb: each runs at reduced size in a scratch folder, writes its PNG and prints the very
sentence its markdown cell states (so the notebook's claim of agreement is the one measured)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lazyrich.figures import FIGURES

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 180  # s; a reduced-size figure computes in ~1–6 s, imports and the first draw add ~5 s
PARALLEL = 2  # kernels at once: each is one process, and the two cores are what we have


def test_every_figure_has_a_thin_notebook():
    assert sorted(p.stem for p in NOTEBOOKS.glob("fig*.ipynb")) == sorted(FIGURES)
    for name in FIGURES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert [cell.cell_type for cell in nb.cells] == ["markdown", "code", "code"], name
        sentence = nb.cells[0].source.replace(f"Fig. {name[3:]}:", "")
        assert sentence.count(". ") == 0 and sentence.endswith(".") and "\n" not in sentence, "one sentence"
        assert 'os.environ.get("LAZYRICH_SMALL", "0") == "1"' in nb.cells[1].source
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
            "outputs stripped"
        )


async def _run_all(workdir: Path) -> dict[str, object]:
    """Execute every notebook (PARALLEL at a time), each in its own folder; name → notebook or exception."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(name: str):
        folder = workdir / name
        folder.mkdir()
        nb = nbformat.read(shutil.copy(NOTEBOOKS / f"{name}.ipynb", folder), as_version=4)
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(folder)}},
        )
        async with gate:
            await client.async_execute()
        return nb

    done = await asyncio.gather(*(one(name) for name in FIGURES), return_exceptions=True)
    return dict(zip(FIGURES, done, strict=True))


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[Path, dict[str, object]]:
    workdir = tmp_path_factory.mktemp("notebooks")
    env = {"LAZYRICH_SMALL": "1", "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # kernels inherit this process's environment
    try:
        return workdir, asyncio.run(_run_all(workdir))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_notebook_runs_small_and_states_what_it_measured(name, executed):
    workdir, results = executed
    nb = results[name]
    if isinstance(nb, BaseException):
        raise nb
    assert (workdir / name / "figures" / f"{name}.png").stat().st_size > 10_000
    outputs = nb.cells[2].outputs
    assert any(
        out.get("output_type") == "display_data" and "image/png" in out.get("data", {}) for out in outputs
    )
    printed = (
        "".join(out.get("text", "") for out in outputs if out.get("name") == "stdout").strip().splitlines()
    )
    assert printed[0].startswith("max theory-vs-simulation error:")
    assert printed[-1] == nb.cells[0].source  # the markdown's sentence is the one this run measured
