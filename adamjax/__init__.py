"""adamjax: Adam and its family as small, composable, pure JAX transforms over pytrees."""

from adamjax import ensemble as ensemble
from adamjax import flat as flat
from adamjax import presets as presets
from adamjax import schedules as schedules
from adamjax import sweep as sweep
from adamjax._accumulate import AccumulateState as AccumulateState
from adamjax._accumulate import accumulate_gradients as accumulate_gradients
from adamjax._adabelief import BeliefMomentsState as BeliefMomentsState
from adamjax._adabelief import adabelief as adabelief
from adamjax._adabelief import belief_moments as belief_moments
from adamjax._adafactor import FactoredSecondMomentState as FactoredSecondMomentState
from adamjax._adafactor import adafactor as adafactor
from adamjax._adafactor import factored_second_moment as factored_second_moment
from adamjax._adam_aliases import adam as adam
from adamjax._adam_aliases import adamax as adamax
from adamjax._adam_aliases import amsgrad as amsgrad
from adamjax._adam_aliases import nadam as nadam
from adamjax._adam_atan2 import adam_atan2 as adam_atan2
from adamjax._adam_atan2 import atan2_normalize as atan2_normalize
from adamjax._adam_mini import MiniMomentsState as MiniMomentsState
from adamjax._adam_mini import adam_mini as adam_mini
from adamjax._adam_mini import mini_moments as mini_moments
from adamjax._adam_mini import per_row as per_row
from adamjax._adan import AdanMomentsState as AdanMomentsState
from adamjax._adan import adan as adan
from adamjax._adan import adan_moments as adan_moments
from adamjax._ademamix import SlowMomentumState as SlowMomentumState
from adamjax._ademamix import ademamix as ademamix
from adamjax._ademamix import slow_momentum as slow_momentum
from adamjax._adopt import AdoptNormalizeState as AdoptNormalizeState
from adamjax._adopt import EmaMomentumState as EmaMomentumState
from adamjax._adopt import adopt as adopt
from adamjax._adopt import adopt_normalize as adopt_normalize
from adamjax._adopt import clip_by_schedule as clip_by_schedule
from adamjax._adopt import ema_momentum as ema_momentum
from adamjax._adopt import quarter_power as quarter_power
from adamjax._apply import apply_updates as apply_updates
from adamjax._base import EmptyState as EmptyState
from adamjax._base import GradientTransformation as GradientTransformation
from adamjax._base import declare_stage as declare_stage
from adamjax._block_rms import clip_by_block_rms as clip_by_block_rms
from adamjax._block_rms import scale_by_param_block_rms as scale_by_param_block_rms
from adamjax._blockwise import blockwise_int8 as blockwise_int8
from adamjax._cautious import cautious as cautious
from adamjax._checkpoint import restore_checkpoint as restore_checkpoint
from adamjax._checkpoint import save_checkpoint as save_checkpoint
from adamjax._clip import clip as clip
from adamjax._clip import clip_by_global_norm as clip_by_global_norm
from adamjax._clip import global_norm as global_norm
from adamjax._combine import chain as chain
from adamjax._compensated import CompensatedState as CompensatedState
from adamjax._compensated import compensated as compensated
from adamjax._correction import bias_correction as bias_correction
from adamjax._decay import add_decayed_weights as add_decayed_weights
from adamjax._decoupled_aliases import adamaxw as adamaxw
from adamjax._decoupled_aliases import adamw as adamw
from adamjax._decoupled_aliases import nadamw as nadamw
from adamjax._diagnostics import bias_correction_factors as bias_correction_factors
from adamjax._diagnostics import effective_step_size as effective_step_size
from adamjax._diagnostics import moments_from_state as moments_from_state
from adamjax._diagnostics import signal_to_noise as signal_to_noise
from adamjax._diagnostics import update_rms as update_rms
from adamjax._diagnostics_state import DiagnosticsState as DiagnosticsState
from adamjax._estimates import Moments as Moments
from adamjax._finite import SkipNonfiniteState as SkipNonfiniteState
from adamjax._finite import all_finite as all_finite
from adamjax._finite import skip_nonfinite as skip_nonfinite
from adamjax._lamb import lamb as lamb
from adamjax._lamb import trust_ratio as trust_ratio
from adamjax._lazy import LazyAdamState as LazyAdamState
from adamjax._lazy import lazy_adam as lazy_adam
from adamjax._lion import LionState as LionState
from adamjax._lion import lion as lion
from adamjax._lion import lion_direction as lion_direction
from adamjax._moments import InfinityNormState as InfinityNormState
from adamjax._moments import MaxSecondMomentState as MaxSecondMomentState
from adamjax._moments import MomentsState as MomentsState
from adamjax._moments import SumOfSquaresState as SumOfSquaresState
from adamjax._moments import infinity_moments as infinity_moments
from adamjax._moments import max_second_moment as max_second_moment
from adamjax._moments import moments as moments
from adamjax._moments import sum_of_squares as sum_of_squares
from adamjax._monitor import monitor as monitor
from adamjax._monitor import monitored as monitored
from adamjax._normalize import normalize as normalize
from adamjax._partition import PartitionState as PartitionState
from adamjax._partition import partition as partition
from adamjax._partition import set_to_zero as set_to_zero
from adamjax._rectified import radam as radam
from adamjax._rectified import rectified_normalize as rectified_normalize
from adamjax._scale import ScheduleState as ScheduleState
from adamjax._scale import TraceState as TraceState
from adamjax._scale import scale as scale
from adamjax._scale import scale_by_learning_rate as scale_by_learning_rate
from adamjax._scale import trace as trace
from adamjax._schedule_free import ScheduleFreeState as ScheduleFreeState
from adamjax._schedule_free import schedule_free as schedule_free
from adamjax._schedule_free import schedule_free_adamw as schedule_free_adamw
from adamjax._schedule_free import schedule_free_eval_params as schedule_free_eval_params
from adamjax._sgd_aliases import adagrad as adagrad
from adamjax._sgd_aliases import normalized_gradient as normalized_gradient
from adamjax._sgd_aliases import rmsprop as rmsprop
from adamjax._sgd_aliases import sgd as sgd
from adamjax._sharding import abstract_init as abstract_init
from adamjax._sharding import state_shardings as state_shardings
from adamjax._sharding import zero1_shardings as zero1_shardings
from adamjax._stable_adamw import stable_adamw as stable_adamw
from adamjax._stable_adamw import update_clipping as update_clipping
from adamjax._yogi import YogiMomentsState as YogiMomentsState
from adamjax._yogi import yogi as yogi
from adamjax._yogi import yogi_moments as yogi_moments

