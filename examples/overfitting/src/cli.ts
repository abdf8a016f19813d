#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main } from './index.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    degree: { type: 'string' },
    epochs: { type: 'string' },
    lr: { type: 'string' },
    noise: { type: 'string' },
    basis: { type: 'string' },
    'log-dir': { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log(
    'Usage: pnpm overfitting [--seed 13] [--degree 6] [--epochs 300] [--lr 0.05] [--noise 0.5] [--basis orthonormal|power] ' +
      '[--log-dir flint_logs] [--backend wasm|cpu|tensorflow]',
  );
  process.exit(0);
}

const num = (name: string, v: string | undefined, kind: 'whole' | 'positive' | 'seed'): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  const ok = Number.isFinite(n) && (kind === 'seed' ? Number.isInteger(n) && n >= 0 : n > 0 && (kind !== 'whole' || Number.isInteger(n)));
  if (!ok) {
    console.error(`--${name} must be ${kind === 'seed' ? 'a whole number >= 0' : kind === 'whole' ? 'a whole number > 0' : 'a number > 0'} (received '${v}')`);
    process.exit(2);
  }
  return n;
};

const backend = values.backend;
if (backend !== undefined && !['wasm', 'cpu', 'tensorflow'].includes(backend)) {
  console.error(`--backend must be wasm, cpu or tensorflow (received '${backend}')`);
  process.exit(2);
}
if (values.basis !== undefined && values.basis !== 'orthonormal' && values.basis !== 'power') {
  console.error(`--basis must be orthonormal or power (received '${values.basis}')`);
  process.exit(2);
}

await main({
  seed: num('seed', values.seed, 'seed'),
  degree: num('degree', values.degree, 'whole'),
  maxEpochs: num('epochs', values.epochs, 'whole'),
  learningRate: num('lr', values.lr, 'positive'),
  noise: num('noise', values.noise, 'positive'),
  basis: values.basis as 'orthonormal' | 'power' | undefined,
  logDir: values['log-dir'],
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
});
