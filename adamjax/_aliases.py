"""The classic optimizers under optax's names, each a short chain of building blocks.

Every alias returns :func:`adamjax.chain` of public transforms, so each step of its rule can be
used, replaced or inspected on its own. They are written, one idea to a module, in

* ``_adam_aliases``: :func:`~adamjax.adam`, :func:`~adamjax.nadam`, :func:`~adamjax.amsgrad`,
  :func:`~adamjax.adamax`;
* ``_decoupled_aliases``: :func:`~adamjax.adamw` (and NAdamW, AdamaxW), Adam with decoupled
  weight decay;
* ``_sgd_aliases``: :func:`~adamjax.sgd`, :func:`~adamjax.rmsprop`, :func:`~adamjax.adagrad`,
  :func:`~adamjax.normalized_gradient`, which keep no first-moment average.

The later members of the family (RAdam, AdaBelief, Yogi, Lion, NAdamW, AdamaxW) are in their
own modules.
"""

from __future__ import annotations

from adamjax._adam_aliases import adam, adamax, amsgrad, nadam
from adamjax._decoupled_aliases import adamw
from adamjax._sgd_aliases import adagrad, normalized_gradient, rmsprop, sgd

__all__ = [
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "nadam",
    "normalized_gradient",
    "rmsprop",
    "sgd",
]
