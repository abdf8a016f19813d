// Trains the classifier on data/iris.csv and writes a TensorBoard run under logs/.
// EPOCHS=5 npm run train  for a quick try.
import { fileURLToPath } from 'node:url';
import { seedEverything } from '@flint/core';
import { EarlyStopping, ModelCheckpoint } from '@flint/callbacks';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer } from '@flint/trainer';
import { IrisData } from './data.js';
import { IrisClassifier } from './model.js';

const epochs = Number(process.env.EPOCHS ?? 100);
seedEverything(42);

// This file runs as dist/src/train.js: the CSV is two folders up.
const data = new IrisData({ csvPath: fileURLToPath(new URL('../../data/iris.csv', import.meta.url)) });
const model = new IrisClassifier({ hidden: 16, learningRate: 0.02 });
const logger = new TensorBoardLogger({ saveDir: 'logs', name: 'iris' });
const trainer = new Trainer({
  maxEpochs: epochs,
  logger,
  callbacks: [new EarlyStopping({ monitor: 'val_loss', mode: 'min', patience: 10 }), new ModelCheckpoint({ monitor: 'val_loss', mode: 'min' })],
  enableProgressBar: process.stdout.isTTY === true,
});

await trainer.fit(model, data);
const test = await trainer.test(model, data);

const last = trainer.history.at(-1)?.metrics ?? {};
console.log(`epochs: ${trainer.currentEpoch}, val_loss ${last.val_loss?.toFixed(4)}, val_acc ${last.val_acc?.toFixed(3)}`);
console.log(`test: loss ${test.test_loss?.toFixed(4)}, accuracy ${test.test_acc?.toFixed(3)}`);
console.log(`best checkpoint: ${trainer.checkpointCallback?.bestModelPath}`);
console.log(`TensorBoard run: ${logger.logDir}  (pip install tensorboard && tensorboard --logdir logs)`);
