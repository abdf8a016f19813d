#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main } from './index.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    steps: { type: 'string' },
    epochs: { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log('Usage: pnpm low-level [--seed 42] [--steps 300] [--epochs 50] [--backend wasm|cpu|tensorflow]');
  process.exit(0);
}

const whole = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number >= ${min} (received '${v}')`);
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
  seed: whole('seed', values.seed, 0),
  steps: whole('steps', values.steps, 1),
  maxEpochs: whole('epochs', values.epochs, 1),
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
});
