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
 * Where a run lives. An unset version is resolved when the logger is created (Lightning resolves it on
 * first use): loggers created together, say a TensorBoardLogger and a CSVLogger with the same saveDir
 * and name, then share one `version_<n>` folder whichever writes first.
 */
export class RunDir {
  private resolved: number | string;

  constructor(
    readonly saveDir: string,
    readonly name: string,
    version: VersionInput,
  ) {
    this.resolved = version ?? nextVersion(this.root);
  }

  /** `<saveDir>/<name>`: the folder to point TensorBoard at to compare runs. */
  get root(): string {
    return this.name === '' ? path.resolve(this.saveDir) : path.resolve(this.saveDir, this.name);
  }

  get version(): number | string {
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
