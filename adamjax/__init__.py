"""adamjax: Adam and its family as small, composable, pure JAX transforms over pytrees."""

from adamjax import ensemble as ensemble
from adamjax import flat as flat
from adamjax import presets as presets
from adamjax import schedules as schedules
from adamjax import sweep as sweep
from adamjax.accumulate import AccumulateState as AccumulateState
from adamjax.accumulate import accumulate_gradients as accumulate_gradients
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
from adamjax.base import declare_stage as declare_stage
from adamjax.checkpoint import restore_checkpoint as restore_checkpoint
from adamjax.checkpoint import save_checkpoint as save_checkpoint
from adamjax.clip import clip as clip
from adamjax.clip import clip_by_global_norm as clip_by_global_norm
from adamjax.clip import global_norm as global_norm
from adamjax.combine import chain as chain
from adamjax.correction import bias_correction as bias_correction
from adamjax.decay import add_decayed_weights as add_decayed_weights
from adamjax.diagnostics import DiagnosticsState as DiagnosticsState
from adamjax.diagnostics import bias_correction_factors as bias_correction_factors
from adamjax.diagnostics import effective_step_size as effective_step_size
from adamjax.diagnostics import moments_from_state as moments_from_state
from adamjax.diagnostics import monitor as monitor
from adamjax.diagnostics import signal_to_noise as signal_to_noise
from adamjax.diagnostics import update_rms as update_rms
from adamjax.finite import SkipNonfiniteState as SkipNonfiniteState
from adamjax.finite import all_finite as all_finite
from adamjax.finite import skip_nonfinite as skip_nonfinite
from adamjax.lazy import LazyAdamState as LazyAdamState
from adamjax.lazy import lazy_adam as lazy_adam
from adamjax.moments import InfinityNormState as InfinityNormState
from adamjax.moments import MaxSecondMomentState as MaxSecondMomentState
from adamjax.moments import Moments as Moments
from adamjax.moments import MomentsState as MomentsState
from adamjax.moments import SumOfSquaresState as SumOfSquaresState
from adamjax.moments import infinity_moments as infinity_moments
from adamjax.moments import max_second_moment as max_second_moment
from adamjax.moments import moments as moments
from adamjax.moments import sum_of_squares as sum_of_squares
from adamjax.normalize import normalize as normalize
from adamjax.partition import PartitionState as PartitionState
from adamjax.partition import partition as partition
from adamjax.partition import set_to_zero as set_to_zero
from adamjax.rectified import BeliefMomentsState as BeliefMomentsState
from adamjax.rectified import YogiMomentsState as YogiMomentsState
from adamjax.rectified import adabelief as adabelief
from adamjax.rectified import belief_moments as belief_moments
from adamjax.rectified import radam as radam
from adamjax.rectified import rectified_normalize as rectified_normalize
from adamjax.rectified import yogi as yogi
from adamjax.rectified import yogi_moments as yogi_moments
from adamjax.scale import ScheduleState as ScheduleState
from adamjax.scale import TraceState as TraceState
from adamjax.scale import scale as scale
from adamjax.scale import scale_by_learning_rate as scale_by_learning_rate
from adamjax.scale import trace as trace
from adamjax.sharding import abstract_init as abstract_init
from adamjax.sharding import state_shardings as state_shardings
from adamjax.sharding import zero1_shardings as zero1_shardings
from adamjax.sign_family import LionState as LionState
from adamjax.sign_family import adamaxw as adamaxw
from adamjax.sign_family import lion as lion
from adamjax.sign_family import lion_direction as lion_direction
from adamjax.sign_family import nadamw as nadamw

__version__ = "0.1.0"

__all__ = [
    "AccumulateState",
    "BeliefMomentsState",
    "DiagnosticsState",
    "EmptyState",
    "GradientTransformation",
    "InfinityNormState",
    "LazyAdamState",
    "LionState",
    "MaxSecondMomentState",
    "Moments",
    "MomentsState",
    "PartitionState",
    "ScheduleState",
    "SkipNonfiniteState",
    "SumOfSquaresState",
    "TraceState",
    "YogiMomentsState",
    "abstract_init",
    "accumulate_gradients",
    "adabelief",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "add_decayed_weights",
    "all_finite",
    "amsgrad",
    "apply_updates",
    "belief_moments",
    "bias_correction",
    "bias_correction_factors",
    "chain",
    "clip",
    "clip_by_global_norm",
    "declare_stage",
    "effective_step_size",
    "ensemble",
    "flat",
    "global_norm",
    "infinity_moments",
    "lazy_adam",
    "lion",
    "lion_direction",
    "max_second_moment",
    "moments",
    "moments_from_state",
    "monitor",
    "nadam",
    "nadamw",
    "normalize",
    "normalized_gradient",
    "partition",
    "presets",
    "radam",
    "rectified_normalize",
    "restore_checkpoint",
    "rmsprop",
    "save_checkpoint",
    "scale",
    "scale_by_learning_rate",
    "schedules",
    "set_to_zero",
    "sgd",
    "signal_to_noise",
    "skip_nonfinite",
    "state_shardings",
    "sum_of_squares",
    "sweep",
    "trace",
    "update_rms",
    "yogi",
    "yogi_moments",
    "zero1_shardings",
]
