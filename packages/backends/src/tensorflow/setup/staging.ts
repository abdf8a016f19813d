import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackendError } from '@flint/core';

/** The folder inside tfjs-node's folder where setup-native builds; nothing loads from it. */
export const STAGING = '.flint-native-staging';

/** Takes the staging folder inside tfjs-node's folder; refuses while another live setup-native holds it. */
export function acquireStaging(dir: string): string {
  const staging = join(dir, STAGING);
  if (existsSync(staging)) {
    const pid = Number.parseInt(readFileSafe(join(staging, 'pid')), 10);
    if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
      throw new BackendError(
        `setup-native: another setup-native (pid ${pid}) is building in ${staging}; wait for it to finish (or, if that process is not setup-native, remove ${staging}).`,
      );
    }
    rmSync(staging, { recursive: true, force: true }); // left by an interrupted run
  }
  mkdirSync(staging);
  writeFileSync(join(staging, 'pid'), String(process.pid));
  return staging;
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Swaps the staged deps/ and lib/ into tfjs-node's folder, the old ones (if any) into staging/previous.
 * The addon (lib/) leaves first and arrives last, so it never exists without its libraries.
 */
export function moveIntoPlace(dir: string, staging: string): void {
  const previous = join(staging, 'previous');
  mkdirSync(previous);
  for (const name of ['lib', 'deps']) if (existsSync(join(dir, name))) renameSync(join(dir, name), join(previous, name));
  for (const name of ['deps', 'lib']) renameSync(join(staging, name), join(dir, name));
}

/** Removes the new build; puts the previous one back when it worked. Returns whether it did. */
export function rollBack(dir: string, staging: string, restorePrevious: boolean): boolean {
  for (const name of ['lib', 'deps']) rmSync(join(dir, name), { recursive: true, force: true });
  if (!restorePrevious) return false;
  const previous = join(staging, 'previous');
  for (const name of ['deps', 'lib']) if (existsSync(join(previous, name))) renameSync(join(previous, name), join(dir, name));
  return true;
}

/** Bytes of the regular files under `path` (symlinks not followed). */
export function diskUsage(path: string): number {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  if (st.isSymbolicLink()) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  return readdirSync(path).reduce((sum, name) => sum + diskUsage(join(path, name)), 0);
}

