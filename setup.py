"""Build configuration that pyproject.toml cannot express: ship the top-level ``conf/`` folder (the source of the
Hydra configs) inside the package as ``lazyrich/conf``, so a wheel or sdist install finds its configs.

Everything else (metadata, dependencies, entry points) lives in pyproject.toml.
"""

from setuptools import find_packages, setup

CONF_PATTERNS = ["*.yaml", "*/*.yaml", "*/*/*.yaml"]  # conf/, conf/<group>/, conf/hydra/launcher/

setup(
    packages=[*find_packages(include=["lazyrich", "lazyrich.*"]), "lazyrich.conf"],
    package_dir={"lazyrich.conf": "conf"},
    package_data={"lazyrich": ["py.typed"], "lazyrich.conf": CONF_PATTERNS},
)
