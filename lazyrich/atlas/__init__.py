"""The lazy–rich atlas: a two-axis sweep with every theory in every cell, and maps of where they agree.

- :mod:`~lazyrich.atlas.spec`: the axes, the base run config, the presets, parsing ``key=value`` words;
- :mod:`~lazyrich.atlas.runner`: :func:`run_atlas` (resumable, one run folder per unit) and :func:`load_atlas`;
- :mod:`~lazyrich.atlas.network_rows`, :mod:`~lazyrich.atlas.measures`, :mod:`~lazyrich.atlas.domain`: one
  network's measures, for the simulation and each theory, and each theory's domain;
- :mod:`~lazyrich.atlas.cells`: seeds averaged into cells with an interval;
- :mod:`~lazyrich.atlas.summary`: agreement, the lazy/rich boundary, where a theory breaks;
- :mod:`~lazyrich.atlas.maps`: the figures;
- :mod:`~lazyrich.atlas.compare`: atlases side by side, cell by cell (``lazyrich compare`` on atlas folders).
"""

from lazyrich.atlas.cells import cell_table
from lazyrich.atlas.runner import load_atlas, load_networks, run_atlas
from lazyrich.atlas.spec import PRESETS, AtlasConfig, Axis, parse_atlas

__all__ = [
    "PRESETS",
    "AtlasConfig",
    "Axis",
    "cell_table",
    "load_atlas",
    "load_networks",
    "parse_atlas",
    "run_atlas",
]