__version__ = "0.1.0"

__all__ = [
    "AccumulateState",
    "AdanMomentsState",
    "AdoptNormalizeState",
    "BeliefMomentsState",
    "CompensatedState",
    "DiagnosticsState",
    "EmaMomentumState",
    "EmptyState",
    "FactoredSecondMomentState",
    "GradientTransformation",
    "InfinityNormState",
    "LazyAdamState",
    "LionState",
    "MaxSecondMomentState",
    "MiniMomentsState",
    "Moments",
    "MomentsState",
    "PartitionState",
    "ScheduleFreeState",
    "ScheduleState",
    "SkipNonfiniteState",
    "SlowMomentumState",
    "SumOfSquaresState",
    "TraceState",
    "YogiMomentsState",
    "abstract_init",
    "accumulate_gradients",
    "adabelief",
    "adafactor",
    "adagrad",
    "adam",
    "adam_atan2",
    "adam_mini",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "adan_moments",
    "add_decayed_weights",
    "ademamix",
    "adopt",
    "adopt_normalize",
    "all_finite",
    "amsgrad",
    "apply_updates",
    "atan2_normalize",
    "belief_moments",
    "bias_correction",
    "bias_correction_factors",
    "blockwise_int8",
    "cautious",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_schedule",
    "compensated",
    "declare_stage",
    "effective_step_size",
    "ema_momentum",
    "ensemble",
    "factored_second_moment",
    "flat",
    "global_norm",
    "infinity_moments",
    "lamb",
    "lazy_adam",
    "lion",
    "lion_direction",
    "max_second_moment",
    "mini_moments",
    "moments",
    "moments_from_state",
    "monitor",
    "monitored",
    "nadam",
    "nadamw",
    "normalize",
    "normalized_gradient",
    "partition",
    "per_row",
    "presets",
    "quarter_power",
    "radam",
    "rectified_normalize",
    "restore_checkpoint",
    "rmsprop",
    "save_checkpoint",
    "scale",
    "scale_by_learning_rate",
    "scale_by_param_block_rms",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedules",
    "set_to_zero",
    "sgd",
    "signal_to_noise",
    "skip_nonfinite",
    "slow_momentum",
    "stable_adamw",
    "state_shardings",
    "sum_of_squares",
    "sweep",
    "trace",
    "trust_ratio",
    "update_clipping",
    "update_rms",
    "yogi",
    "yogi_moments",
    "zero1_shardings",
]
