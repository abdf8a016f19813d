import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoggerError } from '@flint/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CSVLogger, TensorBoardLogger } from './index.js';
import { readLogDir } from './testing/event-reader.js';

// Disk full (ENOSPC) in the middle of a write: node:fs.writeSync writes part of the chunk, then fails.
const disk = vi.hoisted(() => ({ full: false }));
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const writeSync = (fd: number, buffer: Uint8Array, offset = 0, length = buffer.length - offset): number => {
    if (!disk.full) return actual.writeSync(fd, buffer, offset, length);
    if (length > 1) return actual.writeSync(fd, buffer, offset, Math.floor(length / 2));
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  };
  return { ...actual, writeSync, default: { ...actual, writeSync } };
});

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-enospc-'));
  disk.full = false;
});
afterEach(() => {
  disk.full = false;
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('disk full while writing', () => {
  it('TensorBoardLogger cuts the half-written records off, reports once with the file, and TensorBoard reads what came before', () => {
    const l = new TensorBoardLogger({ saveDir: tmp, maxQueue: 100 });
    for (let step = 0; step < 5; step++) l.logMetrics({ loss: step }, step);
    l.save();
    const before = fs.statSync(l.eventFile!).size;
    for (let step = 5; step < 10; step++) l.logMetrics({ loss: step }, step);
    disk.full = true;
    let error: unknown;
    try {
      l.save();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LoggerError);
    expect((error as Error).message).toBe(
      `TensorBoardLogger could not write '${l.eventFile}': ENOSPC: no space left on device, write. Check that the folder is writable and the disk has space (option 'saveDir' is '${tmp}'). Training stops (onWriteError: 'stop'; pass onWriteError: 'continue' to train on without this logger).`,
    );
    disk.full = false;
    expect(fs.statSync(l.eventFile!).size).toBe(before);
    l.logMetrics({ loss: 10 }, 10);
    l.finalize('failed');
    const run = readLogDir(l.rootDir).runs['version_0']!;
    expect(run.scalars['loss']!.points.map((p) => p[0])).toEqual([0, 1, 2, 3, 4]);
    expect(run.files[0]!.read_problems).toEqual([]);
  });

  it("CSVLogger with 'continue' keeps whole rows only and goes on without writing", () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const l = new CSVLogger({ saveDir: tmp, onWriteError: 'continue' });
      l.logMetrics({ a: 1 }, 0);
      l.logMetrics({ a: 1.5 }, 1);
      l.save(); // writes the row of step 0, keeps the last one
      const text = fs.readFileSync(l.metricsFile, 'utf8');
      disk.full = true;
      l.logMetrics({ a: 2 }, 2);
      l.save();
      l.logMetrics({ a: 3 }, 3);
      l.finalize('success');
      disk.full = false;
      expect(fs.readFileSync(l.metricsFile, 'utf8')).toBe(text);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/^CSVLogger could not write '.*metrics\.csv': ENOSPC/);
    } finally {
      warn.mockRestore();
    }
  });
});
