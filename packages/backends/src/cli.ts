#!/usr/bin/env node
/**
 * The `flint` command. One command for now:
 *
 *   flint setup-native [--python PATH] [--force] [--check]
 *
 * builds @tensorflow/tfjs-node's native addon against the tensorflow-cpu wheel where tfjs-node's own
 * install cannot download libtensorflow (docs/native-backend.md). Exit codes: 0 done, 1 failed, 2 usage.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `Usage: flint setup-native [--python PATH] [--force] [--check]

Builds the native TensorFlow backend (@tensorflow/tfjs-node) from the tensorflow-cpu wheel,
for machines where tfjs-node's own install cannot download libtensorflow.

  --python PATH  the Python whose pip fetches the wheel (default: python3 from PATH)
  --force        rebuild even when a working build is found
  --check        only check the current build; exit 1 when it does not work
  -h, --help     show this text
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'setup-native') {
    process.stderr.write(`flint: unknown command '${command}'; the commands are: setup-native\n\n${USAGE}`);
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
