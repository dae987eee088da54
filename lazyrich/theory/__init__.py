"""What we predict: closed-form and numerical theories of deep linear network learning dynamics.

Every theory takes task statistics (:class:`TaskStats`, or any object with sigma_xx, sigma_yx, sigma_yy and
P), the initial weights [W_l (B, out, in)] and a time grid (T,) or (B, T) in t = step·lr, and returns a
:class:`Prediction` with the same figures the trainer records. Built-ins: ``exact`` (docs/theory.md §4),
``aligned``, ``saxe``, ``lazy``, ``deep_aligned`` (§5, §7), ``ode`` (numerical gradient flow, the reference),
``auto``, and for gradient descent itself ``aligned_gd`` (exact GD maps), ``gd_flow`` (GD to O(lr²)) and
``escape`` (the λ = 0 saddle's plateau under GD); for wide two-layer nets from i.i.d. inits ``wide`` (the closed
form at λ = ±(c₁ + c₂), with its finite-width error) and ``gram_ode`` (the flow of the Gram QQᵀ, any width; §12).
Plug-ins register through the ``lazyrich.theories`` entry-point group.
"""

from lazyrich.theory import (  # noqa: F401  (registers them)
    aligned,
    auto,
    deep,
    escape,
    exact,
    gd,
    gd_flow,
    gram_ode,
    lazy,
    ode,
    wide,
)
from lazyrich.theory.aligned import singular_values
from lazyrich.theory.auto import select_theory
from lazyrich.theory.base import (
    PrecisionWarning,
    Prediction,
    TaskStats,
    Theory,
    TheoryNotApplicable,
    loss_from_product,
)
from lazyrich.theory.exact import qqt
from lazyrich.theory.fukumizu import fukumizu_qqt
from lazyrich.theory.ode import integrate_flow
from lazyrich.theory.registry import available_theories, describe_theories, get_theory, register_theory

__all__ = [
    "PrecisionWarning",
    "Prediction",
    "TaskStats",
    "Theory",
    "TheoryNotApplicable",
    "available_theories",
    "describe_theories",
    "fukumizu_qqt",
    "get_theory",
    "integrate_flow",
    "loss_from_product",
    "qqt",
    "register_theory",
    "select_theory",
    "singular_values",
]
