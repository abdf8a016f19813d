import { CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, type FullCheckpoint } from '../checkpoint.js';
import { FLINT_VERSION } from '../version.js';

/**
 * A valid full checkpoint of a module without weights, at epoch 0 step 0, with `fields` replaced:
 * for tests of code that reads one part of a checkpoint (an optimizer's state, a callback's).
 */
export function emptyCheckpoint(fields: Partial<FullCheckpoint> = {}): FullCheckpoint {
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    flintVersion: FLINT_VERSION,
    createdAt: new Date(0).toISOString(),
    module: 'TestModule',
    backend: 'cpu',
    weightsOnly: false,
    epoch: 0,
    globalStep: 0,
    progress: { epoch: 0, globalStep: 0, batchInEpoch: 0, totalBatches: 0 },
    resume: { epoch: 0, batch: 0 },
    hparams: {},
    stateDict: {},
    optimizers: [],
    lrSchedulers: [],
    callbacks: {},
    loggers: {},
    rng: null,
    loops: { history: [], callbackMetrics: {} },
    ...fields,
  };
}
