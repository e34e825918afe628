"""The public optimizers by name, for tests that run every one of them.

tests/test_public_api.py checks these lists against ``adamjax.__all__``, so that a new optimizer
cannot be left out of the tests that loop over them.
"""

# the optax-named optimizers of the Adam core and their plain relatives
ALIASES = (
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "nadam",
    "normalized_gradient",
    "rmsprop",
    "sgd",
)
# the newer Adam-family optimizers, tested one by one in tests/test_family_*.py and together in
# tests/test_family_composes.py; the per-argument sweeps run their costlier variants (more
# shapes, more dtypes) with the slow set
NEWER_FAMILY = (
    "adafactor",
    "adam_atan2",
    "adam_mini",
    "adan",
    "ademamix",
    "adopt",
    "lamb",
    "schedule_free_adamw",
    "stable_adamw",
)
# the Adam family beyond the core: rectified, belief, Yogi and sign-based rules, and the newer
FAMILY = ("radam", "adabelief", "yogi", "lion", "nadamw", "adamaxw", *NEWER_FAMILY)
# every public optimizer: a function of a learning rate that returns a whole optimizer
OPTIMIZERS = (*ALIASES, *FAMILY, "lazy_adam")
# public building blocks that also take a learning rate first, but are not optimizers
LEARNING_RATE_BLOCKS = ("scale_by_learning_rate", "monitor", "monitored")
