#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { CONFIGS, main } from './index.js';

const { values } = parseArgs({
  options: {
    configs: { type: 'string' },
    'train-size': { type: 'string' },
    'val-size': { type: 'string' },
    'test-size': { type: 'string' },
    'max-epochs': { type: 'string' },
    patience: { type: 'string' },
    'batch-size': { type: 'string' },
    'weight-decay': { type: 'string' },
    'log-dir': { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log(
    'Usage: pnpm mnist-sizes [--configs a,b] [--train-size 2000] [--val-size 5000] [--test-size 10000] [--max-epochs 40] [--patience 6] ' +
      '[--batch-size 64] [--weight-decay 0.005] [--log-dir flint_logs] [--backend wasm|cpu|tensorflow]\n' +
      `Configurations: ${CONFIGS.map((c) => c.name).join(', ')}`,
  );
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

await main({
  configs: values.configs?.split(','),
  trainSize: num('train-size', values['train-size']),
  valSize: num('val-size', values['val-size']),
  testSize: num('test-size', values['test-size']),
  maxEpochs: num('max-epochs', values['max-epochs']),
  patience: num('patience', values.patience),
  batchSize: num('batch-size', values['batch-size']),
  weightDecay: num('weight-decay', values['weight-decay']),
  logDir: values['log-dir'],
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
});
