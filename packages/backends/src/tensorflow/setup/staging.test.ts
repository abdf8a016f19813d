import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendError } from '@flint/core';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireStaging, diskUsage, moveIntoPlace, rollBack, STAGING } from './staging.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake tfjs-node folder; `built` gives it a deps/ and lib/ holding the word `old`. */
function pkg(built: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'flint-staging-'));
  dirs.push(dir);
  if (built) put(dir, 'old');
  return dir;
}

function put(root: string, word: string): void {
  mkdirSync(join(root, 'deps/lib'), { recursive: true });
  mkdirSync(join(root, 'lib/napi-v8'), { recursive: true });
  writeFileSync(join(root, 'deps/lib/libtensorflow_cc.so.2'), word);
  writeFileSync(join(root, 'lib/napi-v8/tfjs_binding.node'), word);
}

const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8');

describe('acquireStaging', () => {
  it('creates the staging folder with this pid, and clears one left by a dead run', () => {
    const dir = pkg(false);
    mkdirSync(join(dir, STAGING));
    writeFileSync(join(dir, STAGING, 'pid'), '999999999');
    writeFileSync(join(dir, STAGING, 'junk'), 'x');
    const staging = acquireStaging(dir);
    expect(staging).toBe(join(dir, STAGING));
    expect(read(staging, 'pid')).toBe(String(process.pid));
    expect(existsSync(join(staging, 'junk'))).toBe(false);
  });

  it('refuses while another live setup-native holds it', () => {
    const dir = pkg(false);
    mkdirSync(join(dir, STAGING));
    writeFileSync(join(dir, STAGING, 'pid'), String(process.ppid));
    expect(() => acquireStaging(dir)).toThrow(BackendError);
    expect(() => acquireStaging(dir)).toThrow(
      `setup-native: another setup-native (pid ${process.ppid}) is building in ${join(dir, STAGING)}; wait for it to finish (or, if that process is not setup-native, remove ${join(dir, STAGING)}).`,
    );
  });
});

describe('moveIntoPlace and rollBack', () => {
  it('swaps the staged build in and keeps the old one aside', () => {
    const dir = pkg(true);
    const staging = acquireStaging(dir);
    put(staging, 'new');
    moveIntoPlace(dir, staging);
    expect(read(dir, 'lib/napi-v8/tfjs_binding.node')).toBe('new');
    expect(read(dir, 'deps/lib/libtensorflow_cc.so.2')).toBe('new');
    expect(read(staging, 'previous/lib/napi-v8/tfjs_binding.node')).toBe('old');
  });

  it('a failed new build is removed and a working previous build put back', () => {
    const dir = pkg(true);
    const staging = acquireStaging(dir);
    put(staging, 'new');
    moveIntoPlace(dir, staging);
    expect(rollBack(dir, staging, true)).toBe(true);
    expect(read(dir, 'lib/napi-v8/tfjs_binding.node')).toBe('old');
    expect(read(dir, 'deps/lib/libtensorflow_cc.so.2')).toBe('old');
  });

  it('without a working previous build, a failed one leaves neither deps/ nor lib/', () => {
    const dir = pkg(false);
    const staging = acquireStaging(dir);
    put(staging, 'new');
    moveIntoPlace(dir, staging);
    expect(rollBack(dir, staging, false)).toBe(false);
    expect(existsSync(join(dir, 'deps'))).toBe(false);
    expect(existsSync(join(dir, 'lib'))).toBe(false);
  });
});

describe('diskUsage', () => {
  it('adds up the files, not following symlinks', () => {
    const dir = pkg(false);
    writeFileSync(join(dir, 'a'), Buffer.alloc(100_000));
    expect(diskUsage(dir)).toBeGreaterThanOrEqual(100_000);
    expect(diskUsage(join(dir, 'missing'))).toBe(0);
  });
});
