#!/usr/bin/env node
/**
 * The `flint` command:
 *
 *   flint setup-native [--python PATH] [--force] [--check]
 *
 * builds @tensorflow/tfjs-node's native addon against the tensorflow-cpu wheel where tfjs-node's own
 * install cannot download libtensorflow (docs/native-backend.md).
 *
 *   flint tensorboard [logdir] [--port N] [--python PATH] [--venv DIR]
 *
 * opens a log dir in TensorBoard, installed once into a Python virtual environment
 * (docs/loggers/tensorboard-logger.md). Exit codes: 0 done, 1 failed, 2 usage.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `Usage: flint setup-native [--python PATH] [--force] [--check]
       flint tensorboard [logdir] [--port N] [--python PATH] [--venv DIR] [-- TENSORBOARD_ARGS]

flint setup-native builds the native TensorFlow backend (@tensorflow/tfjs-node) from the tensorflow-cpu wheel,
for machines where tfjs-node's own install cannot download libtensorflow.

  --python PATH  the Python whose pip fetches the wheel (default: python3 from PATH)
  --force        rebuild even when a working build is found
  --check        only check the current build; exit 1 when it does not work
  -h, --help     show this text

flint tensorboard opens logdir (default: flint_logs) in TensorBoard on 127.0.0.1 and prints the URL.
The first time it creates a Python virtual environment with TensorBoard through pip (in
~/.cache/flint/tensorboard-venv, or FLINT_TENSORBOARD_VENV). Ctrl+C stops it.

  --port N       port (default: 6006, or the next free one)
  --python PATH  the Python that creates the environment (default: python3 from PATH)
  --venv DIR     the environment to use or create
  -- ARGS        passed on to tensorboard (e.g. -- --load_fast=false)
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'tensorboard') return tensorboardCommand(rest);
  if (command !== 'setup-native') {
    process.stderr.write(`flint: unknown command '${command}'; the commands are: setup-native, tensorboard\n\n${USAGE}`);
    return 2;
  }
  let values: { python?: string | undefined; force?: boolean | undefined; check?: boolean | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: {
        python: { type: 'string' },
        force: { type: 'boolean' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`flint setup-native: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  // Loaded only now: @flint/core brings TensorFlow.js, which --help and usage errors do not need.
  const [{ FlintError }, { setupNative }] = await Promise.all([import('@flint/core'), import('./tensorflow/setup/index.js')]);
  try {
    const report = await setupNative({ python: values.python, force: values.force ?? false, check: values.check ?? false });
    if (values.check === true) {
      process.stdout.write(`native backend works: TensorFlow ${report.tfVersion}, ${report.packageDir}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof FlintError) {
      process.stderr.write(`\n${error.message}\n`);
      return error.name === 'MisconfigurationError' ? 2 : 1;
    }
    throw error;
  }
}

async function tensorboardCommand(argv: readonly string[]): Promise<number> {
  // Everything after `--` goes to TensorBoard itself (`-- --load_fast=false`).
  const dashDash = argv.indexOf('--');
  const args = dashDash === -1 ? argv : argv.slice(0, dashDash);
  const extraArgs = dashDash === -1 ? [] : argv.slice(dashDash + 1);
  let values: { port?: string | undefined; python?: string | undefined; venv?: string | undefined; help?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: { port: { type: 'string' }, python: { type: 'string' }, venv: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    process.stderr.write(`flint tensorboard: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    process.stderr.write(`flint tensorboard: --port must be an integer from 1 to 65535, received '${values.port}'.\n`);
    return 2;
  }
  if (positionals.length > 1) {
    process.stderr.write(`flint tensorboard: one log dir, received ${positionals.length} (${positionals.join(', ')}).\n`);
    return 2;
  }
  const { startTensorBoard, TensorBoardSetupError } = await import('./tensorboard.js');
  try {
    const { url, child } = await startTensorBoard({
      logdir: positionals[0] ?? 'flint_logs',
      port,
      python: values.python,
      venv: values.venv,
      extraArgs,
      print: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`TensorBoard serves ${positionals[0] ?? 'flint_logs'} at ${url} (Ctrl+C stops it)\n`);
    const stop = (): void => {
      child.kill('SIGTERM');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const code = await new Promise<number>((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal === 'SIGTERM' ? 0 : 1))));
    return code;
  } catch (error) {
    if (error instanceof TensorBoardSetupError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
