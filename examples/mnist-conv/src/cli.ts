#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main } from './index.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string' },
    hidden: { type: 'string' },
    'batch-size': { type: 'string' },
    lr: { type: 'string' },
    'constant-lr': { type: 'boolean' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log('Usage: pnpm mnist-conv [--epochs 4] [--hidden 128] [--batch-size 128] [--lr 0.01] [--constant-lr] [--train-limit N] [--test-limit N] [--backend wasm|cpu|tensorflow]');
  process.exit(0);
}

const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`--${name} must be a positive integer (received '${v}')`);
    process.exit(2);
  }
  return n;
};

const lr = values.lr === undefined ? undefined : Number(values.lr);
if (lr !== undefined && !(Number.isFinite(lr) && lr > 0)) {
  console.error(`--lr must be a positive number (received '${values.lr}')`);
  process.exit(2);
}

const backend = values.backend;
if (backend !== undefined && !['wasm', 'cpu', 'tensorflow'].includes(backend)) {
  console.error(`--backend must be wasm, cpu or tensorflow (received '${backend}')`);
  process.exit(2);
}

await main({
  maxEpochs: num('epochs', values.epochs),
  hidden: num('hidden', values.hidden),
  batchSize: num('batch-size', values['batch-size']),
  ...(lr === undefined ? {} : { learningRate: lr }),
  ...(values['constant-lr'] === true ? { oneCycle: false } : {}),
  trainLimit: num('train-limit', values['train-limit']),
  testLimit: num('test-limit', values['test-limit']),
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
});
