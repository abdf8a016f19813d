import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, MisconfigurationError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { setupNative } from './index.js';
import { locateTfjsNode } from './locate.js';
import { notInstalledError } from './setup-native.js';
import { STAGING } from './staging.js';
import { hostEnv } from './tools.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

describe('setupNative options', () => {
  it('refuses check together with force', async () => {
    await expect(setupNative({ check: true, force: true })).rejects.toThrow(MisconfigurationError);
    await expect(setupNative({ check: true, force: true })).rejects.toThrow(
      "setupNative option 'check': 'check' only checks and 'force' rebuilds: pass one of them, not both (received true)",
    );
  });

  it('refuses unknown options and a log that is not a function', async () => {
    await expect(setupNative({ pyhton: '/usr/bin/python3' } as never)).rejects.toThrow(/^setupNative option '\(options\)': Unrecognized key: "pyhton"/);
    await expect(setupNative({ log: 'stderr' } as never)).rejects.toThrow(
      "setupNative option 'log': must be a function (line: string) => void (received \"stderr\")",
    );
    await expect(setupNative({ python: '' })).rejects.toThrow(/^setupNative option 'python': /);
  });
});

describe('setupNative without tfjs-node', () => {
  it('says how to install it with its install script skipped, for the project’s package manager', () => {
    const error = notInstalledError('/srv/app', 'npm');
    expect(error).toBeInstanceOf(BackendError);
    expect(error.message).toBe(
      'setup-native: @tensorflow/tfjs-node is not installed in /srv/app (nor resolvable from @flint/trainer). Install it without its install script, ' +
        'which would try to download libtensorflow and fail: npm install @tensorflow/tfjs-node@4.22.0 --ignore-scripts; then run setup-native again.',
    );
  });
});

describe('setupNative when pip cannot get the wheel', () => {
  it('shows pip\'s last lines and what pip needs, and leaves nothing behind', async (ctx) => {
    const root = mkdtempSync(join(tmpdir(), 'flint-nopip-'));
    try {
      // A project with an unbuilt tfjs-node (its package.json is all that is read before the download).
      const pkgDir = join(root, 'node_modules/@tensorflow/tfjs-node');
      mkdirSync(pkgDir, { recursive: true });
      writeFileSync(join(root, 'package.json'), '{ "name": "nopip", "private": true }\n');
      writeFileSync(join(pkgDir, 'package.json'), readFileSync(join(locateTfjsNode(repoRoot)!.dir, 'package.json')));
      // A Python whose pip sees no index, as on a machine without network.
      const python = join(root, 'python3');
      writeFileSync(
        python,
        [
          '#!/bin/sh',
          'case "$*" in',
          '  "--version") echo "Python 3.11.7";;',
          '  "-m pip --version") echo "pip 23.2.1 from /x (python 3.11)";;',
          '  *) echo "ERROR: Could not find a version that satisfies the requirement tensorflow-cpu==2.21.0 (from versions: none)" >&2',
          '     echo "ERROR: No matching distribution found for tensorflow-cpu==2.21.0" >&2; exit 1;;',
          'esac',
        ].join('\n'),
      );
      chmodSync(python, 0o755);
      const lines: string[] = [];
      const error = await setupNative({ cwd: root, python, log: (l) => lines.push(l) }, hostEnv()).catch((e: unknown) => e);
      const real = realpathSync(pkgDir);
      if (/^setup-native: [\d.]+ [MG]B free on the disk/.test((error as Error).message)) return ctx.skip((error as Error).message);
      expect(error).toBeInstanceOf(BackendError);
      expect((error as Error).message).toBe(
        `setup-native: pip could not get the tensorflow-cpu==2.21.0 wheel (\`${python} -m pip download --no-deps --only-binary=:all: --no-cache-dir --retries 0 --progress-bar off tensorflow-cpu==2.21.0 -d ${join(real, STAGING, 'wheel')}\` exited 1):\n` +
          '    ERROR: Could not find a version that satisfies the requirement tensorflow-cpu==2.21.0 (from versions: none)\n' +
          '    ERROR: No matching distribution found for tensorflow-cpu==2.21.0\n' +
          'pip found no tensorflow-cpu at all: its index cannot be reached from here, or does not carry the package. ' +
          'pip needs to reach the Python package index or a mirror set in its configuration (see `pip config list`, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL). ' +
          "Without the wheel the native backend cannot be set up here: install @tensorflow/tfjs-node the normal way where its own download works, or train on the wasm backend (accelerator: 'cpu').",
      );
      expect(lines.at(-1)).toMatch(/^setup-native \[4\/9\] download the tensorflow-cpu==2\.21\.0 wheel with pip: failed \(\d+\.\d s\)$/);
      for (const left of ['deps', 'lib', STAGING]) expect(existsSync(join(real, left)), left).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
