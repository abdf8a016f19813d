import { BackendError, MisconfigurationError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { setupNative } from './index.js';
import { notInstalledError } from './setup-native.js';

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
