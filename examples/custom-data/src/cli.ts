#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main } from './index.js';

const { values } = parseArgs({
  options: {
    'class-sep': { type: 'string' },
    samples: { type: 'string' },
    epochs: { type: 'string' },
    seed: { type: 'string' },
    'log-dir': { type: 'string' },
    backend: { type: 'string' },
    progress: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log(
    'Usage: pnpm custom-data [--class-sep 2,1,0.5] [--samples 1000] [--epochs 20] [--seed 7] [--log-dir flint_logs] ' +
      '[--backend wasm|cpu|tensorflow] [--progress]',
  );
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

const classSeps = values['class-sep']?.split(',').map(Number);
if (classSeps !== undefined && classSeps.some((s) => !(s > 0))) {
  console.error(`--class-sep must be a comma-separated list of numbers > 0 (received '${values['class-sep']}')`);
  process.exit(2);
}
const backend = values.backend;
if (backend !== undefined && !['wasm', 'cpu', 'tensorflow'].includes(backend)) {
  console.error(`--backend must be wasm, cpu or tensorflow (received '${backend}')`);
  process.exit(2);
}

await main({
  classSeps,
  samples: whole('samples', values.samples, 4),
  maxEpochs: whole('epochs', values.epochs, 1),
  seed: whole('seed', values.seed, 0),
  logDir: values['log-dir'],
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
  enableProgressBar: values.progress === true,
});
