// Test-only: one training run of the fault-injection suite (fault-injection.test.ts), in its own
// process so that the test can kill it (SIGKILL, SIGINT, SIGTERM), fill its disk or take its folder
// away, and look at what is on disk afterwards. It runs the built packages (dist/), as a user's
// script would, on the pure-JS cpu backend (bit-exact from run to run).
//
//   node fault-child.mjs '<json config>'
//
// It resumes from the run's last checkpoint when one exists (ckptPath 'last'), so the test starts it
// again and again until it finishes. Lines it prints on stdout, for the test to act on:
//   step <n>        after optimizer step n (from onTrainBatchEnd)
//   saving <n>      a checkpoint of step n is about to be written (from onSaveCheckpoint)
//   done            the fit finished; final weights and history are in <root>/result.json
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { adam, Callback, DataLoader, Dropout, LightningModule, Linear, Sequential, crossEntropy, seedEverything } from '@flint/core';
import { randomClassificationDataset } from '@flint/core/testing';
import { ModelCheckpoint } from '@flint/callbacks';
import { CSVLogger, TensorBoardLogger } from '@flint/loggers';
import { Trainer } from '@flint/trainer';

const config = {
  root: '',
  maxEpochs: 3,
  n: 96,
  batchSize: 8,
  everyNTrainSteps: 1,
  loggers: ['tensorboard', 'csv'],
  checkpoint: true,
  resume: true,
  /** Milliseconds of busy work per step, so that a signal lands during training. */
  stepDelayMs: 0,
  ...JSON.parse(process.argv[2] ?? '{}'),
};

class Net extends LightningModule {
  constructor() {
    super();
    this.net = new Sequential(new Linear(6, 16, { activation: 'relu' }), new Dropout(0.25), new Linear(16, 3));
  }
  forward(x) {
    return this.net.forward(x);
  }
  trainingStep([x, y]) {
    if (config.stepDelayMs > 0) {
      const until = performance.now() + config.stepDelayMs;
      while (performance.now() < until);
    }
    const loss = crossEntropy(this.forward(x), y);
    this.log('train_loss', loss, { onStep: true, onEpoch: true });
    return loss;
  }
  validationStep([x, y]) {
    const logits = this.forward(x);
    this.log('val_loss', crossEntropy(logits, y));
    this.log('val_acc', tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')));
  }
  configureOptimizers() {
    return adam({ learningRate: 0.01 });
  }
}

/** Tells the test where the run is, so that kills can aim at steps and checkpoint writes. */
class Markers extends Callback {
  onTrainBatchEnd(trainer) {
    process.stdout.write(`step ${trainer.globalStep}\n`);
  }
  onSaveCheckpoint(trainer) {
    process.stdout.write(`saving ${trainer.globalStep}\n`);
  }
}

seedEverything(7);
const train = randomClassificationDataset({ n: config.n, features: 6, classes: 3, seed: 1 });
const val = randomClassificationDataset({ n: 24, features: 6, classes: 3, seed: 2 });
const loggers = config.loggers.map((kind) =>
  kind === 'tensorboard' ? new TensorBoardLogger({ saveDir: config.root, name: 'run' }) : new CSVLogger({ saveDir: config.root, name: 'run' }),
);
const callbacks = [new Markers()];
if (config.checkpoint) callbacks.push(new ModelCheckpoint({ saveLast: true, saveTopK: 0, everyNTrainSteps: config.everyNTrainSteps }));
const trainer = new Trainer({
  backend: 'cpu',
  maxEpochs: config.maxEpochs,
  logger: loggers.length === 0 ? false : loggers,
  callbacks,
  enableCheckpointing: config.checkpoint,
  enableProgressBar: false,
  enableModelSummary: false,
  logEveryNSteps: 1,
  defaultRootDir: config.root,
});
const module = new Net();
const hasLast = config.checkpoint && config.resume && fs.existsSync(path.join(config.root, 'run')) &&
  fs.readdirSync(path.join(config.root, 'run')).some((v) => fs.existsSync(path.join(config.root, 'run', v, 'checkpoints', 'last.ckpt')));
await trainer.fit(
  module,
  new DataLoader(train, { batchSize: config.batchSize, shuffle: true }),
  new DataLoader(val, { batchSize: 12 }),
  hasLast ? { ckptPath: 'last' } : {},
);
const weights = Object.fromEntries(module.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));
fs.writeFileSync(path.join(config.root, 'result.json'), JSON.stringify({ weights, history: trainer.history, globalStep: trainer.globalStep }));
process.stdout.write('done\n');
