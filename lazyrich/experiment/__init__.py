"""One experiment, end to end: the config resolved once into objects, then task → init → trainer → theory →
results, written by a sink (run folder, curves PNG, W&B).

- :mod:`~lazyrich.experiment.run`: :func:`run_experiment`, the chunk and phase loop;
- :mod:`~lazyrich.experiment.batch`: the task, the initial weights and one metadata row per network;
- :mod:`~lazyrich.experiment.predict`: the theory beside the trainer;
- :mod:`~lazyrich.experiment.sink`: the run folder being written, and its W&B mirror;
- :mod:`~lazyrich.experiment.chunking`: how many networks run at once;
- :mod:`~lazyrich.experiment.console`: what a finished run prints;
- :mod:`~lazyrich.experiment.shards`: :func:`run_shards`, one run folder written by several processes;
- :mod:`~lazyrich.experiment.cluster`: where those processes run (here, submitit local, a SLURM job array).
"""

from lazyrich.experiment.batch import META_COLUMNS, build_batch, build_task, given_batch
from lazyrich.experiment.cluster import Launch
from lazyrich.experiment.predict import choose_theory, predict_theory
from lazyrich.experiment.run import ExperimentResult, plan_work, run_experiment
from lazyrich.experiment.shards import ShardsFailed, run_shards

__all__ = ["META_COLUMNS", "ExperimentResult", "Launch", "ShardsFailed", "build_batch", "build_task", "choose_theory",
           "given_batch", "plan_work", "predict_theory", "run_experiment", "run_shards"]
