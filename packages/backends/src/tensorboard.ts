/**
 * `flint tensorboard [logdir]`: opens a log dir in TensorBoard for users who have Node but no
 * TensorBoard. The first time it creates a Python virtual environment with TensorBoard (pip), then
 * it starts TensorBoard on 127.0.0.1 and prints the URL. Where Python, venv or pip is missing it says
 * so and what to install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** The TensorBoard release Flint's event files are checked against (docs/loggers/tensorboard-logger.md). */
export const TENSORBOARD_VERSION = '2.21.0';

export interface TensorBoardCommandOptions {
  /** The folder to open (a TensorBoardLogger's `<saveDir>/<name>`). */
  readonly logdir: string;
  /** Port; default: 6006, or the next free one. */
  readonly port?: number | undefined;
  /** The Python that creates the virtual environment (default: python3, then python, from PATH). */
  readonly python?: string | undefined;
  /** The virtual environment (default: FLINT_TENSORBOARD_VENV, or `<cache>/flint/tensorboard-venv`). */
  readonly venv?: string | undefined;
  /** More arguments for tensorboard (`--load_fast=false`, `--samples_per_plugin=images=100`). */
  readonly extraArgs?: readonly string[] | undefined;
  /** Where progress lines go. */
  readonly print: (line: string) => void;
}

/** A failure the user can act on: the message says what is missing and what to install. */
export class TensorBoardSetupError extends Error {
  override name = 'TensorBoardSetupError';
}

export function defaultVenvDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FLINT_TENSORBOARD_VENV !== undefined && env.FLINT_TENSORBOARD_VENV !== '') return path.resolve(env.FLINT_TENSORBOARD_VENV);
  const cache = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(cache, 'flint', 'tensorboard-venv');
}

const isWindows = process.platform === 'win32';
const venvBin = (venv: string, name: string): string => (isWindows ? path.join(venv, 'Scripts', `${name}.exe`) : path.join(venv, 'bin', name));

const INSTALL_PYTHON =
  'Install Python 3 with its venv module (Debian/Ubuntu: sudo apt install python3 python3-venv; Fedora: sudo dnf install python3; ' +
  'macOS: brew install python; Windows: https://www.python.org/downloads/), or pass --python PATH.';

function run(cmd: string, args: readonly string[]): { ok: boolean; out: string; missing: boolean } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), missing };
}

/** The Python to create the environment with: the one given, or python3 / python from PATH (version 3.9 or later). */
export function findPython(given: string | undefined): string {
  const candidates = given !== undefined ? [given] : isWindows ? ['py', 'python', 'python3'] : ['python3', 'python'];
  for (const cmd of candidates) {
    const r = run(cmd, ['-c', 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])']);
    if (!r.ok) continue;
    if (Number(r.out.split('\n').at(-1)) >= 309) return cmd;
    if (given !== undefined) throw new TensorBoardSetupError(`flint tensorboard: ${given} is Python ${r.out}; TensorBoard needs Python 3.9 or later. ${INSTALL_PYTHON}`);
  }
  const what = given !== undefined ? `the Python given with --python (${given}) does not run` : `no Python 3 was found on PATH (tried ${candidates.join(', ')})`;
  throw new TensorBoardSetupError(`flint tensorboard: ${what}. TensorBoard is a Python program. ${INSTALL_PYTHON}`);
}

function hasTensorBoard(venv: string): boolean {
  const python = venvBin(venv, 'python');
  return fs.existsSync(python) && run(python, ['-c', 'import tensorboard']).ok;
}

