"""The W&B mirror of the local results (never their source): connecting without blocking, the run schema (ids,
names, groups, config keys), logging networks and suites, reading offline runs back, syncing them, and
dashboards as code.

- :mod:`~lazyrich.tracking.connect`: mode, probe and ``wandb.init`` with a time limit;
- :mod:`~lazyrich.tracking.schema`: what a W&B run is called and holds;
- :mod:`~lazyrich.tracking.sink`: one W&B run per network (or per configuration) and table runs;
- :mod:`~lazyrich.tracking.suite`: a suite's per-unit logger (which re-logs a unit whose mirror was cut short) and
  its suite-level run;
- :mod:`~lazyrich.tracking.mirror`: whether a unit's mirror is complete, and the newest offline run of each id;
- :mod:`~lazyrich.tracking.read`, :mod:`~lazyrich.tracking.sync`, :mod:`~lazyrich.tracking.dashboard`: offline
  runs read back, uploaded, and turned into saved views.
"""

from lazyrich.tracking.sink import Target, log_networks, log_table_run
from lazyrich.tracking.suite import log_suite_run, suite_logger

__all__ = ["Target", "log_networks", "log_suite_run", "log_table_run", "suite_logger"]
