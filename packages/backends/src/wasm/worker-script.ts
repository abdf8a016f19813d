import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

// Only Node built-ins here: the concurrency test runs this file in several fresh processes at once.

/**
 * Writes the emscripten worker script under `<cacheDir>/flint-wasm-<version>/` and returns its path.
 * The name carries a hash of the contents; the file is written to a unique temporary name and renamed
 * into place, so processes starting together never see a partial file, and an existing file with the
 * right contents is reused. `.cjs` because the script uses require() whatever package.json is nearby.
 */
export function ensureWorkerScript(cacheDir: string, version: string, workerSource: string): string {
  // tfjs does the same before making its blob: the template string holds raw newlines that belong
  // inside string literals.
  const contents = workerSource.replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(contents).digest('hex').slice(0, 16);
  const dir = path.join(cacheDir, `flint-wasm-${version}`);
  const file = path.join(dir, `tfjs-backend-wasm-threaded-simd.worker.${hash}.cjs`);
  const isCurrent = (): boolean => {
    try {
      return fs.readFileSync(file, 'utf8') === contents;
    } catch {
      return false;
    }
  };
  if (isCurrent()) return file;
  fs.mkdirSync(dir, { recursive: true });
  const temporary = `${file}.${process.pid}.${randomUUID()}.tmp`;
  try {
    fs.writeFileSync(temporary, contents, { flag: 'wx' });
    try {
      fs.renameSync(temporary, file);
    } catch (error) {
      // Windows refuses to replace a file another process has open: fine if that file is right.
      if (!isCurrent()) throw error;
    }
  } finally {
    fs.rmSync(temporary, { force: true });
  }
  return file;
}
