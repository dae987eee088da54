"""Performance benchmarks: each measures lazyrich and its baseline side by side, in one process.

Run them all with ``python -m benchmarks.perf --out bench_results`` (``make bench``), or one at a time with
``python -m benchmarks.perf.bench_training`` etc. Every module has ``main(argv=None) -> list[dict]``; the rows
follow :data:`benchmarks.perf.common.COLUMNS` and are built with :func:`benchmarks.perf.common.row`.
"""

BENCHMARKS = ("training", "ntk", "theory", "scaling", "memory", "pipeline", "atlas")
"""Run order; ``benchmarks.perf.bench_<name>`` holds each one."""
