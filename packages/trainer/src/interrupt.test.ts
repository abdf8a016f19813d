import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Callback, createRng, DataLoader, InterruptedError, seedEverything, type LightningModule, type TrainerContext } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogDir } from '../../loggers/src/testing/event-reader.js';
import { Trainer } from './index.js';

// Ctrl-C and SIGTERM, sent to real child processes at seeded random moments: the run stops at the
// next batch boundary, runs onException and teardown, finalizes the loggers as 'interrupted', writes
// last.ckpt, prints one line saying how to resume, and the process ends with 130 / 143.

const packages = fileURLToPath(new URL('../../', import.meta.url));
let root: string;
let child: string;
let n = 0;

beforeAll(() => {
  for (const p of ['core', 'callbacks', 'loggers', 'trainer']) {
    if (!fs.existsSync(path.join(packages, p, 'dist', 'index.js'))) throw new Error(`packages/${p}/dist is missing: run \`pnpm build\` first (these tests run the built packages in child processes).`);
  }
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-interrupt-'));
  child = path.join(root, 'child.mjs');
  fs.writeFileSync(child, CHILD);
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** The child: a seeded BoringModule fit (or test) on the cpu backend, batches slowed down by `batchMs`. */
const CHILD = `
import { appendFileSync } from 'node:fs';
const cfg = JSON.parse(process.argv[2]);
const load = (p) => import(cfg.packages + p + '/dist/index.js');
const [core, { Trainer }, { ModelCheckpoint }, { TensorBoardLogger, CSVLogger }] = await Promise.all([load('core'), load('trainer'), load('callbacks'), load('loggers')]);
const { BoringModule, randomClassificationDataset } = await import(cfg.packages + 'core/dist/testing/index.js');
const mark = (event) => appendFileSync(cfg.markers, JSON.stringify(event) + '\\n');
const sleep = (ms) => ms > 0 && Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
class Recorder extends core.Callback {
  onTrainBatchEnd(trainer) { process.stdout.write('batch ' + trainer.globalStep + '\\n'); sleep(cfg.batchMs); }
  onValidationBatchEnd() { sleep(cfg.batchMs); }
  onTestBatchEnd(_t, _m, _o, _b, i) { process.stdout.write('batch ' + i + '\\n'); sleep(cfg.batchMs); }
  onException(_t, _m, error) {
    mark({ hook: 'onException', name: error.name, code: error.code, signal: error.signal, position: error.position });
    if (cfg.hangOnException) return new Promise((resolve) => setTimeout(resolve, 30_000));
  }
  teardown(_t, _m, stage) { mark({ hook: 'teardown', stage }); }
}
class MarkedCSV extends CSVLogger {
  finalize(status) { mark({ hook: 'finalize', status }); return super.finalize(status); }
}
core.seedEverything(7);
const loggers = cfg.loggers ? [new TensorBoardLogger({ saveDir: cfg.dir, name: 'logs', version: 0 }), new MarkedCSV({ saveDir: cfg.dir, name: 'csv', version: 0 })] : false;
const callbacks = [new Recorder()];
if (cfg.checkpoint === 'model') callbacks.push(new ModelCheckpoint({ dirpath: cfg.dir + '/ckpts', monitor: 'val_loss', saveTopK: 2, saveLast: true }));
const trainer = new Trainer({
  backend: 'cpu', maxEpochs: cfg.maxEpochs, logEveryNSteps: 1, enableProgressBar: false, enableModelSummary: false,
  enableCheckpointing: cfg.checkpoint === 'default', logger: loggers, defaultRootDir: cfg.dir, callbacks,
});
const module = new BoringModule(8, 2);
const train = new core.DataLoader(randomClassificationDataset({ n: 256, features: 8, seed: 1 }), { batchSize: 8, shuffle: true, seed: 5 });
const val = new core.DataLoader(randomClassificationDataset({ n: 64, features: 8, seed: 2 }), { batchSize: 8 });
if (cfg.stage === 'test') await trainer.test(module, val);
else await trainer.fit(module, train, val, cfg.ckptPath === undefined ? {} : { ckptPath: cfg.ckptPath });
mark({ hook: 'done', globalStep: trainer.globalStep, epoch: trainer.currentEpoch, weights: module.layer.weight.arraySync() });
`;

interface ChildConfig {
  loggers?: boolean;
  checkpoint?: 'default' | 'model' | 'none';
  maxEpochs?: number;
  batchMs?: number;
  hangOnException?: boolean;
  stage?: 'fit' | 'test';
  ckptPath?: string;
}

interface Marker {
  hook: string;
  [key: string]: unknown;
}

interface ChildRun {
  dir: string;
  /** The exit status a shell reports: the exit code, or 128 + the signal's number. */
  status: number;
  stdout: string;
  stderr: string;
  markers: Marker[];
  /** Milliseconds from the last signal sent to the exit. */
  exitMs: number;
}

/**
 * Runs the child; `signals[i]` is sent `delays[i]` ms after the first batch line (the next ones
 * after the previous signal, once `waitFor` marker hook appeared when given).
 */
function runChild(config: ChildConfig, signals: NodeJS.Signals[] = [], delays: number[] = [], waitFor?: string): Promise<ChildRun> {
  const dir = path.join(root, `run${n++}`);
  fs.mkdirSync(dir);
  const markersFile = path.join(dir, 'markers.jsonl');
  const cfg = { packages, dir, markers: markersFile, maxEpochs: 3, batchMs: 0, checkpoint: 'none', stage: 'fit', ...config };
  // Whole lines only: the child may be appending one right now.
  const readMarkers = (): Marker[] =>
    fs.existsSync(markersFile) ? (fs.readFileSync(markersFile, 'utf8').match(/^.*\n/gm) ?? []).map((l) => JSON.parse(l) as Marker) : [];
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let started = false;
    let lastSent = 0;
    const send = async (): Promise<void> => {
      for (let i = 0; i < signals.length; i++) {
        await new Promise((r) => setTimeout(r, delays[i] ?? 0));
        if (i > 0 && waitFor !== undefined) while (!readMarkers().some((m) => m.hook === waitFor) && proc.exitCode === null) await new Promise((r) => setTimeout(r, 5));
        lastSent = performance.now();
        proc.kill(signals[i]);
      }
    };
    proc.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    proc.stdout.on('data', (d: Buffer) => {
      stdout += String(d);
      if (!started && /^batch \d+$/m.test(stdout)) {
        started = true;
        send().catch(reject);
      }
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the child did not end within 60 s; stdout: ${stdout.slice(-500)}; stderr: ${stderr}`));
    }, 60_000);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      const status = code ?? 128 + os.constants.signals[signal!];
      resolve({ dir, status, stdout, stderr, markers: readMarkers(), exitMs: performance.now() - lastSent });
    });
  });
}

/** The lines starting with "Flint: " other than the backend line. */
const flintLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('Flint: ') && !l.startsWith('Flint: accelerator'));

/** Seeded random moments (ms after the first batch). */
const rng = createRng(Number(process.env.SEED ?? 11));
const moment = (maxMs: number) => Math.floor(rng.next() * maxMs);

describe('SIGINT and SIGTERM in child processes', () => {
  it('SIGINT at a random moment with TensorBoard and CSV loggers and the default last.ckpt: 130, onException, teardown, loggers finalized as interrupted and flushed, one resume line; the resume in a new process ends with the weights of an uninterrupted run', async () => {
    // The uninterrupted run, here: the child's seed, module and data, in the same order.
    seedEverything(7);
    const fullTrainer = new Trainer({ backend: 'cpu', maxEpochs: 3, logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false });
    const full = new BoringModule(8, 2);
    const trainData = randomClassificationDataset({ n: 256, features: 8, seed: 1 });
    const valData = randomClassificationDataset({ n: 64, features: 8, seed: 2 });
    fullTrainer.events.on('message', () => undefined);
    await expectNoLeak(() => fullTrainer.fit(full, new DataLoader(trainData, { batchSize: 8, shuffle: true, seed: 5 }), new DataLoader(valData, { batchSize: 8 })), 'uninterrupted fit');
    trainData.dispose();
    valData.dispose();
    const done = { hook: 'done', globalStep: 96, epoch: 3, weights: full.layer.weight.arraySync() };

    const delay = moment(250);
    const run = await runChild({ loggers: true, checkpoint: 'default', batchMs: 4 }, ['SIGINT'], [delay]);
    expect(run.status, `delay ${delay} ms; ${run.stderr}`).toBe(130);
    const exception = run.markers.find((m) => m.hook === 'onException')!;
    expect(exception).toMatchObject({ name: 'InterruptedError', code: 'INTERRUPTED', signal: 'SIGINT' });
    const position = exception.position as { epoch: number; batch: number; globalStep: number; runningStage: string };
    expect(run.markers.map((m) => m.hook)).toEqual(['onException', 'teardown', 'finalize']);
    expect(run.markers[2]).toEqual({ hook: 'finalize', status: 'interrupted' });
    const ckpt = path.join(run.dir, 'logs', 'version_0', 'checkpoints', 'last.ckpt');
    const where =
      position.runningStage === 'train'
        ? `at epoch ${position.epoch}, batch ${position.batch} (global step ${position.globalStep})`
        : `in the validation of epoch ${position.epoch}, after batch ${position.batch} (global step ${position.globalStep})`;
    expect(flintLines(run.stdout)).toEqual([`Flint: fit was interrupted by SIGINT ${where}; resume with trainer.fit(module, train, val, { ckptPath: '${ckpt}' })`]);
    expect(fs.existsSync(ckpt)).toBe(true);
    expect(fs.readdirSync(path.dirname(ckpt))).toEqual(['last.ckpt']);
    // Every step up to the interrupt reached both files (the last batch's at Lightning's step: the optimizer steps before it).
    const logs = readLogDir(path.join(run.dir, 'logs'));
    const steps = logs.runs['version_0']!.scalars['train_loss_step']!.points.map((p) => p[0]);
    expect(steps[steps.length - 1]).toBe(position.globalStep - 1);
    const csv = fs.readFileSync(path.join(run.dir, 'csv', 'version_0', 'metrics.csv'), 'utf8');
    const csvSteps = csv.trimEnd().split('\n').slice(1).map((row) => Number(row.split(',')[1]));
    expect(Math.max(...csvSteps)).toBe(position.globalStep - 1);
    // TensorBoard's HParams tab does not show the run as a success.
    expect(JSON.stringify(logs)).not.toContain('"SUCCESS"');

    const resumed = await runChild({ loggers: true, checkpoint: 'default', ckptPath: ckpt });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`Flint: resumed from ${ckpt} at epoch ${position.epoch}, batch `);
    expect(resumed.markers.find((m) => m.hook === 'done')).toEqual(done);
  });

  it('SIGTERM at a random moment with a ModelCheckpoint(saveLast, top 2 by val_loss) and no logger: 143, last.ckpt at the interrupt, the top-k files untouched', async () => {
    const delay = moment(250);
    const run = await runChild({ checkpoint: 'model', batchMs: 4 }, ['SIGTERM'], [delay]);
    expect(run.status, `delay ${delay} ms; ${run.stderr}`).toBe(143);
    expect(run.markers.map((m) => m.hook)).toEqual(['onException', 'teardown']);
    const position = run.markers[0]!.position as { globalStep: number };
    const last = path.join(run.dir, 'ckpts', 'last.ckpt');
    expect(flintLines(run.stdout)).toHaveLength(1);
    expect(flintLines(run.stdout)[0]).toMatch(new RegExp(`^Flint: fit was interrupted by SIGTERM .*\\(global step ${position.globalStep}\\); resume with trainer\\.fit\\(module, train, val, \\{ ckptPath: '${last}' \\}\\)$`));
    const files = fs.readdirSync(path.join(run.dir, 'ckpts'));
    expect(files).toContain('last.ckpt');
    expect(files.filter((f) => f !== 'last.ckpt').every((f) => /^epoch=\d-step=\d+\.ckpt$/.test(f))).toBe(true);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('SIGINT with a logger and enableCheckpointing: false (ignored before): 130, and the line says no checkpoint was written', async () => {
    const delay = moment(150);
    const run = await runChild({ loggers: true, batchMs: 4 }, ['SIGINT'], [delay]);
    expect(run.status, `delay ${delay} ms; ${run.stderr}`).toBe(130);
    expect(run.markers.map((m) => m.hook)).toEqual(['onException', 'teardown', 'finalize']);
    expect(flintLines(run.stdout)).toHaveLength(1);
    expect(flintLines(run.stdout)[0]).toMatch(
      /^Flint: fit was interrupted by SIGINT .*; no checkpoint was written, so the fit cannot resume from here \(keep enableCheckpointing: true, or add a ModelCheckpoint with saveLast: true, to write last\.ckpt when interrupted\)\.$/,
    );
  });

  it('a second SIGINT while the first is being cleaned up ends the process at once with 130', async () => {
    const run = await runChild({ loggers: true, batchMs: 4, hangOnException: true }, ['SIGINT', 'SIGINT'], [moment(100), 0], 'onException');
    expect(run.status, run.stderr).toBe(130);
    expect(run.exitMs).toBeLessThan(2000);
    expect(run.markers.map((m) => m.hook)).toEqual(['onException']);
  });

  it('SIGTERM during trainer.test: 143, the loggers finalized as interrupted, one line', async () => {
    const run = await runChild({ loggers: true, batchMs: 30, stage: 'test' }, ['SIGTERM'], [moment(60)]);
    expect(run.status, run.stderr).toBe(143);
    expect(run.markers.map((m) => m.hook)).toEqual(['onException', 'teardown', 'finalize']);
    expect(run.markers[2]).toEqual({ hook: 'finalize', status: 'interrupted' });
    const batch = (run.markers[0]!.position as { batch: number }).batch;
    expect(flintLines(run.stdout)).toEqual([`Flint: test was interrupted by SIGTERM after test batch ${batch}.`]);
  });
});

describe('a signal in this process, with exitOnInterrupt: false', () => {
  const data = randomClassificationDataset({ n: 64, features: 4, seed: 3 });
  afterAll(() => data.dispose());

  it('fit rejects with the InterruptedError after onException and teardown; trainer.interrupted and stopReason say so; no listener and no tensor is left', async () => {
    const calls: string[] = [];
    class SendSignal extends Callback {
      override onTrainBatchEnd(trainer: TrainerContext): void {
        if (trainer.globalStep === 5) process.kill(process.pid, 'SIGINT');
      }
      override onException(_t: TrainerContext, _m: LightningModule, error: unknown): void {
        calls.push(`onException ${(error as Error).name}`);
      }
      override teardown(): void {
        calls.push('teardown');
      }
    }
    const listeners = process.listenerCount('SIGINT') + process.listenerCount('SIGTERM');
    const options = { backend: 'cpu', logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, exitOnInterrupt: false } as const;
    const trainer = new Trainer({ ...options, maxEpochs: 1000, callbacks: [new SendSignal()] });
    const lines: string[] = [];
    trainer.events.on('message', (l) => lines.push(l));
    const module = new BoringModule();
    const error = await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 4 })).then(() => undefined, (e: unknown) => e), 'interrupted fit');
    expect(error).toBeInstanceOf(InterruptedError);
    const e = error as InterruptedError;
    expect(e.signal).toBe('SIGINT');
    expect(e.code).toBe('INTERRUPTED');
    // Stopped at the first batch boundary where the event loop ran after the signal (the loops let it run every 10 ms).
    expect(e.position.globalStep).toBeGreaterThanOrEqual(5);
    expect(e.message).toBe(`fit was interrupted by SIGINT at epoch ${e.position.epoch}, batch ${e.position.batch} (global step ${e.position.globalStep}).`);
    expect(calls).toEqual(['onException InterruptedError', 'teardown']);
    expect(trainer.interrupted).toBe(true);
    expect(trainer.stopReason).toMatchObject({ rule: 'interrupted', message: 'SIGINT received', source: 'signal', values: { signal: 'SIGINT' } });
    expect(lines.filter((l) => l.includes('interrupted'))).toEqual([`Flint: ${e.message.slice(0, -1)}; no checkpoint was written, so the fit cannot resume from here (keep enableCheckpointing: true, or add a ModelCheckpoint with saveLast: true, to write last.ckpt when interrupted).`]);
    expect(process.listenerCount('SIGINT') + process.listenerCount('SIGTERM')).toBe(listeners);

    // Many runs, one of them failing, leave no listener behind; the next fit is not interrupted.
    const again = new Trainer({ ...options, maxEpochs: 1 });
    for (let i = 0; i < 15; i++) await expectNoLeak(() => again.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    const failing = new Trainer({ ...options, maxEpochs: 1 });
    const wrongShape = new BoringModule(8);
    await expectNoLeak(() => expect(failing.fit(wrongShape, new DataLoader(data, { batchSize: 16 }))).rejects.toThrow('[Flint] in BoringModule.trainingStep on batch 0 of epoch 0'), 'failing fit');
    expect(again.interrupted).toBe(false);
    expect(process.listenerCount('SIGINT') + process.listenerCount('SIGTERM')).toBe(listeners);
  });

  it('exitOnInterrupt must be a boolean', () => {
    expect(() => new Trainer({ exitOnInterrupt: 'no' as unknown as boolean })).toThrow(`Trainer option 'exitOnInterrupt': Invalid input: expected boolean, received string (received "no")`);
  });
});
