import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, loadCheckpointFile } from '@flint/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogDir } from '../../loggers/src/testing/event-reader.js';

// The fault-injection suite: real training processes (testing/fault-child.mjs, the built packages on
// the cpu backend) are killed with SIGKILL at seeded random moments (during steps, checkpoint writes
// and logger flushes), interrupted with SIGINT/SIGTERM, given an unwritable folder, a path through a
// file, and a full disk. After each fault the run is started again (ckptPath 'last') until it
// finishes, and what is on disk must equal an uninterrupted run: the same final weights to the bit,
// every metric row exactly once with the same values (CSV and TensorBoard), one run folder, no stale
// temporary file, and a last checkpoint that loads. docs/reliability.md lists what each test proves.

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, 'testing', 'fault-child.mjs');
const distIndex = path.join(here, '..', 'dist', 'index.js');

/** The suite's kill moments come from this seed (printed on failure) through core's seeded generator. */
function rng(seed: number): () => number {
  const r = createRng(seed >>> 0);
  return () => r.next();
}
const SEED = Number(process.env.FLINT_FAULT_SEED ?? 20261204);

interface ChildConfig {
  root: string;
  stepDelayMs?: number;
  loggers?: string[];
  checkpoint?: boolean;
}

/** When to hit the child: `delayMs` after it printed `step n` / `saving n` (n or later). */
interface Trigger {
  on: 'step' | 'saving';
  n: number;
  delayMs?: number;
}

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether the trigger fired (the child may finish first). */
  hit: boolean;
}

function runChild(config: ChildConfig, hit?: { trigger: Trigger; signal: NodeJS.Signals; repeat?: number }, asUser?: string): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const args = [child, JSON.stringify(config)];
    const proc =
      asUser === undefined
        ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn('setpriv', [...(asUser === 'nocaps' ? ['--bounding-set=-all', '--inh-caps=-all'] : [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups']), process.execPath, ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
    let stdout = '';
    let stderr = '';
    let fired = false;
    const fire = (): void => {
      if (fired || hit === undefined) return;
      fired = true;
      proc.kill(hit.signal);
      for (let i = 1; i < (hit.repeat ?? 1); i++) setTimeout(() => proc.kill(hit.signal), 30 * i);
    };
    const trigger = hit?.trigger;
    proc.stdout.on('data', (d: Buffer) => {
      stdout += String(d);
      if (trigger === undefined || fired) return;
      const re = trigger.on === 'step' ? /^step (\d+)$/gm : /^saving (\d+)$/gm;
      for (const m of stdout.matchAll(re)) {
        if (Number(m[1]) >= trigger.n) {
          if (trigger.delayMs === undefined) fire();
          else setTimeout(fire, trigger.delayMs);
          break;
        }
      }
    });
    proc.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`fault child did not finish in 60 s (seed ${SEED}); stdout: ${stdout.slice(-500)}; stderr: ${stderr.slice(-2000)}`));
    }, 60_000);
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, hit: fired });
    });
  });
}

/** Starts the child again until it finishes (exit 0); fails on any other exit that was not our kill. */
async function runToEnd(config: ChildConfig): Promise<ChildEnd> {
  const end = await runChild(config);
  if (end.code !== 0) throw new Error(`resumed run exited ${String(end.code ?? end.signal)} (seed ${SEED}): ${end.stderr.slice(-3000)}`);
  return end;
}

