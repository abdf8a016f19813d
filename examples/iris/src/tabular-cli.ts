import { parseArgs } from 'node:util';

/** What the command lines of the tabular examples (iris, breast-cancer) accept. */
export interface TabularCliOptions {
  epochs: number | undefined;
  hidden: number | undefined;
  batchSize: number | undefined;
  learningRate: number | undefined;
  seed: number | undefined;
  models: Array<'single' | 'multi'> | undefined;
  logDir: string | undefined;
  backend: 'wasm' | 'cpu' | 'tensorflow' | undefined;
  enableProgressBar: boolean;
}

/**
 * Parses `--epochs --hidden --batch-size --lr --seed --models --log-dir --backend --progress`; prints
 * `usage` and exits on `--help`, and exits with 2 and a message naming the flag on a bad value.
 * examples/breast-cancer uses it too (through `@flint/example-iris/tabular-cli`).
 */
export function parseTabularCli(usage: string, args: string[] = process.argv.slice(2)): TabularCliOptions {
  const { values } = parseArgs({
    args,
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
    console.log(`${usage} [--log-dir flint_logs] [--backend wasm|cpu|tensorflow] [--progress]`);
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

  return {
    epochs: num('epochs', values.epochs),
    hidden: num('hidden', values.hidden),
    batchSize: num('batch-size', values['batch-size']),
    learningRate: num('lr', values.lr, false),
    seed: num('seed', values.seed),
    models: models as Array<'single' | 'multi'> | undefined,
    logDir: values['log-dir'],
    backend: backend as TabularCliOptions['backend'],
    enableProgressBar: values.progress === true,
  };
}
