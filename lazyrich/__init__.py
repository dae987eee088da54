"""lazyrich: learning dynamics of deep linear networks, from the rich to the lazy regime."""

__version__ = "0.1.0"
