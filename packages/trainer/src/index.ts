export { Trainer } from './trainer.js';
export type { DataInput, FitOptions } from './trainer.js';
export { trainerOptionsSchema } from './trainer-options.js';
export type { TrainerOptions, ResolvedTrainerOptions } from './trainer-options.js';
export { selectBackend, describeChoice } from './accelerator.js';
export type { AcceleratorName, BackendName, BackendChoice, BackendRequest } from './accelerator.js';
export { ProgressBar } from './progress-bar.js';
export type { ProgressStream } from './progress-bar.js';
export type { TrainerEvents } from './events.js';
export type { HookTiming } from './internal/hook-dispatcher.js';
// The backends' own API moved to @flint/backends; re-exported so that @flint/trainer's API stays as it was.
export {
  setupNative,
  setupNativeOptionsSchema,
  probeNativeBackend,
  quietTensorFlowEnv,
  installNativeKernels,
  uninstallNativeKernels,
  nativeKernelsInstalled,
  installWasmImprovements,
  uninstallWasmImprovements,
  wasmImprovementsOptionsSchema,
} from '@flint/backends';
export type {
  SetupNativeOptions,
  SetupNativeReport,
  NativeProbeResult,
  ProbeNativeOptions,
  NativeKernelsReport,
  WasmImprovementsOptions,
  WasmSetupReport,
} from '@flint/backends';
export { lrFind, lrFindOptionsSchema, LRFinderResult, rangeTestLr, gradientAlong } from './tuner/lr-find.js';
export type { LrFindOptions, SuggestionOptions, LrPlotOptions } from './tuner/lr-find.js';
export { scaleBatchSize, scaleBatchSizeOptionsSchema, isOutOfMemoryError, lastBatchSizeTrials } from './tuner/scale-batch-size.js';
export type { ScaleBatchSizeOptions, BatchSizeTrial } from './tuner/scale-batch-size.js';
