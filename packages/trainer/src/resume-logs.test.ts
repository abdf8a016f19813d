import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRng } from '@flint/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChild as runChildIn } from './testing/kill-child.js';
import { readLogDir } from '../../loggers/src/testing/event-reader.js';

// Real fits in child processes (the built dist/ of the packages, cpu backend), killed with SIGKILL at
// seeded random moments and resumed with ckptPath 'last' in a new process, again and again: the CSV
// rows and the TensorBoard scalars must be those of an uninterrupted run, every step exactly once.

const packages = fileURLToPath(new URL('../../', import.meta.url));
const dist = (pkg: string, file = 'index.js'): string => pathToFileURL(path.join(packages, pkg, 'dist', file)).href;

const tfjs = pathToFileURL(createRequire(path.join(packages, 'trainer', 'package.json')).resolve('@tensorflow/tfjs')).href;

const CHILD = `
import * as core from ${JSON.stringify(dist('core'))};
import * as testing from ${JSON.stringify(dist('core', 'testing/index.js'))};
import * as tf from ${JSON.stringify(tfjs)};
import { Trainer } from ${JSON.stringify(dist('trainer'))};
import { CSVLogger, TensorBoardLogger } from ${JSON.stringify(dist('loggers'))};
import { LambdaCallback, ModelCheckpoint } from ${JSON.stringify(dist('callbacks'))};

const [saveDir, resume, everyN] = process.argv.slice(2);
core.seedEverything(7);
const data = testing.randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 3 });
const train = new core.DataLoader(data, { batchSize: 8, shuffle: true, seed: 5 });
const val = new core.DataLoader(data, { batchSize: 32 });
const callbacks = [new LambdaCallback({ onTrainBatchEnd: (t) => process.stdout.write('step ' + t.globalStep + '\\n') })];
if (Number(everyN) > 0) callbacks.push(new ModelCheckpoint({ saveLast: true, saveTopK: 0, everyNTrainSteps: Number(everyN) }));
const trainer = new Trainer({
  backend: 'cpu', maxEpochs: 8, logEveryNSteps: 1, enableProgressBar: false, enableModelSummary: false, callbacks,
  logger: [new TensorBoardLogger({ saveDir, maxQueue: 3 }), new CSVLogger({ saveDir, flushLogsEveryNSteps: 2 })],
});
trainer.events.on('message', (m) => process.stdout.write(m + '\\n'));
const module = new testing.BoringModule();
module.saveHyperparameters({ lr: 0.1 });
const before = tf.memory().numTensors;
await trainer.fit(module, train, val, resume === '1' ? { ckptPath: 'last' } : {});
process.stdout.write('done ' + trainer.globalStep + ' ' + trainer.logDir + ' tensors ' + before + ' ' + tf.memory().numTensors + '\\n');
data.dispose();
`;


/** The scalars of version_0 and of its train/ and validation/ sub-runs (stageRuns), keyed `<run>/<tag>`. */
function scalars(root: string): Record<string, Array<[number, number]>> {
  const runs = Object.entries(readLogDir(root).runs).filter(([name]) => name === 'version_0' || name.startsWith('version_0/'));
  expect(runs.map(([name]) => name).sort()).toEqual(['version_0', 'version_0/train', 'version_0/validation']);
  return Object.fromEntries(runs.flatMap(([name, run]) => Object.entries(run.scalars).map(([tag, s]) => [`${name}/${tag}`, s.points.map((p): [number, number] => [p[0], p[1]])])));
}

let tmp: string;
let script: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-resume-logs-'));
  script = path.join(tmp, 'child.mjs');
  fs.writeFileSync(script, CHILD);
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const runChild = (script: string, args: string[], killAt?: number, delayMs = 0) => runChildIn(packages, script, args, killAt, delayMs);

describe('kill -9 and resume', () => {
  it('5 SIGKILLs at seeded random moments, each resumed in a new process with ckptPath last: CSV rows and TensorBoard scalars as an uninterrupted run, every step once', { timeout: 120_000 }, async () => {
    const fullDir = path.join(tmp, 'full');
    const killedDir = path.join(tmp, 'killed');
    const uninterrupted = runChild(script, [fullDir, '0', '3']); // alongside the killed ones

    const random = createRng(2024); // seeded, so that a failing sequence of kills can be replayed
    const kills: string[] = [];
    let resume = '0';
    let last = 0;
    for (let k = 0; k < 5; k++) {
      // At least one step past the first checkpoint (every 3 steps), then anywhere in the next steps, but
      // never later than step 40 of 64: a child that reaches the end before the kill lands (a fast machine,
      // or a kill point past the last step) would make the test fail for the wrong reason.
      const killAt = Math.min(Math.max(last + 1, 4) + Math.floor(random.next() * 6), 40);
      const delay = Math.floor(random.next() * 40);
      const end = await runChild(script, [killedDir, resume, '3'], killAt, delay);
      expect(end.signal, `${end.out}\n${end.err}`).toBe('SIGKILL');
      last = Math.max(...[...end.out.matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1])));
      kills.push(`${killAt}+${delay}ms (reached ${last})`);
      resume = '1';
    }
    const end = await runChild(script, [killedDir, '1', '3']);
    expect(end.code, `${kills.join(', ')}\n${end.err}`).toBe(0);
    expect(end.out).toMatch(/Flint: resumed from .*version_0\/checkpoints\/last\.ckpt/);
    expect(end.out).toMatch(/done 64 \S+version_0 /);
    const full = await uninterrupted;
    expect(full.code, full.err).toBe(0);
    for (const out of [full.out, end.out]) {
      const [, before, after] = /tensors (\d+) (\d+)/.exec(out)!;
      expect(Number(after)).toBe(Number(before)); // no tensor leaked by fit
    }

    // One version folder: the resumed processes wrote logs and checkpoints back into version_0.
    const folders = fs.readdirSync(path.join(killedDir, 'flint_logs'), { withFileTypes: true }).filter((e) => e.isDirectory());
    expect(folders.map((e) => e.name)).toEqual(['version_0']);
    // (A kill during a checkpoint's atomic write may leave its temporary file beside it.)
    expect(fs.readdirSync(path.join(killedDir, 'flint_logs', 'version_0', 'checkpoints')).filter((f) => f.endsWith('.ckpt'))).toEqual(['last.ckpt']);
    const csv = (dir: string): string => fs.readFileSync(path.join(dir, 'flint_logs', 'version_0', 'metrics.csv'), 'utf8');
    const rows = csv(killedDir).trim().split('\n').slice(1);
    expect(rows.map((r) => Number(r.split(',')[1])), kills.join(', ')).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(csv(killedDir), kills.join(', ')).toBe(csv(fullDir));
    const tb = scalars(path.join(killedDir, 'flint_logs'));
    expect(tb['version_0/train_loss_step']!.map((p) => p[0])).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(tb, kills.join(', ')).toEqual(scalars(path.join(fullDir, 'flint_logs')));
  });
});
