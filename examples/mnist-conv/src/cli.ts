#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main } from './index.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string' },
    hidden: { type: 'string' },
    'batch-size': { type: 'string' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log('Usage: pnpm mnist-conv [--epochs 3] [--hidden 128] [--batch-size 128] [--train-limit N] [--test-limit N] [--backend wasm|cpu|tensorflow]');
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

const backend = values.backend;
if (backend !== undefined && !['wasm', 'cpu', 'tensorflow'].includes(backend)) {
  console.error(`--backend must be wasm, cpu or tensorflow (received '${backend}')`);
  process.exit(2);
}

await main({
  maxEpochs: num('epochs', values.epochs),
  hidden: num('hidden', values.hidden),
  batchSize: num('batch-size', values['batch-size']),
  trainLimit: num('train-limit', values['train-limit']),
  testLimit: num('test-limit', values['test-limit']),
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
});
