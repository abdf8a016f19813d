import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fs, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/**
 * Temporary files of Flint's atomic writes, beside their target: `.<name>.<pid>.<8 hex>.tmp`. The
 * writer's pid in the name tells a file that a killed process left behind from one being written.
 */
const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;
/** Temporary files this process is writing right now (its own pid may also be a dead process's). */
const writing = new Set<string>();
/** Folders swept since this process started. */
const swept = new Set<string>();

/** The temporary file for an atomic write of `target`; `stem` replaces the target's name in it. */
export function atomicTempPath(target: string, stem: string = path.basename(target)): string {
  return path.join(path.dirname(target), `.${stem}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Marks a temporary file or folder as being written by this process, so that a sweep of its folder
 * keeps it; call the returned function when it is renamed or removed. For writers other than this
 * file's: the record-file writer, the model folders of `writeFolderAtomic`.
 */
export function trackTempFile(tmp: string): () => void {
  const file = path.resolve(tmp);
  writing.add(file);
  return () => writing.delete(file);
}

/**
 * Removes the temporary files (and the temporary folders of `writeFolderAtomic`) of Flint's atomic
 * writes in `dir` whose writer is gone (a kill -9 or a power cut in the middle of a write leaves one
 * behind, as large as the file it was to become),
 * and returns their names. A file whose writer process is alive is kept. With `once`, only the
 * first call for a folder in this process looks. Never throws.
 */
export function removeStaleTempFiles(dir: string, options: { once?: boolean } = {}): string[] {
  const folder = path.resolve(dir);
  if (options.once === true && swept.has(folder)) return [];
  swept.add(folder);
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = TEMP_FILE.exec(name);
    if (match === null) continue;
    const file = path.join(folder, name);
    const pid = Number(match[1]);
    if (pid === process.pid ? writing.has(file) : processAlive(pid)) continue;
    try {
      rmSync(file, { force: true, recursive: true }); // a model folder being written is a folder
      removed.push(name);
    } catch {
      // Not ours to remove after all (permissions): leave it.
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Writes bytes atomically: a temporary file beside the target, flushed to disk, then renamed over
 * it, so that a crash at any moment leaves either the old file or the new one, never half of one.
 * A write that fails (disk full, folder not writable) removes its temporary file; the first write
 * into a folder removes the temporary files that killed writers left there.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  await fs.mkdir(dir, { recursive: true });
  removeStaleTempFiles(dir, { once: true });
  const tmp = path.resolve(atomicTempPath(target));
  writing.add(tmp);
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    await handle.close();
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  } finally {
    writing.delete(tmp);
  }
  try {
    const dirHandle = await fs.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch {
    // Some file systems cannot fsync a directory; the rename is still atomic.
  }
}

/**
 * The synchronous atomic write (the loggers' files, written from synchronous code): a temporary file
 * in the same folder, then a rename over the target, without the fsyncs of `writeFileAtomic`. The
 * temporary name never contains `tfevents`, so TensorBoard does not pick up a half-written file; it
 * holds the writer's pid (`.flint-tmp.<pid>.<hex>.tmp`), so that the first write into a folder can
 * remove what killed writers left there. A write that fails removes its temporary file.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true });
  removeStaleTempFiles(dir, { once: true });
  const tmp = atomicTempPath(file, 'flint-tmp');
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (error) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing more to clean
    }
    throw error;
  }
}