/** Creates the virtual environment with TensorBoard unless it already has it; returns the tensorboard program. */
export function ensureTensorBoard(options: Pick<TensorBoardCommandOptions, 'python' | 'venv' | 'print'>): string {
  const venv = options.venv ?? defaultVenvDir();
  const tensorboard = venvBin(venv, 'tensorboard');
  if (hasTensorBoard(venv) && fs.existsSync(tensorboard)) return tensorboard;
  const python = findPython(options.python);
  if (!fs.existsSync(venvBin(venv, 'python'))) {
    options.print(`Creating a Python virtual environment for TensorBoard in ${venv} (once) ...`);
    fs.mkdirSync(path.dirname(venv), { recursive: true });
    const made = run(python, ['-m', 'venv', venv]);
    if (!made.ok) {
      fs.rmSync(venv, { recursive: true, force: true });
      throw new TensorBoardSetupError(
        `flint tensorboard: '${python} -m venv ${venv}' failed: ${made.out.split('\n').slice(-3).join(' ')}\n` +
          `The venv module (and pip) is missing: Debian/Ubuntu: sudo apt install python3-venv; elsewhere reinstall Python from python.org.`,
      );
    }
  }
  const pip = run(venvBin(venv, 'python'), ['-m', 'pip', '--version']);
  if (!pip.ok) {
    throw new TensorBoardSetupError(
      `flint tensorboard: the virtual environment ${venv} has no pip (${pip.out.split('\n').at(-1) ?? ''}). ` +
        `Install it (Debian/Ubuntu: sudo apt install python3-venv python3-pip), remove ${venv}, and run this again.`,
    );
  }
  options.print(`Installing tensorboard==${TENSORBOARD_VERSION} with pip (once) ...`);
  const install = spawnSync(venvBin(venv, 'python'), ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', `tensorboard==${TENSORBOARD_VERSION}`], {
    encoding: 'utf8',
  });
  if (install.status !== 0 || !hasTensorBoard(venv)) {
    const tail = `${install.stdout ?? ''}${install.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n  ');
    throw new TensorBoardSetupError(
      `flint tensorboard: pip could not install tensorboard==${TENSORBOARD_VERSION} into ${venv}:\n  ${tail}\n` +
        `Check the network or your pip index (PIP_INDEX_URL), or install TensorBoard yourself and run: tensorboard --logdir <dir>.`,
    );
  }
  return tensorboard;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(from = 6006): Promise<number> {
  for (let port = from; port < from + 100; port++) if (await portFree(port)) return port;
  throw new TensorBoardSetupError(`flint tensorboard: no free port in ${from}..${from + 99}; pass --port.`);
}

/** TensorBoard exited before serving; `portTaken` when another program got the port first. */
class ExitedEarly extends TensorBoardSetupError {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

/** Waits until our TensorBoard serves `logdir` at `url` (another one on that port does not count). */
async function waitForHttp(url: string, logdir: string, child: ChildProcess, output: () => string, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new ExitedEarly(
        `flint tensorboard: TensorBoard exited (${child.exitCode ?? child.signalCode}) before serving:\n${output().trim()}`,
        /already in use|could not bind|Address in use/i.test(output()),
      );
    }
    try {
      const res = await fetch(`${url}data/environment`);
      if (res.ok && ((await res.json()) as { data_location?: string }).data_location === logdir) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new TensorBoardSetupError(`flint tensorboard: TensorBoard did not answer at ${url} within ${timeoutMs / 1000} s:\n${output().trim()}`);
}

/** Starts TensorBoard on 127.0.0.1 and resolves with its URL once it answers; the process stays running. */
export async function startTensorBoard(options: TensorBoardCommandOptions): Promise<{ url: string; child: ChildProcess }> {
  const logdir = path.resolve(options.logdir);
  if (!fs.existsSync(logdir) || !fs.statSync(logdir).isDirectory()) {
    throw new TensorBoardSetupError(
      `flint tensorboard: the log dir ${logdir} does not exist. Pass the folder your TensorBoardLogger writes (its <saveDir>/<name>, e.g. runs/mnist).`,
    );
  }
  const tensorboard = ensureTensorBoard(options);
  let from = 6006;
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort(from));
    let output = '';
    const child = spawn(tensorboard, ['--logdir', logdir, '--host', '127.0.0.1', '--port', String(port), ...(options.extraArgs ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    try {
      await waitForHttp(url, logdir, child, () => output);
      return { url, child };
    } catch (error) {
      child.kill();
      // A port we picked was taken in the meantime (another TensorBoard starting): the next one.
      if (error instanceof ExitedEarly && error.portTaken && options.port === undefined && attempt < 5) {
        from = port + 1;
        continue;
      }
      throw error;
    }
  }
}
