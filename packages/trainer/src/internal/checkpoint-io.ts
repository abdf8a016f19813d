import { readdirSync, statSync } from 'node:fs';
import { join as joinPath, relative as relativePath, sep as pathSep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  captureOptimizerState,
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  FLINT_VERSION,
  getRngState,
  HostTensor,
  loadCheckpointFile,
  MisconfigurationError,
  restoreOptimizerState,
  setRngState,
  type Callback,
  type Checkpoint,
  type Logger,
} from '@flint/core';
import type { RunContext } from './run-state.js';

/** Where a logger's state goes in a checkpoint: its stateKey, or its class name. */
export function loggerStateKey(logger: Logger): string {
  return logger.stateKey ?? logger.constructor.name;
}

/**
 * Everything needed to continue this run exactly (format v1, see docs/checkpoints.md): weights by
 * parameter name, optimizer states, progress with the place to resume, scheduler, callback and
 * logger states, hyper-parameters, the RNG state, the history and the epoch's partial metrics.
 * onSaveCheckpoint sees (and may add to) the object.
 */
export async function dumpCheckpoint(run: RunContext, weightsOnly: boolean): Promise<Checkpoint> {
  const { module, state, collector } = run;
  // A save in onTrainBatchEnd comes before the loop logs the step's metrics: log them now, so that
  // the loggers' states in the checkpoint hold this step's row (a resume starts at the next step).
  await state.logPendingStep();
  const params = module.namedParameters();
  // The key order is the file's (format v1): keep it, so that checkpoints stay byte-comparable.
  const common = <W extends boolean>(only: W) => ({
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    flintVersion: FLINT_VERSION,
    createdAt: new Date().toISOString(),
    module: module.constructor.name,
    backend: tf.getBackend(),
    weightsOnly: only,
    epoch: state.progress.epoch,
    globalStep: state.progress.globalStep,
    progress: { ...state.progress },
    // An epoch is complete once its end phase has run: a checkpoint taken on the last batch resumes with that epoch's end.
    resume: state.resumePoint(),
    hparams: structuredClone(module.hparams),
    stateDict: Object.fromEntries(params.map((p) => [p.name, HostTensor.fromTensor(p.variable)])),
  });
  let checkpoint: Checkpoint;
  if (weightsOnly) checkpoint = common(true);
  else {
    const varToParam = new Map(params.map((p) => [p.variable.name, p.name]));
    const callbacks: Record<string, Record<string, unknown>> = {};
    for (const cb of run.callbacks) {
      const cbState = cb.stateDict();
      if (Object.keys(cbState).length === 0) continue; // stateless callbacks may share a key
      if (cb.stateKey in callbacks) {
        throw new MisconfigurationError(`Two callbacks share the stateKey '${cb.stateKey}': give each a distinct stateKey so that their states can be told apart in checkpoints.`);
      }
      callbacks[cb.stateKey] = cbState;
    }
    const loops = state.stateDict();
    checkpoint = {
      ...common(false),
      optimizers: await Promise.all(state.optimizers.map((o) => captureOptimizerState(o.optimizer, varToParam))),
      lrSchedulers: state.lrSchedulers.map((c) => c.scheduler.stateDict()),
      callbacks,
      loggers: Object.fromEntries(run.loggers.flatMap((l) => (l.stateDict === undefined ? [] : [[loggerStateKey(l), l.stateDict()]]))),
      rng: getRngState() ?? null,
      loops: { history: loops.history, callbackMetrics: loops.callbackMetrics, collector: collector.stateDict() },
    };
  }
  await run.dispatcher.call('onSaveCheckpoint', [checkpoint]);
  return checkpoint;
}

/**
 * Restores a checkpoint into the running module (and, for a resume, the optimizers, progress,
 * schedulers, callbacks, loggers, RNG and history). The file is checked against the checkpoint
 * schema, and everything against the module, before anything is changed, so a damaged or foreign
 * checkpoint never leaves the module half-loaded.
 */
