import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `flint tensorboard` as a user runs it: the built CLI in a child process.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
// The environment the command creates once; kept between test runs (like the user's cache).
const venv = path.join(os.tmpdir(), 'flint-tensorboard-venv-test');

let tmp: string;
beforeAll(() => {
  if (!fs.existsSync(cli)) throw new Error(`run 'pnpm build' first: ${cli} is missing`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-tb-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('flint tensorboard', () => {
  it('says what to install when Python is missing, and refuses a log dir that does not exist', () => {
    const logs = fs.mkdtempSync(path.join(tmp, 'logs-'));
    const fresh = path.join(tmp, 'no-venv');
    const noPython = spawnSync(process.execPath, [cli, 'tensorboard', logs, '--python', path.join(tmp, 'no-such-python3'), '--venv', fresh], { encoding: 'utf8' });
    expect(noPython.status).toBe(1);
    expect(noPython.stderr).toContain(`flint tensorboard: the Python given with --python (${path.join(tmp, 'no-such-python3')}) does not run. TensorBoard is a Python program.`);
    expect(noPython.stderr).toContain('sudo apt install python3 python3-venv');
    expect(fs.existsSync(fresh)).toBe(false);
    // No python on PATH at all.
    const emptyPath = spawnSync(process.execPath, [cli, 'tensorboard', logs, '--venv', fresh], { encoding: 'utf8', env: { ...process.env, PATH: tmp } });
    expect(emptyPath.status).toBe(1);
    expect(emptyPath.stderr).toContain('no Python 3 was found on PATH (tried python3, python)');
    const missing = spawnSync(process.execPath, [cli, 'tensorboard', path.join(tmp, 'nope')], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`the log dir ${path.join(tmp, 'nope')} does not exist`);
    const badPort = spawnSync(process.execPath, [cli, 'tensorboard', logs, '--port', 'x'], { encoding: 'utf8' });
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toContain("--port must be an integer from 1 to 65535, received 'x'");
  });

  it('creates the environment once, serves the log dir on 127.0.0.1, prints the URL, and stops on SIGTERM', async () => {
    const logs = fs.mkdtempSync(path.join(tmp, 'logs-'));
    fs.mkdirSync(path.join(logs, 'run_a'));
    const child = spawn(process.execPath, [cli, 'tensorboard', logs, '--venv', venv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = await new Promise<string | undefined>((resolve) => {
      const timer = setInterval(() => {
        const m = /TensorBoard serves .* at (http:\/\/127\.0\.0\.1:\d+\/) \(Ctrl\+C stops it\)/.exec(out);
        if (m !== null) {
          clearInterval(timer);
          resolve(m[1]);
        }
      }, 200);
      void exited.then(() => {
        clearInterval(timer);
        resolve(undefined);
      });
    });
    if (url === undefined) {
      if (/pip could not install|has no pip|venv module/.test(err)) {
        console.log(`flint tensorboard test skipped: this machine cannot install TensorBoard: ${err.trim()}`);
        return;
      }
      throw new Error(`flint tensorboard exited without serving:\n${out}\n${err}`);
    }
    const runs = (await (await fetch(`${url}data/runs`)).json()) as unknown;
    expect(Array.isArray(runs)).toBe(true);
    expect(fs.existsSync(path.join(venv, 'bin', 'tensorboard'))).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The second start reuses the environment: no "Creating" or "Installing" line.
    const again = spawn(process.execPath, [cli, 'tensorboard', logs, '--venv', venv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out2 = '';
    again.stdout.on('data', (d: Buffer) => (out2 += d.toString()));
    const exited2 = new Promise<number | null>((resolve) => again.once('exit', (code) => resolve(code)));
    while (!out2.includes('Ctrl+C stops it') && again.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(out2).not.toMatch(/Creating|Installing/);
    again.kill('SIGTERM');
    expect(await exited2).toBe(0);
  }, 600_000);
});
