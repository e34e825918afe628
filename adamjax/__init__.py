"""adamjax: Adam and its family as small, composable, pure JAX transforms over pytrees."""

from adamjax import ensemble as ensemble
from adamjax import flat as flat
from adamjax import presets as presets
from adamjax import schedules as schedules
from adamjax import sweep as sweep
from adamjax._accumulate import AccumulateState as AccumulateState
from adamjax._accumulate import accumulate_gradients as accumulate_gradients
from adamjax._aliases import adagrad as adagrad
from adamjax._aliases import adam as adam
from adamjax._aliases import adamax as adamax
from adamjax._aliases import adamw as adamw
from adamjax._aliases import amsgrad as amsgrad
from adamjax._aliases import nadam as nadam
from adamjax._aliases import normalized_gradient as normalized_gradient
from adamjax._aliases import rmsprop as rmsprop
from adamjax._aliases import sgd as sgd
from adamjax._apply import apply_updates as apply_updates
from adamjax._base import EmptyState as EmptyState
from adamjax._base import GradientTransformation as GradientTransformation
from adamjax._base import declare_stage as declare_stage
from adamjax._checkpoint import restore_checkpoint as restore_checkpoint
from adamjax._checkpoint import save_checkpoint as save_checkpoint
from adamjax._clip import clip as clip
from adamjax._clip import clip_by_global_norm as clip_by_global_norm
from adamjax._clip import global_norm as global_norm
from adamjax._combine import chain as chain
from adamjax._correction import bias_correction as bias_correction
from adamjax._decay import add_decayed_weights as add_decayed_weights
from adamjax._diagnostics import DiagnosticsState as DiagnosticsState
from adamjax._diagnostics import bias_correction_factors as bias_correction_factors
from adamjax._diagnostics import effective_step_size as effective_step_size
from adamjax._diagnostics import moments_from_state as moments_from_state
from adamjax._diagnostics import monitor as monitor
from adamjax._diagnostics import signal_to_noise as signal_to_noise
from adamjax._diagnostics import update_rms as update_rms
from adamjax._finite import SkipNonfiniteState as SkipNonfiniteState
from adamjax._finite import all_finite as all_finite
from adamjax._finite import skip_nonfinite as skip_nonfinite
from adamjax._lazy import LazyAdamState as LazyAdamState
from adamjax._lazy import lazy_adam as lazy_adam
from adamjax._moments import InfinityNormState as InfinityNormState
from adamjax._moments import MaxSecondMomentState as MaxSecondMomentState
from adamjax._moments import Moments as Moments
from adamjax._moments import MomentsState as MomentsState
from adamjax._moments import SumOfSquaresState as SumOfSquaresState
from adamjax._moments import infinity_moments as infinity_moments
from adamjax._moments import max_second_moment as max_second_moment
from adamjax._moments import moments as moments
from adamjax._moments import sum_of_squares as sum_of_squares
from adamjax._normalize import normalize as normalize
from adamjax._partition import PartitionState as PartitionState
from adamjax._partition import partition as partition
from adamjax._partition import set_to_zero as set_to_zero
from adamjax._rectified import BeliefMomentsState as BeliefMomentsState
from adamjax._rectified import YogiMomentsState as YogiMomentsState
from adamjax._rectified import adabelief as adabelief
from adamjax._rectified import belief_moments as belief_moments
from adamjax._rectified import radam as radam
from adamjax._rectified import rectified_normalize as rectified_normalize
from adamjax._rectified import yogi as yogi
from adamjax._rectified import yogi_moments as yogi_moments
from adamjax._scale import ScheduleState as ScheduleState
from adamjax._scale import TraceState as TraceState
from adamjax._scale import scale as scale
from adamjax._scale import scale_by_learning_rate as scale_by_learning_rate
from adamjax._scale import trace as trace
from adamjax._sharding import abstract_init as abstract_init
from adamjax._sharding import state_shardings as state_shardings
from adamjax._sharding import zero1_shardings as zero1_shardings
from adamjax._sign_family import LionState as LionState
from adamjax._sign_family import adamaxw as adamaxw
from adamjax._sign_family import lion as lion
from adamjax._sign_family import lion_direction as lion_direction
from adamjax._sign_family import nadamw as nadamw

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