export async function restoreCheckpoint(run: RunContext, ckptPath: string, weightsOnly: boolean): Promise<void> {
  const { module, state } = run;
  const path = resolveCheckpointPath(run, ckptPath);
  const ckpt = await loadCheckpointFile(path);
  const source = `checkpoint ${path}`;
  if (!weightsOnly && ckpt.weightsOnly) {
    throw new CheckpointError(`${source} holds weights only (saveWeightsOnly): it can initialize a module or be tested, not resume a fit.`);
  }
  if (!ckpt.weightsOnly && !weightsOnly) {
    if (ckpt.optimizers.length !== state.optimizers.length) {
      throw new CheckpointError(`${source} holds ${ckpt.optimizers.length} optimizer state(s); ${module.constructor.name}.configureOptimizers returned ${state.optimizers.length}.`);
    }
    ckpt.optimizers.forEach((o, i) => {
      const mine = state.optimizers[i]!.optimizer.getClassName();
      if (o.className !== mine) throw new CheckpointError(`${source}: optimizer ${i} is a ${o.className} in the checkpoint and a ${mine} in the module.`);
    });
    if (ckpt.lrSchedulers.length !== state.lrSchedulers.length) {
      throw new CheckpointError(`${source} holds ${ckpt.lrSchedulers.length} LR scheduler state(s); the module configures ${state.lrSchedulers.length}.`);
    }
  }
  // Checks names and shapes of every weight before assigning any.
  try {
    module.loadStateDict(ckpt.stateDict);
  } catch (error) {
    if (error instanceof CheckpointError) throw new CheckpointError(`${source}: ${error.message}`, { cause: error });
    throw error;
  }
  if (weightsOnly || ckpt.weightsOnly) {
    await run.dispatcher.call('onLoadCheckpoint', [ckpt]);
    return;
  }
  const paramToVar = new Map(module.namedParameters().map((p) => [p.name, p.variable.name]));
  for (let i = 0; i < ckpt.optimizers.length; i++) await restoreOptimizerState(state.optimizers[i]!.optimizer, ckpt.optimizers[i]!, paramToVar, source);
  ckpt.lrSchedulers.forEach((st, i) => state.lrSchedulers[i]!.scheduler.loadStateDict(st));
  // Loggers first: they move back to the checkpoint's version folder, which callbacks that write
  // under trainer.logDir (ModelCheckpoint's default dirpath) follow.
  for (const logger of run.loggers) {
    if (typeof logger.loadStateDict !== 'function') continue;
    const key = loggerStateKey(logger);
    const st = ckpt.loggers[key];
    if (st !== undefined) logger.loadStateDict(st);
    else {
      const saved = Object.keys(ckpt.loggers);
      run.print(
        `Flint: ${source} holds no state for the logger '${key}' (${saved.length === 0 ? 'it holds no logger states' : `it holds: ${saved.map((k) => `'${k}'`).join(', ')}`}); that logger starts afresh in ${logger.logDir ?? 'its folder'}.`,
      );
    }
  }
  for (const cb of run.callbacks) {
    const st = ckpt.callbacks[cb.stateKey];
    if (st !== undefined) cb.loadStateDict(st);
  }
  if (ckpt.rng !== null) setRngState(ckpt.rng);
  const { resume, progress, loops } = ckpt;
  state.loadStateDict(resume, progress, loops);
  if (resume.batch > 0 && loops.collector !== undefined) run.collector.loadStateDict(loops.collector);
  await run.dispatcher.call('onLoadCheckpoint', [ckpt]);
  run.print(`Flint: resumed from ${path} at epoch ${resume.epoch}, batch ${resume.batch} (global step ${progress.globalStep}).`);
}

/**
 * `'last'` / `'best'`: what this trainer's checkpoint callbacks know (their folder, in this process or
 * an earlier one). For `'last'`, failing that, the newest `last.ckpt` of the logger's experiment: a
 * new process's logger picks a new `version_<n>`, while the run to resume wrote
 * `<saveDir>/<name>/version_<k>/checkpoints/last.ckpt` (see docs/checkpoints.md).
 */
function resolveCheckpointPath(run: { callbacks: readonly Callback[]; loggers: readonly Logger[] }, which: string): string {
  if (which !== 'last' && which !== 'best') return which;
  for (const cb of run.callbacks) {
    const found = cb.checkpointPath?.(which);
    if (found !== undefined) return found;
  }
  const search = which === 'last' ? experimentCheckpoints(run.loggers) : undefined;
  if (search?.last !== undefined) return search.last;
  const where = search === undefined || search.roots.length === 0 ? '' : ` nor in the version folders of ${search.roots.join(', ')} (<version>/${search.sub}last.ckpt)`;
  const exists =
    search === undefined || search.roots.length === 0
      ? ''
      : search.found.length === 0
        ? ' No checkpoint exists there.'
        : ` Checkpoints there: ${search.found.slice(0, 5).join(', ')}${search.found.length > 5 ? `, ... (${search.found.length})` : ''}; pass one as ckptPath.`;
  throw new MisconfigurationError(
    `ckptPath '${which}': no ${which} checkpoint found: no callback knows one${where}.${exists} Add a ModelCheckpoint${which === 'best' ? ' with a monitor' : ' with saveLast'} to this trainer's callbacks, or pass a file path.`,
  );
}

/**
 * The checkpoints under every version folder of the loggers' experiments, at the place the default
 * ModelCheckpoint uses (`<version>[/<subDir>]/checkpoints`), and the newest last.ckpt among them.
 */
function experimentCheckpoints(loggers: readonly Logger[]): { roots: string[]; sub: string; found: string[]; last: string | undefined } {
  const roots: string[] = [];
  const found: string[] = [];
  let sub = 'checkpoints/';
  let last: { file: string; mtime: number } | undefined;
  for (const logger of loggers) {
    const root = logger.rootDir;
    const logDir = logger.logDir;
    if (root === undefined || logDir === undefined || roots.includes(root)) continue;
    roots.push(root);
    // What lies between the version folder and the checkpoints (TensorBoardLogger's subDir).
    const rel = relativePath(root, logDir).split(pathSep).slice(1);
    sub = [...rel, 'checkpoints', ''].join('/');
    let versions: string[];
    try {
      versions = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      continue;
    }
    for (const v of versions.sort()) {
      const dir = joinPath(root, v, ...rel, 'checkpoints');
      let files: string[];
      try {
        files = readdirSync(dir).filter((f) => f.endsWith('.ckpt')).sort();
      } catch {
        continue;
      }
      for (const f of files) {
        const file = joinPath(dir, f);
        found.push(file);
        if (f !== 'last.ckpt') continue;
        const mtime = statSync(file).mtimeMs;
        if (last === undefined || mtime >= last.mtime) last = { file, mtime };
      }
    }
  }
  return { roots, sub, found, last: last?.file };
}
