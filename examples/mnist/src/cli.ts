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
    models: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log('Usage: pnpm mnist [--epochs 5] [--hidden 256] [--batch-size 128] [--models single,multi] [--train-limit N] [--test-limit N] [--backend wasm|cpu|tensorflow]');
  process.exit(0);
}

const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} must be a positive number (received '${v}')`);
    process.exit(2);
  }
  return n;
};

const backend = values.backend;
if (backend !== undefined && !['wasm', 'cpu', 'tensorflow'].includes(backend)) {
  console.error(`--backend must be wasm, cpu or tensorflow (received '${backend}')`);
  process.exit(2);
}
const models = values.models?.split(',');
if (models !== undefined && models.some((m) => m !== 'single' && m !== 'multi')) {
  console.error(`--models must be a comma-separated list of single, multi (received '${values.models}')`);
  process.exit(2);
}

await main({
  maxEpochs: num('epochs', values.epochs),
  hidden: num('hidden', values.hidden),
  batchSize: num('batch-size', values['batch-size']),
  trainLimit: num('train-limit', values['train-limit']),
  testLimit: num('test-limit', values['test-limit']),
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
  models: models as Array<'single' | 'multi'> | undefined,
});
