import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

/**
 * Options shared by the file loggers: Lightning's layout `<saveDir>/<name>/<version>`, where an
 * integer version is the folder `version_<n>` and a string version is the folder name itself.
 */
export const runDirOptionsShape = {
  /** Folder under which runs are kept. */
  saveDir: z.string().min(1).default('.'),
  /** Experiment name: a folder under saveDir ('' puts versions directly in saveDir). */
  name: z.string().default('flint_logs'),
  /** Run version: n gives `version_n`, a string is the folder name; unset takes the next free `version_n`. */
  version: z.union([z.number().int().nonnegative(), z.string().min(1)]).optional(),
} as const;

export type VersionInput = number | string | undefined;

const VERSION_DIR = /^version_(\d+)$/;

/** The next free integer version under `root` (0 when the folder does not exist), as Lightning's `_get_next_version`. */
export function nextVersion(root: string): number {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(root, { withFileTypes: true });
  } catch {
    return 0;
  }
  let max = -1;
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const m = VERSION_DIR.exec(e.name);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/**
 * Where a run lives. The version is resolved once, on first use (as Lightning does), so that loggers
 * created together and asked for their folder before anything is written share the same version.
 */
export class RunDir {
  private resolved: number | string | undefined;

  constructor(
    readonly saveDir: string,
    readonly name: string,
    version: VersionInput,
  ) {
    this.resolved = version;
  }

  /** `<saveDir>/<name>`: the folder to point TensorBoard at to compare runs. */
  get root(): string {
    return this.name === '' ? path.resolve(this.saveDir) : path.resolve(this.saveDir, this.name);
  }

  get version(): number | string {
    if (this.resolved === undefined) this.resolved = nextVersion(this.root);
    return this.resolved;
  }

  /** Pins the version (resume). */
  setVersion(version: number | string): void {
    this.resolved = version;
  }

  get versionFolder(): string {
    const v = this.version;
    return typeof v === 'number' ? `version_${v}` : v;
  }

  get logDir(): string {
    return path.join(this.root, this.versionFolder);
  }
}

let tmpCounter = 0;

/**
 * Writes a file atomically: a temporary file in the same folder, then a rename over the target. The
 * temporary name never contains `tfevents`, so TensorBoard does not pick up a half-written file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.flint-tmp.${process.pid}.${tmpCounter++}`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (error) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing more to clean
    }
    throw error;
  }
}
