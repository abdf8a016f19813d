import {
  getGlobalSeed,
  InterruptedError,
  MisconfigurationError,
  type Callback,
  type DataModule,
  type LightningModule,
  type Logger,
  type MetricCollector,
  type RunStatus,
  type Stage,
  type TrainerContext,
} from '@flint/core';
import { setupBackend, type BackendChoice } from '../accelerator.js';
import type { TrainerEvents } from '../events.js';
import type { Limits, ResolvedTrainerOptions } from '../trainer-options.js';
import { HookDispatcher, runCallbacks } from './hook-dispatcher.js';
import { exitBySignal, InterruptListener, interruptReport } from './interrupt.js';
import type { RunContext, RunState } from './run-state.js';
import { disposeOptimizers } from './training-step.js';

/** What a trainer hands its stage runner: its options, state and parts, and its print and emit. */
export interface StageHost {
  readonly trainer: TrainerContext;
  readonly options: ResolvedTrainerOptions;
  readonly limits: Limits;
  readonly state: RunState;
  readonly collector: MetricCollector;
  /** The trainer's callback list: a run completes it (the module's configureCallbacks, checkpoint callbacks last). */
  readonly callbacks: Callback[];
  readonly loggers: readonly Logger[];
  print(message: string): void;
  emit<K extends keyof TrainerEvents>(event: K, ...args: TrainerEvents[K]): void;
}

/**
 * The common frame of fit/validate/test/predict: the backend, the module attached, the hook
 * dispatcher, the SIGINT/SIGTERM listeners, then, whatever happens, the exception and teardown
 * hooks, the DataModule's teardown, the loggers finalized and the module detached.
 */
export class StageRunner {
  /** The context of the running stage (undefined between runs). */
  run: RunContext | undefined;
  dispatcher: HookDispatcher | undefined;
  /** The backend chosen at the start of the last run. */
  backend: BackendChoice | undefined;
  /** The DataModule of the running stage, torn down when it ends. */
  datamodule: DataModule<unknown> | undefined;
  /** The last checkpoint written through saveCheckpoint (the resume line after an interrupt names it). */
  lastSaved: { path: string; weightsOnly: boolean } | undefined;
  /** SIGINT/SIGTERM listeners of the running stage. */
  private interrupt: InterruptListener | undefined;

  constructor(private readonly host: StageHost) {}

  async runStage(module: LightningModule, stage: Stage, body: (run: RunContext) => Promise<void>): Promise<void> {
    const { host } = this;
    const { state } = host;
    if (this.run !== undefined) {
      throw new MisconfigurationError(`trainer.${stage}() was called while this trainer is already running ${state.stage}(): await the first call.`);
    }
    this.backend = await setupBackend(host.options, (line) => host.print(line));
    if (host.options.deterministic && getGlobalSeed() === undefined) {
      throw new MisconfigurationError('Trainer option deterministic: true needs a seed: call seedEverything(seed) before creating the module and the data.');
    }
    state.begin(stage);
    module.attachTrainer({ trainer: host.trainer, collector: host.collector });
    host.callbacks.splice(0, host.callbacks.length, ...runCallbacks(host.callbacks, module));
    const dispatcher = new HookDispatcher(host.trainer, module, [...host.callbacks, ...host.loggers]);
    this.dispatcher = dispatcher;
    // A first SIGINT/SIGTERM requests a stop that the loops turn into an InterruptedError at the
    // next batch boundary; a second one ends the process at once.
    const interrupt = new InterruptListener((signal) => {
      state.requestStop({ rule: 'interrupted', message: `${signal} received`, source: 'signal', values: { signal } });
    });
    this.interrupt = interrupt;
    const run: RunContext = {
      options: host.options,
      limits: host.limits,
      state,
      module,
      dispatcher,
      collector: host.collector,
      loggers: host.loggers,
      callbacks: host.callbacks,
      print: (message) => host.print(message),
      emit: (event, ...args) => host.emit(event, ...args),
      checkInterrupt: (batch) => this.checkInterrupt(batch),
      interruptReceived: () => interrupt.received !== undefined,
    };
    this.run = run;
    try {
      let status: RunStatus = 'success';
      try {
        await body(run);
        // A signal during the last hooks: the run ended, the process still stops.
        state.phase = undefined;
        await this.checkInterrupt(0);
      } catch (error) {
        status = error instanceof InterruptedError || (error instanceof Error && error.name === 'AbortError') ? 'interrupted' : 'failed';
        this.lastSaved = undefined;
        await dispatcher.call('onException', [error]).catch(() => undefined);
        throw error;
      } finally {
        try {
          await dispatcher.call('teardown', [stage]);
          const dm = this.datamodule;
          this.datamodule = undefined;
          await dm?.teardown?.(stage);
          if (stage === 'fit' || stage === 'validate' || stage === 'test') {
            for (const logger of host.loggers) await logger.finalize(status);
          }
        } finally {
          if (stage === 'fit') {
            state.compiledStep?.dispose();
            state.compiledStep = undefined;
            disposeOptimizers(state.optimizers);
            state.optimizers = [];
            state.lrSchedulers = [];
            module.attachTrainer({ optimizers: [], lrSchedulers: [] });
          }
          host.collector.reset();
          state.end();
          module.detachTrainer();
          this.run = undefined;
          module.train();
        }
      }
    } catch (error) {
      if (error instanceof InterruptedError) {
        host.print(interruptReport(error, this.lastSaved));
        if (host.options.exitOnInterrupt) {
          interrupt.dispose();
          exitBySignal(error.signal);
        }
      }
      throw error;
    } finally {
      interrupt.dispose();
      this.interrupt = undefined;
    }
  }

  /** At a batch boundary (`batch`: batches the current loop finished): throws the InterruptedError once a signal arrived. */
  private async checkInterrupt(batch: number): Promise<void> {
    await this.interrupt?.check(() => {
      const { stage, phase, progress } = this.host.state;
      return { stage: stage ?? 'fit', runningStage: phase, epoch: progress.epoch, batch, globalStep: progress.globalStep };
    });
  }
}
