r"""The state :func:`adamjax.monitor` keeps: per-leaf summaries, stacked into three arrays.

One column per leaf of the params (in ``jax.tree.leaves`` order) and one row per quantity, so
carrying the state through a compiled step costs three arrays whatever the number of leaves.
Each row reads back as a tree with the params' structure through a property of the same name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["FACTORS", "SUMMARIES", "DiagnosticsState"]

FACTORS = ("bias_correction1", "bias_correction2")
"""The rows of :attr:`DiagnosticsState.factors`, in order."""

SUMMARIES = ("step_size_mean", "step_size_min", "step_size_max", "snr_mean", "update_rms")
"""The rows of :attr:`DiagnosticsState.summaries`, in order."""


def _row(stub: Callable[[DiagnosticsState], Any]) -> Callable[[DiagnosticsState], Any]:
    """A reader of the row that ``stub``'s name labels in ``FACTORS`` or ``SUMMARIES``, as a
    tree with the params' structure; ``stub`` gives only the name and the docstring."""
    name = stub.__name__
    array, names = ("factors", FACTORS) if name in FACTORS else ("summaries", SUMMARIES)
    row = names.index(name)

    @functools.wraps(stub)
    def read(state: DiagnosticsState) -> Any:
        values = getattr(state, array)
        columns = [values[..., row, leaf] for leaf in range(state.treedef.num_leaves)]
        return jax.tree.unflatten(state.treedef, columns)

    return read


@dataclasses.dataclass(frozen=True)
class DiagnosticsState:
    r"""State of :func:`adamjax.monitor`: per-leaf summaries of the last recorded step.

    The values are kept stacked, one column per leaf of the params (in ``jax.tree.leaves``
    order), so that the state is three arrays whatever the number of leaves. Read them as trees
    with the structure of the params through the properties (``state.update_rms["w"]``) or
    :meth:`as_dict`. Under ``vmap`` or ``scan`` the arrays gain leading axes, and each per-leaf
    value carries them too.

    All values are float32, or float64 if some param is float64 (or complex128). Before the
    first update they are all zero.

    Attributes:
        count: shape ``(...)``, int32: :math:`t` of the moments last seen.
        factors: shape ``(..., 2, leaves)``: the rows named in ``FACTORS`` per leaf.
        summaries: shape ``(..., 5, leaves)``: the rows named in ``SUMMARIES`` per leaf.
        treedef: the params' tree structure (static).
    """

    count: jax.Array
    factors: jax.Array
    summaries: jax.Array
    treedef: Any  # jax.tree_util.PyTreeDef

    @property
    @_row
    def bias_correction1(self) -> Any:
        r"""Per leaf :math:`1 - b_1^t` (1 without a first moment)."""

    @property
    @_row
    def bias_correction2(self) -> Any:
        r"""Per leaf :math:`1 - b_2^t` (1 for a running sum or an infinity norm)."""

    @property
    @_row
    def step_size_mean(self) -> Any:
        r"""Per leaf mean of the effective step size
        :math:`\eta = \alpha / (\sqrt{\hat v + \epsilon_{root}} + \epsilon)`."""

    @property
    @_row
    def step_size_min(self) -> Any:
        r"""Per leaf minimum of :math:`\eta`."""

    @property
    @_row
    def step_size_max(self) -> Any:
        r"""Per leaf maximum of :math:`\eta`."""

    @property
    @_row
    def snr_mean(self) -> Any:
        r"""Per leaf mean of :math:`|\hat m| / \sqrt{\hat v}` (0 where :math:`\hat v = 0`)."""

    @property
    @_row
    def update_rms(self) -> Any:
        r"""Per leaf :math:`\sqrt{\mathrm{mean}(|\eta \hat m|^2)}`, the RMS before weight decay."""

    def as_dict(self) -> dict[str, Any]:
        """Every recorded quantity as a tree with the params' structure, keyed by name.

        Returns:
            ``{name: tree}`` for the names in ``FACTORS`` and ``SUMMARIES``, in that order.
        """
        return {name: getattr(self, name) for name in (*FACTORS, *SUMMARIES)}


jax.tree_util.register_dataclass(
    DiagnosticsState, data_fields=["count", "factors", "summaries"], meta_fields=["treedef"]
)
