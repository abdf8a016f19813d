export { MonitorCallback, modeSchema, minDeltaSchema, readMonitoredMetric, isStaleMetric, isFitCheck } from './monitor-callback.js';
export type { MonitorMode, MonitorSettings, MonitorSource, ReadMetricOptions } from './monitor-callback.js';
export { EarlyStopping, earlyStoppingOptionsSchema } from './early-stopping.js';
export type { EarlyStoppingOptions, EarlyStoppingTrigger } from './early-stopping.js';
export { ModelCheckpoint, modelCheckpointOptionsSchema, LAST_CHECKPOINT_NAME } from './model-checkpoint.js';
export type { ModelCheckpointOptions } from './model-checkpoint.js';
export { DropoutScheduler, dropoutSchedulerOptionsSchema, dropoutScheduleSchema, findDropoutLayers, scheduledRate } from './dropout-scheduler.js';
export type { DropoutSchedulerOptions, DropoutSchedule, DropoutScheduleFn } from './dropout-scheduler.js';
export {
  ChainableLRScheduler,
  ClosedFormLRScheduler,
  StepLR,
  MultiStepLR,
  ConstantLR,
  LinearLR,
  ExponentialLR,
  PolynomialLR,
  LambdaLR,
  MultiplicativeLR,
  CosineAnnealingLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  OneCycleLR,
  SequentialLR,
  ChainedScheduler,
  stepLROptionsSchema,
  multiStepLROptionsSchema,
  constantLROptionsSchema,
  linearLROptionsSchema,
  exponentialLROptionsSchema,
  polynomialLROptionsSchema,
  lambdaLROptionsSchema,
  multiplicativeLROptionsSchema,
  cosineAnnealingLROptionsSchema,
  cosineAnnealingWarmRestartsOptionsSchema,
  cyclicLROptionsSchema,
  oneCycleLROptionsSchema,
  sequentialLROptionsSchema,
  chainedSchedulerOptionsSchema,
} from './lr-schedulers.js';
export type {
  StepLROptions,
  MultiStepLROptions,
  ConstantLROptions,
  LinearLROptions,
  ExponentialLROptions,
  PolynomialLROptions,
  LambdaLROptions,
  MultiplicativeLROptions,
  CosineAnnealingLROptions,
  CosineAnnealingWarmRestartsOptions,
  CyclicLROptions,
  OneCycleLROptions,
  SequentialLROptions,
  ChainedSchedulerOptions,
} from './lr-schedulers.js';
export { ReduceLROnPlateau, reduceLROnPlateauOptionsSchema } from './reduce-lr-on-plateau.js';
export type { ReduceLROnPlateauOptions } from './reduce-lr-on-plateau.js';
export { LearningRateMonitor, learningRateMonitorOptionsSchema } from './learning-rate-monitor.js';
export type { LearningRateMonitorOptions } from './learning-rate-monitor.js';
export { OverfittingMonitor, overfittingMonitorOptionsSchema, judgeFit, generalizationGap } from './overfitting-monitor.js';
export type { OverfittingMonitorOptions, EpochFit, FitVerdict, JudgeSettings } from './overfitting-monitor.js';
export { LambdaCallback, lambdaCallbackOptionsSchema } from './lambda-callback.js';
export type { LambdaCallbackOptions } from './lambda-callback.js';
export { Timer, timerOptionsSchema } from './timer.js';
export type { TimerOptions, TimedStage } from './timer.js';
export { ModelSummary, modelSummaryOptionsSchema } from './model-summary.js';
export type { ModelSummaryOptions } from './model-summary.js';
export { DeviceStatsMonitor, deviceStatsMonitorOptionsSchema, deviceStats } from './device-stats-monitor.js';
export type { DeviceStatsMonitorOptions } from './device-stats-monitor.js';
export { BasePredictionWriter, JsonPredictionWriter, basePredictionWriterOptionsSchema, jsonPredictionWriterOptionsSchema } from './prediction-writer.js';
export type { BasePredictionWriterOptions, JsonPredictionWriterOptions, HostPrediction, Prediction } from './prediction-writer.js';
export { GradientAccumulationScheduler } from './gradient-accumulation-scheduler.js';
export { StochasticWeightAveraging, stochasticWeightAveragingOptionsSchema } from './stochastic-weight-averaging.js';
export type { StochasticWeightAveragingOptions } from './stochastic-weight-averaging.js';
export { BackboneFinetuning, backboneFinetuningOptionsSchema } from './backbone-finetuning.js';
export type { BackboneFinetuningOptions } from './backbone-finetuning.js';
