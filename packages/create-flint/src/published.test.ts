import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The packages as users get them, in one user's story (the steps share a folder, in order):
// `pnpm pack` each publishable package (which turns `workspace:*` into versions); `create-flint`, run
// from its tarball as `npm create flint` runs it, scaffolds a project in a folder outside the
// repository; plain npm installs it with the @flint tarballs; a file of the user's own, using all six
// packages, type-checks with the project's tsc (strict; Flint's declarations checked too) and trains;
// `npm run train` writes a TensorBoard run; `npm test` passes.
// npm needs the registry for tfjs, typescript and vitest (its cache makes later runs fast).

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['core', 'backends', 'trainer', 'callbacks', 'loggers', 'metrics'] as const;
const tarball = (p: (typeof PACKAGES)[number]) => path.join(packs, `flint-${p}-${version}.tgz`);
let root: string;
let packs: string;
let version: string;
let skipReason: string | undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    // No npm_config_* from the pnpm that runs the tests: the user's npm runs with its own defaults.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^PNPM_|^FLINT_BACKEND$/i.test(k)));
    const child = spawn(cmd, [...args], { cwd, env: { ...clean, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const ok = (r: Run, what: string): Run => {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r;
};

beforeAll(async () => {
  for (const p of [...PACKAGES, 'create-flint']) {
    if (!fs.existsSync(path.join(repo, 'packages', p, 'dist', 'index.js'))) throw new Error(`packages/${p}/dist is missing: run \`pnpm build\` first (the tarballs hold the built code).`);
  }
  version = (JSON.parse(fs.readFileSync(path.join(repo, 'packages/core/package.json'), 'utf8')) as { version: string }).version;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-published-'));
  packs = path.join(root, 'packs');
  if (process.env.FLINT_BACKEND === 'tensorflow') {
    // The user's project installs no tfjs-node, so it trains on wasm whatever the suite's backend: once is enough.
    skipReason = 'the native pass (FLINT_BACKEND=tensorflow) repeats nothing here: the installed project runs on wasm, as in the default pass';
    return;
  }
  const reach = await sh('npm', ['view', '@tensorflow/tfjs@4.22.0', 'version', '--prefer-offline'], root, {}, 60_000);
  if (reach.code !== 0) {
    skipReason = `the npm registry is not reachable (npm view @tensorflow/tfjs: ${reach.stderr.trim().split('\n').at(-1)})`;
    return;
  }
  ok(await sh('npx', ['-y', 'pnpm@10', '-r', '--filter', './packages/*', 'pack', '--pack-destination', packs], repo), 'pnpm pack');
}, 300_000);
afterAll(() => {
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true });
});

/** A user's own file: all six packages, a metric, both loggers, a callback, a fit and a test. */
const USER_TS = `
import * as tf from '@tensorflow/tfjs';
import { DataLoader, LightningModule, Linear, Sequential, TensorDataset, seedEverything } from '@flint/core';
import { BACKEND_NAMES } from '@flint/backends';
import { EarlyStopping } from '@flint/callbacks';
import { CSVLogger, TensorBoardLogger } from '@flint/loggers';
import { Accuracy } from '@flint/metrics';
import { Trainer } from '@flint/trainer';

type Batch = [tf.Tensor2D, tf.Tensor1D];

class Classifier extends LightningModule<Batch> {
  readonly net = new Sequential(new Linear(2, 8, { activation: 'relu' }), new Linear(8, 2));
  readonly valAcc = new Accuracy({ task: 'multiclass', numClasses: 2 });
  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }
  trainingStep([x, y]: Batch): tf.Scalar {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }
  override validationStep([x, y]: Batch): void {
    const logits = this.forward(x);
    this.valAcc.update(logits, y);
    this.log('val_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), logits));
    this.log('val_acc', this.valAcc);
  }
  configureOptimizers(): tf.Optimizer {
    return tf.train.adam(0.05);
  }
}

seedEverything(3);
// Two clusters: label 1 where x0 + x1 > 0.
const n = 256;
const xs = Array.from({ length: n }, () => [Math.random() * 2 - 1, Math.random() * 2 - 1] as [number, number]);
const data = TensorDataset.from([tf.tensor2d(xs), tf.tensor1d(xs.map(([a, b]) => (a + b > 0 ? 1 : 0)), 'int32')]);
const before = tf.memory().numTensors;
const trainer = new Trainer({
  maxEpochs: 12,
  logger: [new TensorBoardLogger({ saveDir: 'logs', name: 'user' }), new CSVLogger({ saveDir: 'logs', name: 'user-csv' })],
  callbacks: [new EarlyStopping({ monitor: 'val_loss', patience: 50 })],
  enableProgressBar: false,
});
const module = new Classifier();
await trainer.fit(module, new DataLoader(data, { batchSize: 32, shuffle: true }), new DataLoader(data, { batchSize: 128 }));
const leaked = tf.memory().numTensors - before - module.parameters().length;
const losses = trainer.history.map((r) => r.metrics.train_loss);
console.log('RESULT ' + JSON.stringify({ backends: BACKEND_NAMES, backend: tf.getBackend(), losses, valAcc: trainer.history.at(-1)?.metrics.val_acc, leaked, tb: trainer.loggers[0]?.logDir }));
`;


describe('published packages, from npm create flint to npm test', { timeout: 300_000 }, () => {
  let app: string;
  const skipIfOffline = (ctx: { skip: () => void }) => {
    if (skipReason === undefined) return;
    console.warn(`published packages test skipped: ${skipReason}`);
    ctx.skip();
  };

  it('create-flint runs from its tarball as `npm create flint@latest my-app` runs it', async (ctx) => {
    skipIfOffline(ctx);
    const work = path.join(root, 'work');
    fs.mkdirSync(work);
    const created = ok(await sh('npm', ['exec', '--yes', '--prefer-offline', '--package', path.join(packs, `create-flint-${version}.tgz`), '--', 'create-flint', 'my-app'], work), 'create-flint');
    expect(created.stdout).toContain('cd my-app\n  npm install\n  npm run train');
    app = path.join(work, 'my-app');
    expect(fs.existsSync(path.join(app, 'src/model.ts'))).toBe(true);
  });

  it('the tarballs install with plain npm: versions instead of workspace:*, no tests inside, the wasm backend along, tfjs-node optional', async (ctx) => {
    skipIfOffline(ctx);
    // The one change from a user's project: the @flint packages come from the tarballs, not the registry.
    const pkgPath = path.join(app, 'package.json');
    const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8')) as { dependencies: Record<string, string>; overrides?: Record<string, string> };
    expect(pkg.dependencies['@flint/trainer']).toBe(`^${version}`);
    pkg.overrides = {};
    for (const p of PACKAGES) {
      const spec = `file:${tarball(p)}`;
      pkg.overrides[`@flint/${p}`] = spec;
      if (pkg.dependencies[`@flint/${p}`] !== undefined) pkg.dependencies[`@flint/${p}`] = spec;
    }
    fs.writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
    ok(await sh('npm', ['install', '--prefer-offline'], app), 'npm install');

    for (const p of PACKAGES) {
      const dir = path.join(app, 'node_modules/@flint', p);
      const text = fs.readFileSync(path.join(dir, 'package.json'), 'utf8');
      expect(text, `@flint/${p}'s package.json`).not.toContain('workspace:');
      expect(JSON.parse(text)).toMatchObject({ version, license: 'Apache-2.0', repository: { url: 'git+https://github.com/flint-ts/flint.git' } });
      const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' });
      expect(files.filter((f) => /\.test\.|\.test-d\.|test-utils|fixtures/.test(f)), `@flint/${p} ships no tests`).toEqual([]);
      expect(fs.existsSync(path.join(dir, 'LICENSE'))).toBe(true);
      // READMEs are read on the registry: no links into the repository's folders.
      expect(fs.readFileSync(path.join(dir, 'README.md'), 'utf8')).not.toMatch(/\]\((?!https:\/\/|#)/);
    }
    expect(fs.existsSync(path.join(app, 'node_modules/@tensorflow/tfjs-backend-wasm')), 'the wasm backend comes with @flint/backends').toBe(true);
    expect(fs.existsSync(path.join(app, 'node_modules/@tensorflow/tfjs-node')), 'tfjs-node is an optional peer, not installed').toBe(false);
    // The `flint` command comes with @flint/backends.
    const flint = await sh(path.join(app, 'node_modules/.bin/flint'), ['--help'], app);
    expect(flint.code).toBe(0);
    expect(flint.stdout).toContain('Usage: flint setup-native');
  });

  it('a file of the user’s own, on all six packages, type-checks with the project’s tsc and trains', async (ctx) => {
    skipIfOffline(ctx);
    fs.writeFileSync(path.join(app, 'src/user.ts'), USER_TS);
    // The project's tsc, also checking the declarations it reads (skipLibCheck false): none of the errors
    // is in the project or in Flint's .d.ts files (tfjs's own have some, which is why the project sets
    // skipLibCheck; `npm run train` below builds with the project's settings as they are).
    const tsc = await sh(path.join(app, 'node_modules/.bin/tsc'), ['-p', '.', '--skipLibCheck', 'false', '--exactOptionalPropertyTypes'], app);
    const errors = (tsc.stdout + tsc.stderr).split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors.filter((l) => !/^node_modules\/(@tensorflow\/tfjs-|@webgpu\/)/.test(l)), 'errors in the project or in @flint/*.d.ts').toEqual([]);
    expect(fs.existsSync(path.join(app, 'dist/src/user.js'))).toBe(true);

    const run = ok(await sh(process.execPath, ['dist/src/user.js'], app), 'node dist/src/user.js');
    expect(run.stdout + run.stderr).not.toContain('looks like you are running TensorFlow.js in Node.js');
    expect(run.stdout).toContain("Flint: accelerator cpu, backend 'wasm' from @tensorflow/tfjs-backend-wasm.");
    const result = JSON.parse(run.stdout.split('\n').find((l) => l.startsWith('RESULT '))!.slice('RESULT '.length)) as {
      backends: string[];
      backend: string;
      losses: number[];
      valAcc: number;
      leaked: number;
      tb: string;
    };
    expect(result.backends).toEqual(['tensorflow', 'wasm', 'cpu']);
    expect(result.backend).toBe('wasm');
    expect(result.losses).toHaveLength(12);
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    expect(result.valAcc).toBeGreaterThan(0.9);
    expect(result.leaked).toBe(0);
    expect(fs.readdirSync(path.resolve(app, result.tb)).some((f) => f.startsWith('events.out.tfevents.'))).toBe(true);
    expect(fs.existsSync(path.join(app, 'logs/user-csv/version_0/metrics.csv'))).toBe(true);
    fs.rmSync(path.join(app, 'src/user.ts'));
    fs.rmSync(path.join(app, 'logs'), { recursive: true });
  });

  it('npm run train trains the Iris classifier and writes a TensorBoard run and a checkpoint', async (ctx) => {
    skipIfOffline(ctx);
    const train = ok(await sh('npm', ['run', 'train'], app, { EPOCHS: '40' }), 'npm run train');
    expect(train.stdout + train.stderr).not.toContain('looks like you are running TensorFlow.js in Node.js');
    const accuracy = /test: loss [\d.]+, accuracy ([\d.]+)/.exec(train.stdout);
    expect(accuracy, train.stdout).not.toBeNull();
    expect(Number(accuracy![1])).toBeGreaterThan(0.8);
    const run = path.join(app, 'logs/iris/version_0');
    expect(fs.readdirSync(run).some((f) => f.startsWith('events.out.tfevents.')), 'a TensorBoard run').toBe(true);
    expect(train.stdout).toContain(`best checkpoint: ${path.join(run, 'checkpoints')}`);
  });

  it('npm test passes the project’s own tests', async (ctx) => {
    skipIfOffline(ctx);
    const test = ok(await sh('npm', ['test'], app), 'npm test');
    expect(test.stdout).toMatch(/Tests\s+.*2 passed/);
  });
});
