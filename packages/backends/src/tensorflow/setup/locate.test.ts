import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addonPath, detectPackageManager, installCommand } from './locate.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function pkgWith(binary: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'flint-locate-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node', version: '4.22.0', binary }));
  return dir;
}

describe('addonPath', () => {
  it("is node-pre-gyp's module_path for the best Node-API version this Node supports", () => {
    const dir = pkgWith({ module_name: 'tfjs_binding', module_path: './lib/napi-v{napi_build_version}', napi_versions: [3, 4, 5, 6, 7, 8] });
    expect(addonPath(dir, 9)).toBe(join(dir, 'lib/napi-v8/tfjs_binding.node'));
    expect(addonPath(dir, 6)).toBe(join(dir, 'lib/napi-v6/tfjs_binding.node'));
  });
});

describe('detectPackageManager and installCommand', () => {
  const fs = (files: string[]) => (p: string) => files.includes(p);

  it('goes by the nearest lockfile above the project, npm when there is none', () => {
    expect(detectPackageManager('/w/app', fs(['/w/pnpm-lock.yaml']))).toBe('pnpm');
    expect(detectPackageManager('/w/app', fs(['/w/app/package-lock.json', '/w/pnpm-lock.yaml']))).toBe('npm');
    expect(detectPackageManager('/w/app', fs(['/w/app/yarn.lock']))).toBe('yarn');
    expect(detectPackageManager('/w/app', fs(['/w/bun.lock']))).toBe('bun');
    expect(detectPackageManager('/w/app', fs([]))).toBe('npm');
  });

  it('installs tfjs-node 4.22.0 with its install script skipped', () => {
    expect(installCommand('npm')).toBe('npm install @tensorflow/tfjs-node@4.22.0 --ignore-scripts');
    expect(installCommand('pnpm')).toBe(
      'pnpm add @tensorflow/tfjs-node@4.22.0 --ignore-scripts (and list @tensorflow/tfjs-node under ignoredBuiltDependencies in pnpm-workspace.yaml so that no later install runs its script)',
    );
    expect(installCommand('yarn')).toBe('yarn add @tensorflow/tfjs-node@4.22.0 --ignore-scripts (Yarn 1; Yarn 2+: YARN_ENABLE_SCRIPTS=false yarn add @tensorflow/tfjs-node@4.22.0)');
  });
});
