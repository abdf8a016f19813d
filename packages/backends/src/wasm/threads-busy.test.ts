import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// threads: 'auto' with the real idle-CPU probe, in a fresh process started while every CPU is busy.

const here = path.dirname(fileURLToPath(import.meta.url));
const packageDir = path.resolve(here, '../..');
const built = path.join(packageDir, 'dist', 'index.js');
const cpus = os.availableParallelism();
const busy: ChildProcess[] = [];
let cacheDir: string | undefined;

afterAll(() => {
  for (const p of busy) if (p.exitCode === null && p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
  if (cacheDir !== undefined) fs.rmSync(cacheDir, { recursive: true, force: true });
});

function run(code: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: packageDir });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (c) => resolve({ code: c, out, err }));
  });
}

describe.runIf(cpus >= 2 && fs.existsSync(built))("threads: 'auto' on a busy machine", () => {
  it('a process started while every CPU runs other work chooses one thread and says how many CPUs were idle', async () => {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-wasm-busy-'));
    for (let i = 0; i < cpus; i++) busy.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 500)); // the busy loops are running
    const child = await run(`
      import '@tensorflow/tfjs';
      import '@tensorflow/tfjs-backend-wasm';
      const { installWasmImprovements } = await import(${JSON.stringify(pathToFileURL(built).href)});
      const report = await installWasmImprovements({ cacheDir: ${JSON.stringify(cacheDir)} });
      process.stdout.write(JSON.stringify({ threads: report.threads, note: report.threadsNote ?? null }));
    `);
    expect(child.code, child.err).toBe(0);
    const report = JSON.parse(child.out) as { threads: number; note: string | null };
    expect(report.threads).toBe(1);
    expect(report.note).toMatch(new RegExp(`^\\d+\\.\\d of ${cpus} CPUs idle$`));
  });
});
