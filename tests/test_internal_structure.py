"""The package's inner structure: which module depends on which, how long modules and functions
are, and the protocol between the moment estimators and the stages after them."""

from __future__ import annotations

import ast
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import adamjax

# the modules themselves, not names they export: these tests are about the package's layout
from adamjax import _estimates, _moments

ROOT = pathlib.Path(adamjax.__file__).resolve().parent
SOURCES = {path.stem: path.read_text() for path in sorted(ROOT.glob("*.py"))}
TREES = {name: ast.parse(source) for name, source in SOURCES.items()}

# Transforms that take gradients (or updates) and never moment estimates.
GRADIENT_SIDE = (
    "_accumulate",
    "_apply",
    "_clip",
    "_combine",
    "_decay",
    "_finite",
    "_partition",
    "_real_view",
    "_scale",
)


def _imports(module: str) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from adamjax.x import name`` at the top of ``module``."""
    found = []
    for node in TREES[module].body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adamjax"):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


def _code_lines(source_lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node`` that hold code: not its docstring, blank lines or comments."""
    skip: set[int] = set()
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        skip = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    count = 0
    for number in range(node.lineno, (node.end_lineno or node.lineno) + 1):
        text = source_lines[number - 1].strip()
        if number not in skip and text and not text.startswith("#"):
            count += 1
    return count


@pytest.mark.parametrize("module", GRADIENT_SIDE)
def test_gradient_transforms_do_not_import_the_moment_estimators(module: str) -> None:
    imported = {source for source, _ in _imports(module)}
    assert "adamjax._moments" not in imported, f"{module} imports the moment estimators"


def test_moments_and_its_guards_have_a_module_of_their_own() -> None:
    imported = {source for source, _ in _imports("_estimates")}
    assert imported <= {"adamjax._arraymath", "adamjax._base", "adamjax._tree"}
    # modules that import them from the estimators' module get the same objects
    assert _moments.Moments is _estimates.Moments is adamjax.Moments
    assert _moments.expect_moments is _estimates.expect_moments
    assert _moments.expect_gradients is _estimates.expect_gradients


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_no_module_imports_another_modules_private_helper(module: str) -> None:
    private = [f"{source}.{name}" for source, name in _imports(module) if name.startswith("_")]
    assert not private, f"{module} imports {private}"


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_modules_are_at_most_400_lines(module: str) -> None:
    assert SOURCES[module].count("\n") <= 400


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_functions_are_at_most_60_lines_of_code(module: str) -> None:
    lines = SOURCES[module].splitlines()
    long = [
        (node.name, _code_lines(lines, node))
        for node in ast.walk(TREES[module])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and _code_lines(lines, node) > 60
    ]
    assert not long, f"{module}: {long}"


@pytest.mark.parametrize("module", sorted(set(SOURCES) - {"_arraymath"}))
def test_complex_squared_magnitudes_are_written_once(module: str) -> None:
    """``|g|^2`` of a complex gradient is ``_arraymath.abs_square``, nowhere else."""
    assert "jnp.conj(" not in SOURCES[module]


@pytest.mark.parametrize("module", sorted(set(SOURCES) - {"_estimates"}))
def test_the_kind_of_a_second_moment_is_compared_in_the_protocol_module_only(module: str) -> None:
    """Other modules ask ``Moments.takes_root`` and ``Moments.is_moving_average``."""
    for kind in ("mean_square", "sum_of_squares", "infinity_norm"):
        for comparison in (f'== "{kind}"', f'!= "{kind}"'):
            assert comparison not in SOURCES[module], f"{module}: kind {comparison}"


# ----- behaviour of the protocol -------------------------------------------------------------

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([0.25])}
GRADS = {"w": jnp.array([0.3, -1.2, 2.0]), "b": jnp.array([-0.7])}
ESTIMATORS = {
    "moments": adamjax.moments,
    "infinity_moments": adamjax.infinity_moments,
    "sum_of_squares": adamjax.sum_of_squares,
    "belief_moments": adamjax.belief_moments,
    "yogi_moments": adamjax.yogi_moments,
}


@pytest.mark.parametrize("reader", sorted(ESTIMATORS))
@pytest.mark.parametrize("maker", sorted(ESTIMATORS))
def test_an_estimator_refuses_the_state_of_another(reader: str, maker: str) -> None:
    state = ESTIMATORS[maker]().init(PARAMS)
    estimator = ESTIMATORS[reader]()
    if reader == maker:
        estimator.update(GRADS, state)
        return
    with pytest.raises(TypeError, match=rf"^{reader}\(\) takes the \w+ its init returned, got a "):
        estimator.update(GRADS, state)


@pytest.mark.parametrize(
    ("estimator", "takes_root", "is_moving_average"),
    [
        (adamjax.moments, True, True),
        (adamjax.sum_of_squares, True, False),
        (adamjax.infinity_moments, False, False),
    ],
)
def test_each_estimator_says_what_its_second_moment_is(
    estimator, takes_root: bool, is_moving_average: bool
) -> None:
    transform = estimator()
    estimates, _ = transform.update(GRADS, transform.init(PARAMS))
    assert estimates.takes_root is takes_root
    assert estimates.is_moving_average is is_moving_average


def test_the_nesterov_look_ahead_raw_and_bias_corrected_matches_the_formula() -> None:
    """After two steps, ``first_moment()`` is ``b1 m_2 + (1 - b1) g_2`` and the corrected one
    ``b1 m_2 / (1 - b1^3) + (1 - b1) g_2 / (1 - b1^2)`` (float64 NumPy reference)."""
    b1, b2 = 0.8, 0.99
    g1 = np.array([0.3, -1.2, 2.0])
    g2 = np.array([-0.5, 0.4, 1.5])
    m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
    raw = b1 * m2 + (1 - b1) * g2
    corrected = b1 * m2 / (1 - b1**3) + (1 - b1) * g2 / (1 - b1**2)

    params = jnp.zeros(3, jnp.float64)
    estimator = adamjax.moments(b1, b2, nesterov=True)
    state = estimator.init(params)
    _, state = estimator.update(jnp.asarray(g1), state)
    estimates, _ = estimator.update(jnp.asarray(g2), state)
    np.testing.assert_allclose(np.asarray(estimates.first_moment()), raw, rtol=1e-13)

    fixed, _ = adamjax.bias_correction().update(estimates, adamjax.EmptyState())
    assert not fixed.nesterov  # the look-ahead is taken: normalize() reads mu as it is
    np.testing.assert_allclose(np.asarray(fixed.first_moment()), corrected, rtol=1e-13)


def test_flat_params_iterate_over_their_buffers() -> None:
    params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    params["h"] = jnp.ones(4, jnp.float64)
    flat_params = adamjax.flat.ravel(params)
    buffers = list(flat_params)
    assert len(buffers) == 2  # one per dtype
    assert all(a is b for a, b in zip(buffers, flat_params.buffers, strict=True))
