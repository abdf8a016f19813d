#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { main, type IrisModel } from './index.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string' },
    hidden: { type: 'string' },
    'batch-size': { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string' },
    models: { type: 'string' },
    'log-dir': { type: 'string' },
    backend: { type: 'string' },
    progress: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  console.log(
    'Usage: pnpm iris [--epochs 100] [--hidden 16] [--batch-size 16] [--lr 0.02] [--seed 42] [--models single,multi] ' +
      '[--log-dir flint_logs] [--backend wasm|cpu|tensorflow] [--progress]',
  );
  process.exit(0);
}

const num = (name: string, v: string | undefined, integer = true): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)) || (n === 0 && name !== 'seed')) {
    console.error(`--${name} must be a ${integer ? 'whole' : 'positive'} number${name === 'seed' ? ' >= 0' : ' > 0'} (received '${v}')`);
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
  epochs: num('epochs', values.epochs),
  hidden: num('hidden', values.hidden),
  batchSize: num('batch-size', values['batch-size']),
  learningRate: num('lr', values.lr, false),
  seed: num('seed', values.seed),
  models: models as IrisModel[] | undefined,
  logDir: values['log-dir'],
  backend: backend as 'wasm' | 'cpu' | 'tensorflow' | undefined,
  enableProgressBar: values.progress === true,
});
