"""adamjax: Adam and its family as small, composable, pure JAX transforms over pytrees."""

from adamjax import presets as presets
from adamjax import schedules as schedules
from adamjax.aliases import adagrad as adagrad
from adamjax.aliases import adam as adam
from adamjax.aliases import adamax as adamax
from adamjax.aliases import adamw as adamw
from adamjax.aliases import amsgrad as amsgrad
from adamjax.aliases import nadam as nadam
from adamjax.aliases import normalized_gradient as normalized_gradient
from adamjax.aliases import rmsprop as rmsprop
from adamjax.aliases import sgd as sgd
from adamjax.apply import apply_updates as apply_updates
from adamjax.base import EmptyState as EmptyState
from adamjax.base import GradientTransformation as GradientTransformation
from adamjax.combine import chain as chain
from adamjax.correction import bias_correction as bias_correction
from adamjax.decay import add_decayed_weights as add_decayed_weights
from adamjax.moments import MaxSecondMomentState as MaxSecondMomentState
from adamjax.moments import Moments as Moments
from adamjax.moments import MomentsState as MomentsState
from adamjax.moments import infinity_moments as infinity_moments
from adamjax.moments import max_second_moment as max_second_moment
from adamjax.moments import moments as moments
from adamjax.moments import sum_of_squares as sum_of_squares
from adamjax.normalize import normalize as normalize
from adamjax.scale import ScheduleState as ScheduleState
from adamjax.scale import TraceState as TraceState
from adamjax.scale import scale as scale
from adamjax.scale import scale_by_learning_rate as scale_by_learning_rate
from adamjax.scale import trace as trace

__version__ = "0.1.0"

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "MaxSecondMomentState",
    "Moments",
    "MomentsState",
    "ScheduleState",
    "TraceState",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "amsgrad",
    "apply_updates",
    "bias_correction",
    "chain",
    "infinity_moments",
    "max_second_moment",
    "moments",
    "nadam",
    "normalize",
    "normalized_gradient",
    "presets",
    "rmsprop",
    "scale",
    "scale_by_learning_rate",
    "schedules",
    "sgd",
    "sum_of_squares",
    "trace",
]
