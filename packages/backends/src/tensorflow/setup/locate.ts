import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TFJS_NODE_VERSION } from './wheel.js';

export const TFJS_NODE = '@tensorflow/tfjs-node';

/** tfjs-node's real folder (under pnpm, inside `node_modules/.pnpm/...`) and its version. */
export interface TfjsNodePackage {
  readonly dir: string;
  readonly version: string;
}

/**
 * Finds the tfjs-node that would be loaded: resolved from the project in `cwd` first, then from
 * @flint/trainer itself (the same order the Trainer's accelerator selection imports it in).
 * Returns undefined when neither resolves it.
 */
export function locateTfjsNode(cwd: string = process.cwd()): TfjsNodePackage | undefined {
  for (const base of [join(cwd, 'package.json'), import.meta.url]) {
    let manifest: string;
    try {
      manifest = createRequire(base).resolve(`${TFJS_NODE}/package.json`);
    } catch {
      continue;
    }
    const dir = realpathSync(dirname(manifest));
    const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
    return { dir, version };
  }
  return undefined;
}

interface BinaryField {
  module_name?: string;
  module_path?: string;
  napi_versions?: number[];
}

/**
 * Where tfjs-node loads its addon from: node-pre-gyp's `module_path` for the highest Node-API version
 * in its `napi_versions` that this Node supports (`lib/napi-v8/tfjs_binding.node` for 4.22.0).
 */
export function addonPath(dir: string, napi: number = Number(process.versions.napi)): string {
  const binary = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { binary?: BinaryField }).binary ?? {};
  const versions = (binary.napi_versions ?? [8]).filter((v) => v <= napi);
  const best = versions.length > 0 ? Math.max(...versions) : 8;
  const modulePath = (binary.module_path ?? './lib/napi-v{napi_build_version}').replace('{napi_build_version}', String(best));
  return join(dir, modulePath, `${binary.module_name ?? 'tfjs_binding'}.node`);
}

export type PackageManager = 'pnpm' | 'yarn' | 'bun' | 'npm';

/** The package manager of the project around `cwd`, from the lockfile nearest above it (npm when none). */
export function detectPackageManager(cwd: string, exists: (p: string) => boolean = existsSync): PackageManager {
  let dir = cwd;
  for (;;) {
    if (exists(join(dir, 'pnpm-lock.yaml')) || exists(join(dir, 'pnpm-workspace.yaml'))) return 'pnpm';
    if (exists(join(dir, 'yarn.lock'))) return 'yarn';
    if (exists(join(dir, 'bun.lockb')) || exists(join(dir, 'bun.lock'))) return 'bun';
    if (exists(join(dir, 'package-lock.json'))) return 'npm';
    const parent = dirname(dir);
    if (parent === dir) return 'npm';
    dir = parent;
  }
}

/** The command that installs tfjs-node without its install script (which would try to download libtensorflow and fail). */
export function installCommand(pm: PackageManager): string {
  const spec = `${TFJS_NODE}@${TFJS_NODE_VERSION}`;
  switch (pm) {
    case 'pnpm':
      return `pnpm add ${spec} --ignore-scripts (and list ${TFJS_NODE} under ignoredBuiltDependencies in pnpm-workspace.yaml so that no later install runs its script)`;
    case 'yarn':
      return `yarn add ${spec} --ignore-scripts (Yarn 1; Yarn 2+: YARN_ENABLE_SCRIPTS=false yarn add ${spec})`;
    case 'bun':
      return `bun add ${spec} (bun does not run its install script unless it is a trusted dependency)`;
    case 'npm':
      return `npm install ${spec} --ignore-scripts`;
  }
}