interface RunOnDisk {
  versions: string[];
  csv: Map<number, string>;
  scalars: Record<string, Array<[number, number]>>;
  result: { weights: Record<string, number[]>; history: unknown; globalStep: number };
  temps: string[];
}

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Everything a user would look at after the run: CSV rows by step, TensorBoard scalars, weights, leftovers. */
function readRun(root: string): RunOnDisk {
  const runDir = path.join(root, 'run');
  const versions = fs.existsSync(runDir) ? fs.readdirSync(runDir).sort() : [];
  const csv = new Map<number, string>();
  const duplicates: string[] = [];
  for (const v of versions) {
    const file = path.join(runDir, v, 'metrics.csv');
    if (!fs.existsSync(file)) continue;
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const header = lines[0]!.split(',');
    const stepCol = header.indexOf('step');
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      const step = Number(cells[stepCol]);
      if (csv.has(step)) duplicates.push(`${step} (${v}: '${line}')`);
      // Rows compared by column name, so that a wider header after a resume does not matter.
      csv.set(step, JSON.stringify(Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']).filter(([, c]) => c !== ''))));
    }
  }
  if (duplicates.length > 0) throw new Error(`CSV rows logged more than once at steps ${duplicates.join(', ')}`);
  const scalars: Record<string, Array<[number, number]>> = {};
  const tb = readLogDir(runDir);
  for (const [run, data] of Object.entries(tb.runs)) {
    for (const [tag, s] of Object.entries(data.scalars)) {
      (scalars[`${run}/${tag}`] ??= []).push(...s.points.map((p): [number, number] => [p[0], p[1]]));
    }
  }
  const resultFile = path.join(root, 'result.json');
  const result = fs.existsSync(resultFile) ? (JSON.parse(fs.readFileSync(resultFile, 'utf8')) as RunOnDisk['result']) : { weights: {}, history: null, globalStep: -1 };
  const temps = walk(root).filter((f) => /\.tmp$/.test(f));
  return { versions, csv, scalars, result, temps };
}

function expectSameRun(actual: RunOnDisk, reference: RunOnDisk, what: string): void {
  expect(actual.versions, `${what}: logs and checkpoints stay in one run folder`).toEqual(reference.versions);
  expect(actual.temps, `${what}: no temporary file is left behind`).toEqual([]);
  expect(actual.result.globalStep, what).toBe(reference.result.globalStep);
  expect(actual.result.weights, `${what}: final weights equal an uninterrupted run's to the bit`).toEqual(reference.result.weights);
  expect(actual.result.history, `${what}: history`).toEqual(reference.result.history);
  const missing = [...reference.csv.keys()].filter((s) => !actual.csv.has(s));
  expect(missing, `${what}: CSV steps missing`).toEqual([]);
  expect([...actual.csv.entries()].sort((a, b) => a[0] - b[0]), `${what}: CSV rows`).toEqual([...reference.csv.entries()].sort((a, b) => a[0] - b[0]));
  for (const [tag, points] of Object.entries(reference.scalars)) {
    const got = actual.scalars[tag] ?? [];
    const steps = got.map((p) => p[0]);
    expect(new Set(steps).size, `${what}: TensorBoard ${tag} has each step once (steps ${steps.join(',')})`).toBe(steps.length);
    expect(got, `${what}: TensorBoard ${tag}`).toEqual(points);
  }
  expect(Object.keys(actual.scalars).sort(), `${what}: TensorBoard tags`).toEqual(Object.keys(reference.scalars).sort());
}

// The child always trains on the cpu backend (bit-exact): the suite's native pass need not repeat it.
const native = process.env.FLINT_BACKEND === 'tensorflow';
if (native) console.log('fault-injection: skipped in the native pass (FLINT_BACKEND=tensorflow): its child processes train on the cpu backend, which the default pass already ran');

let tmp: string;
let reference: RunOnDisk;
const TOTAL_STEPS = 36; // 3 epochs of 12 batches
let kills = 0;

beforeAll(async () => {
  if (native) return;
  if (!fs.existsSync(distIndex)) throw new Error(`the fault-injection suite runs the built packages: run 'pnpm build' first (${distIndex} is missing)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-faults-'));
  fs.chmodSync(tmp, 0o755);
  const root = path.join(tmp, 'reference');
  await runToEnd({ root });
  reference = readRun(root);
  expect(reference.result.globalStep).toBe(TOTAL_STEPS);
  expect(reference.csv.size).toBeGreaterThanOrEqual(TOTAL_STEPS);
}, 120_000);

afterAll(() => {
  if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
});

function lastCheckpoint(root: string): string | undefined {
  return walk(path.join(root, 'run')).find((f) => path.basename(f) === 'last.ckpt');
}

describe.skipIf(native)('kill -9 at random moments', () => {
  // Three runs, each killed until it is through: at a random step (after a random delay), right as a
  // checkpoint is being written, and at a random time; at least 20 kills in all.
  for (const [runIdx, kind] of (['step', 'saving', 'ms'] as const).entries()) {
    it(`${kind === 'step' ? 'during training steps' : kind === 'saving' ? 'during checkpoint writes' : 'at random times (logger flushes included)'}: the resumed run equals an uninterrupted one`, async () => {
      const random = rng(SEED + runIdx);
      const root = path.join(tmp, `kill-${kind}`);
      let done = false;
      let runKills = 0;
      let progress = 0;
      for (let attempt = 0; attempt < 40 && !done; attempt++) {
        // From step 2 on, so that the first checkpoint exists (a run killed before its first
        // checkpoint starts afresh in a new version folder). A step past the last one never
        // comes: that start runs to the end.
        const n = Math.max(2, progress + 1 + Math.floor(random() * 4));
        const trigger: Trigger =
          kind === 'ms'
            ? { on: 'step', n: 2, delayMs: Math.floor(random() * 200) } // a random time once the first checkpoint exists
            : { on: kind, n, delayMs: kind === 'step' ? Math.floor(random() * 3) : 0 };
        const end = await runChild({ root, stepDelayMs: 2 }, { trigger, signal: 'SIGKILL' });
        const steps = [...end.stdout.matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1]));
        if (steps.length > 0) progress = Math.max(progress, steps[steps.length - 1]!);
        if (end.signal === 'SIGKILL') {
          runKills += 1;
          // Whatever the moment, the last checkpoint on disk loads.
          const last = lastCheckpoint(root);
          if (last !== undefined) await expect(loadCheckpointFile(last)).resolves.toBeDefined();
        } else if (end.code === 0) done = true;
        else throw new Error(`run exited ${String(end.code)} after ${runKills} kills (seed ${SEED}): ${end.stderr.slice(-3000)}`);
      }
      expect(done, `the run finished within 40 starts (seed ${SEED})`).toBe(true);
      kills += runKills;
      expect(runKills).toBeGreaterThanOrEqual(kind === 'ms' ? 2 : 5);
      expectSameRun(readRun(root), reference, `after ${runKills} kills (${kind}, seed ${SEED})`);
    }, 240_000);
  }

  it('killed at least 20 times in all', () => {
    expect(kills).toBeGreaterThanOrEqual(20);
  });
});

describe.skipIf(native)('SIGINT and SIGTERM', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} stops at a batch boundary, exits ${code} saying how to resume, and the resume equals an uninterrupted run`, async () => {
      const random = rng(SEED + code);
      const root = path.join(tmp, signal);
      const n = 3 + Math.floor(random() * 25);
      const end = await runChild({ root, stepDelayMs: 5 }, { trigger: { on: 'step', n }, signal });
      // Flint re-raises the signal after cleaning up, as Python does after KeyboardInterrupt: the
      // shell reports 128 + the signal's number (130, 143).
      expect(end.code ?? 128 + (end.signal === 'SIGINT' ? 2 : end.signal === 'SIGTERM' ? 15 : 0), end.stderr).toBe(code);
      expect(end.stdout).toMatch(new RegExp(`^Flint: fit was interrupted by ${signal} at epoch \\d+, batch \\d+ \\(global step \\d+\\); resume with trainer\\.fit\\(module, train, val, \\{ ckptPath: '.*last\\.ckpt' \\}\\)$`, 'm'));
      expect(end.stdout.trim().split('\n').filter((l) => /interrupted by/i.test(l))).toHaveLength(1);
      const last = lastCheckpoint(root);
      expect(last, 'the interrupt wrote last.ckpt').toBeDefined();
      await runToEnd({ root, stepDelayMs: 0 });
      expectSameRun(readRun(root), reference, `after ${signal} at step ${n}`);
    }, 120_000);
  }

  it('a second SIGINT exits at once with 130', async () => {
    const root = path.join(tmp, 'double-sigint');
    const end = await runChild({ root, stepDelayMs: 40 }, { trigger: { on: 'step', n: 2 }, signal: 'SIGINT', repeat: 2 });
    expect(end.code ?? (end.signal === 'SIGINT' ? 130 : end.signal), end.stderr).toBe(130);
  }, 60_000);
});

