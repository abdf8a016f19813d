import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogDir } from './testing/event-reader.js';

// A TensorBoardLogger in a child process that is killed, interrupted or exits without finalize must
// leave an event file that TensorBoard reads up to its last flushed record.

const testing = fileURLToPath(new URL('./testing/', import.meta.url));
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-kill-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  lastLogged: number;
}

/** Runs kill-child.ts; once it printed `logged >= until`, sends `signal` (if any). */
function runChild(dir: string, maxQueue: number, mode: string, until: number, signal?: NodeJS.Signals): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', './register-ts.mjs', 'kill-child.ts', dir, String(maxQueue), mode], {
      cwd: testing,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lastLogged = -1;
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    child.stdout.on('data', (d: Buffer) => {
      for (const m of String(d).matchAll(/logged (\d+)/g)) lastLogged = Number(m[1]);
      if (signal !== undefined && !sent && lastLogged >= until) {
        sent = true;
        child.kill(signal);
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not finish in time; stderr: ${stderr}`));
    }, 90_000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code !== null && code !== 3 && code !== 0) reject(new Error(`child exited with ${code}: ${stderr}`));
      else resolve({ code, signal: sig, lastLogged });
    });
  });
}

function lossPoints(dir: string): { steps: number[]; values: number[]; problems: string[] } {
  const run = readLogDir(path.join(dir, 'kill')).runs['version_0']!;
  const pts = run.scalars['loss']?.points ?? [];
  return { steps: pts.map((p) => p[0]), values: pts.map((p) => p[1]), problems: run.files.flatMap((f) => f.read_problems) };
}

describe('kill during write', () => {
  it('SIGKILL mid-run: the file reads cleanly up to the last whole record; SIGTERM/SIGINT/exit flush everything', { timeout: 240_000 }, async () => {
    const dirs = { kill: path.join(tmp, 'kill'), term: path.join(tmp, 'term'), int: path.join(tmp, 'int'), exit: path.join(tmp, 'exit') };
    const [killed, termed, inted, exited] = await Promise.all([
      runChild(dirs.kill, 1, 'loop', 2000, 'SIGKILL'),
      runChild(dirs.term, 10_000, 'idle', 49, 'SIGTERM'),
      runChild(dirs.int, 10_000, 'idle', 49, 'SIGINT'),
      runChild(dirs.exit, 10_000, 'exit', Infinity),
    ]);

    // SIGKILL while writing one record per event: every whole record is read, in order, at most a
    // torn last record is skipped (quietly, as TensorBoard does).
    expect(killed.signal).toBe('SIGKILL');
    const k = lossPoints(dirs.kill);
    expect(k.steps.length).toBeGreaterThanOrEqual(2000);
    expect(k.steps).toEqual(k.steps.map((_, i) => i));
    expect(k.values).toEqual(k.steps.map((s) => Math.fround(1 / (s + 1))));
    expect(k.problems.every((p) => p.startsWith('truncated'))).toBe(true);

    // Nothing was flushed before the signal (maxQueue 10000, flushSecs 3600): the exit handlers
    // flushed it, and the process still ended by the signal (or the exit code) it was given.
    for (const [end, dir, signal] of [
      [termed, dirs.term, 'SIGTERM'],
      [inted, dirs.int, 'SIGINT'],
    ] as const) {
      expect(end.signal).toBe(signal);
      expect(lossPoints(dir)).toEqual({ steps: [...Array(50).keys()], values: [...Array(50).keys()].map((s) => Math.fround(1 / (s + 1))), problems: [] });
    }
    expect(exited.code).toBe(3);
    expect(lossPoints(dirs.exit).steps).toHaveLength(50);
    // The CSVLogger's rows, all still in memory, were written by the same handlers.
    for (const dir of [dirs.term, dirs.int, dirs.exit]) {
      const lines = fs.readFileSync(path.join(dir, 'kill', 'version_0', 'metrics.csv'), 'utf8').trim().split('\n');
      expect(lines[0]).toBe('epoch,step,loss');
      expect(lines.length).toBe(51);
      expect(lines[50]).toBe(',49,49');
    }
  });
});
