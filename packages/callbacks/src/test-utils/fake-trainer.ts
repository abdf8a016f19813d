import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  FLINT_VERSION,
  saveCheckpointFile,
  type Callback,
  type Checkpoint,
  type EpochRecord,
  type FitProgress,
  type Logger,
  type LRSchedulerConfig,
  type Metrics,
  type OptimizerWrapper,
  type RunningStage,
  type Stage,
  type StopReason,
  type TrainerContext,
} from '@flint/core';

/** A small TrainerContext for unit tests: plain fields to set, and records of what callbacks did. */
export class FakeTrainer implements TrainerContext {
  currentEpoch = 0;
  globalStep = 0;
  maxEpochs = 10;
  maxSteps = -1;
  numTrainingBatches = 4;
  stage: Stage | undefined = 'fit';
  runningStage: RunningStage | undefined = 'train';
  fastDevRun = false;
  callbackMetrics: Record<string, number> = {};
  loggedMetrics: Record<string, number> = {};
  progressBarMetrics: Metrics = {};
  history: EpochRecord[] = [];
  validationRuns = 0;
  validatedThisEpoch = false;
  progress: FitProgress = { epoch: 0, globalStep: 0, batchInEpoch: 0, totalBatches: 0 };
  loggers: Logger[] = [];
  callbacks: Callback[] = [];
  logDir: string;
  defaultRootDir: string;
  optimizers: OptimizerWrapper[] = [];
  lrSchedulers: LRSchedulerConfig[] = [];
  shouldStop = false;
  stopReason: StopReason | undefined;
  /** What was printed. */
  readonly printed: string[] = [];
  /** What was logged through logMetrics. */
  readonly logged: Array<{ metrics: Metrics; step: number | undefined }> = [];
  /** Paths passed to saveCheckpoint. */
  readonly saved: string[] = [];

  constructor(dir = '/tmp/flint-fake') {
    this.logDir = dir;
    this.defaultRootDir = dir;
  }

  get sanityChecking(): boolean {
    return this.runningStage === 'sanity_check';
  }

  requestStop(reason: Omit<StopReason, 'epoch' | 'globalStep'> & Partial<Pick<StopReason, 'epoch' | 'globalStep'>>): void {
    this.shouldStop = true;
    this.stopReason = { epoch: this.currentEpoch, globalStep: this.globalStep, ...reason };
  }

  /** A checkpoint of a module without weights: the fake's progress and its callbacks' states. */
  async dumpCheckpoint(weightsOnly = false): Promise<Checkpoint> {
    const common = {
      format: CHECKPOINT_FORMAT,
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      flintVersion: FLINT_VERSION,
      createdAt: new Date().toISOString(),
      module: 'FakeModule',
      backend: 'cpu',
      epoch: this.currentEpoch,
      globalStep: this.globalStep,
      progress: { epoch: this.currentEpoch, globalStep: this.globalStep, batchInEpoch: 0, totalBatches: this.globalStep },
      resume: { epoch: this.currentEpoch, batch: 0 },
      hparams: {},
      stateDict: {},
    } as const;
    if (weightsOnly) return { ...common, weightsOnly: true };
    const callbacks = Object.fromEntries(this.callbacks.map((c) => [c.stateKey, c.stateDict()]));
    return { ...common, weightsOnly: false, optimizers: [], lrSchedulers: [], callbacks, loggers: {}, rng: null, loops: { history: [], callbackMetrics: {} } };
  }

  async saveCheckpoint(path: string, weightsOnly = false): Promise<void> {
    this.saved.push(path);
    await saveCheckpointFile(path, await this.dumpCheckpoint(weightsOnly));
  }

  print(message: string): void {
    this.printed.push(message);
  }

  /** TrainerContext.logMetrics: only records what was sent (a fake trainer has no loggers). */
  logMetrics = async (metrics: Metrics, step?: number): Promise<void> => {
    this.logged.push({ metrics: { ...metrics }, step });
  };

  /** Ends an epoch the way the trainer does: its metrics into callbackMetrics and history. */
  record(metrics: Record<string, number>, epoch = this.currentEpoch): void {
    Object.assign(this.callbackMetrics, metrics);
    const last = this.history[this.history.length - 1];
    if (last !== undefined && last.epoch === epoch) this.history[this.history.length - 1] = { ...last, metrics: { ...last.metrics, ...metrics } };
    else this.history.push({ epoch, globalStep: this.globalStep, metrics: { ...metrics } });
  }
}

/** A logger that keeps what it receives. */
export class MemoryLogger implements Logger {
  readonly name = 'memory';
  readonly version = 0;
  readonly logDir = undefined;
  readonly rows: Array<{ metrics: Metrics; step: number }> = [];
  logHyperparams(): void {}
  logMetrics(metrics: Metrics, step: number): void {
    this.rows.push({ metrics: { ...metrics }, step });
  }
  save(): void {}
  finalize(): void {}
  /** Every value logged under `name`, with its step. */
  series(name: string): Array<[number, number]> {
    return this.rows.filter((r) => name in r.metrics).map((r) => [r.step, r.metrics[name]!]);
  }
}