describe.skipIf(native)('folders that cannot be written', () => {
  const isRoot = process.getuid?.() === 0;

  it('an unwritable folder (as a non-root user, or root without capabilities): exit 1, a message naming the folder, nothing written', async (ctx) => {
    if (!isRoot) {
      console.log('fault-injection: skipped the unwritable-folder test: it runs the child as user nobody, which needs root');
      ctx.skip();
    }
    const root = path.join(tmp, 'readonly');
    fs.mkdirSync(root);
    fs.chmodSync(root, 0o555); // owned by root, writable by nobody
    // As user nobody when nobody can read this checkout; a checkout in a private folder (mode 0700)
    // is read as root without capabilities instead, for whom the folder's mode bits hold as well.
    const readable = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', child, '-a', '-r', distIndex]).status === 0;
    if (!readable) console.log('fault-injection: user nobody cannot read this checkout; the unwritable-folder child runs as root without capabilities');
    const end = await runChild({ root }, undefined, readable ? '65534' : 'nocaps');
    expect(end.code, end.stderr).toBe(1);
    expect(end.stderr).toContain(root);
    expect(end.stderr).toMatch(/EACCES|permission denied/i);
    expect(fs.readdirSync(root)).toEqual([]);
  }, 60_000);

  it('a path through a file (ENOTDIR): exit 1 and a message naming it', async () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'not a folder');
    const root = path.join(file, 'logs');
    const end = await runChild({ root });
    expect(end.code, end.stderr).toBe(1);
    expect(end.stderr).toContain(file);
    expect(end.stderr).toMatch(/ENOTDIR|not a directory/i);
  }, 60_000);

  it('a full disk: exit 1 naming the file, no temporary file left, and after space is freed the resume equals an uninterrupted run', async (ctx) => {
    const mountPoint = path.join(tmp, 'small-disk');
    fs.mkdirSync(mountPoint);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      console.log(`fault-injection: skipped the full-disk test: mounting a small tmpfs failed (needs root and mount rights): ${String((error as Error).message).split('\n')[0]}`);
      ctx.skip();
    }
    try {
      // Leave the run 20 KB: enough to start and write the first checkpoint (two 4 KB pages), not to finish.
      const filler = path.join(mountPoint, 'filler');
      const free = () => {
        const s = fs.statfsSync(mountPoint);
        return s.bavail * s.bsize;
      };
      fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 20 * 1024)));
      const root = path.join(mountPoint, 'run-root');
      const end = await runChild({ root });
      expect(end.code, end.stdout + end.stderr).toBe(1);
      expect(end.stderr).toMatch(/ENOSPC|no space left/i);
      expect(end.stderr).toContain(root);
      expect(walk(root).filter((f) => f.endsWith('.tmp')), 'no temporary file left on the full disk').toEqual([]);
      fs.rmSync(filler);
      await runToEnd({ root });
      expectSameRun(readRun(root), reference, 'after a full disk');
    } finally {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
  }, 120_000);
});
