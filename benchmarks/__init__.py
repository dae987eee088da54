"""Suites and performance measurements, built on lazyrich's public functions."""
