// First: silence tfjs's Node.js banner before any tensor exists (see quiet-node-banner.ts).
import './quiet-node-banner.js';
export { FlintError, MisconfigurationError, CheckpointError, ExportError, DataError, BackendError, LoggerError, InterruptedError, attachStepContext, stepErrorContext } from './errors.js';
export type { FlintErrorCode, InterruptSignal, InterruptPosition, StepErrorContext } from './errors.js';
export { tapeGradients } from './gradients.js';
export type { TapeResult } from './gradients.js';
export { Callback } from './hooks.js';
export type { Stage, Phase, RunningStage, EvaluationPhase } from './stages.js';
export type {
  CallbackHooks,
  CallbackHookName,
  ModuleHooks,
  HookModule,
  Metrics,
  StopReason,
  EpochRecord,
  FitProgress,
  TrainerContext,
  CheckpointData,
  HParams,
  RunStatus,
  Logger,
} from './hooks.js';
export { Module, isTfLayer } from './module.js';
export type { NamedParameter, SummaryRow, ModuleSummary, TfLayerLike, ModuleChild } from './module.js';
export { LightningModule } from './lightning-module.js';
export type { TrainingStepOutput, ManualStepOutput, LogOptions } from './lightning-module.js';
export {
  OptimizerWrapper,
  GradStore,
  normalizeOptimizers,
  getLearningRate,
  setLearningRate,
  getMomentum,
  setMomentum,
  clipGradients,
  globalNorm,
} from './optimization.js';
export type { LRScheduler, LRSchedulerConfig, LRSchedulerConfigInput, OptimizerConfig, OptimizersReturn } from './optimization.js';
export { FlintAdam, adam, adamOptionsSchema } from './optim/adam.js';
export type { AdamOptions } from './optim/adam.js';
export { APPLY_ADAM_KERNEL } from './optim/adam-kernel.js';
export type { AdamCompiledSlot, AdamKernelSlot, AdamStep, AdamStepScalars, ApplyAdamAttrs, RawHandle } from './optim/adam-kernel.js';
export { MetricCollector, isLoggableMetric } from './metric-collector.js';
export type { Reduce, HookKind, ResultLoop, CollectedMetrics, LoggableMetric, LogScope, PendingCalls } from './metric-collector.js';
export { parseOptions } from './options.js';
export * from './seed.js';
export * from './data/index.js';
export { Linear, linearOptionsSchema, ACTIVATIONS, Dropout, Sequential, DENSE_KERNEL, ACTIVATION_GRAD_KERNEL } from './nn.js';
export type { Activation, DenseActivation, LinearOptions, SequentialItem } from './nn.js';
export * from './layers/index.js';
export { crossEntropy, crossEntropyOptionsSchema, SOFTMAX_CROSS_ENTROPY_KERNEL } from './losses.js';
export type { CrossEntropyOptions } from './losses.js';
export {
  HostTensor,
  encodeCheckpoint,
  decodeCheckpoint,
  saveCheckpointFile,
  loadCheckpointFile,
  readCheckpointHeader,
  readCheckpointHeaderSync,
  checkpointV1Schema,
  checkpointHeaderSchema,
  captureOptimizerState,
  restoreOptimizerState,
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
} from './checkpoint.js';
export type { Checkpoint, CheckpointHeader, CheckpointObject, FullCheckpoint, OptimizerState } from './checkpoint.js';
export { wholeNumber, positiveInt, durationSchema, durationSeconds, tfOptimizerSchema, checkTfOptimizer, lrSchedulerConfigSchema } from './schemas.js';
export type { Duration } from './schemas.js';
export { writeFileAtomic, writeFileAtomicSync, atomicTempPath, removeStaleTempFiles } from './atomic-write.js';
export { FLINT_VERSION } from './version.js';
export { fileHandler, FileIOHandler, writeFolderAtomic, MODEL_JSON, WEIGHTS_BIN } from './file-io.js';
export { exportModule, toLayersModel, torchPlan, registerLayerExporter, exportOptionsSchema } from './export.js';
export type { Exportable, ExportOptions, ExportResult, LayerExport, LayerExportContext, LayerExporter, TorchModule, TorchParam, TorchPlan } from './export.js';
export { exportSafetensors, importSafetensors, encodeSafetensors, decodeSafetensors } from './safetensors.js';
export type { SafetensorsEntry, SafetensorsResult } from './safetensors.js';
