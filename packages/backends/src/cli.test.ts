import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './cli.js';

let out = '';
let err = '';
beforeEach(() => {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
});
afterEach(() => vi.restoreAllMocks());

describe('flint CLI', () => {
  it('prints usage for --help (exit 0) and with no command (exit 2)', async () => {
    expect(await main(['--help'])).toBe(0);
    expect(out).toMatch(/^Usage: flint setup-native \[--python PATH\] \[--force\] \[--check\]\n/);
    expect(await main([])).toBe(2);
    expect(await main(['setup-native', '-h'])).toBe(0);
  });

  it('exits 2 on an unknown command or flag, naming it', async () => {
    expect(await main(['setup-natve'])).toBe(2);
    expect(err).toMatch(/^flint: unknown command 'setup-natve'; the commands are: setup-native, tensorboard\n/);
    err = '';
    expect(await main(['setup-native', '--pyhton', 'x'])).toBe(2);
    expect(err).toMatch(/^flint setup-native: Unknown option '--pyhton'/);
  });

  it('exits 2 with the option error for --check with --force', async () => {
    expect(await main(['setup-native', '--check', '--force'])).toBe(2);
    expect(err).toContain("setupNative option 'check': 'check' only checks and 'force' rebuilds: pass one of them, not both");
  });
});
