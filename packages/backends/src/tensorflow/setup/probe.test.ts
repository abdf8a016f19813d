import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateTfjsNode } from './locate.js';
import { probeNativeBackend, quietTensorFlowEnv } from './probe.js';

// A project holding a copy of the workspace's tfjs-node (3.5 MB without a build): first unbuilt, then
// with a garbage addon. Building is the e2e test's business.
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
let root: string;
let pkgDir: string;

beforeAll(() => {
  const source = locateTfjsNode(repoRoot);
  if (source === undefined) throw new Error(`@tensorflow/tfjs-node is not installed in ${repoRoot}`);
  root = mkdtempSync(join(tmpdir(), 'flint-probe-'));
  writeFileSync(join(root, 'package.json'), '{ "name": "probe-test", "private": true }\n');
  pkgDir = join(root, 'node_modules/@tensorflow/tfjs-node');
  for (const part of ['package.json', 'dist']) cpSync(join(source.dir, part), join(pkgDir, part), { recursive: true });
  pkgDir = realpathSync(pkgDir);
  // tfjs-node's dist requires these two on load.
  const manifest = JSON.parse(readFileSync(join(source.dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(manifest.dependencies)) {
    for (let dir = source.dir; dirname(dir) !== dir; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', dep);
      try {
        const real = realpathSync(candidate);
        mkdirSync(dirname(join(root, 'node_modules', dep)), { recursive: true });
        symlinkSync(real, join(root, 'node_modules', dep));
        break;
      } catch {
        // not here
      }
    }
  }
});

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

describe('probeNativeBackend', () => {
  it('says tfjs-node is installed but not built when its addon is missing, without starting a child', async () => {
    const t = performance.now();
    const r = await probeNativeBackend({ cwd: root });
    expect(r).toEqual({
      ok: false,
      reason: `@tensorflow/tfjs-node 4.22.0 is installed at ${pkgDir} but not built: its addon ${join(pkgDir, 'lib/napi-v8/tfjs_binding.node')} is missing (its install script was skipped or failed); run \`npx flint setup-native\``,
    });
    expect(performance.now() - t).toBeLessThan(500);
  });

  it('reports a broken addon as not working, and this process carries on', async () => {
    mkdirSync(join(pkgDir, 'lib/napi-v8'), { recursive: true });
    writeFileSync(join(pkgDir, 'lib/napi-v8/tfjs_binding.node'), Buffer.alloc(4096, 'not an ELF file '));
    const r = await probeNativeBackend({ cwd: root });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(new RegExp(`^@tensorflow/tfjs-node at ${pkgDir} does not work: .*invalid ELF header`));
    // Remembered for the same addon file: the second answer is immediate and the same.
    const t = performance.now();
    expect(await probeNativeBackend({ cwd: root })).toEqual(r);
    expect(performance.now() - t).toBeLessThan(100);
  });
});

describe('quietTensorFlowEnv', () => {
  it("silences TensorFlow's startup lines unless the user chose otherwise", () => {
    expect(quietTensorFlowEnv({ PATH: '/bin' })).toEqual({ PATH: '/bin', TF_CPP_MIN_LOG_LEVEL: '2', TF_ENABLE_ONEDNN_OPTS: '0' });
    expect(quietTensorFlowEnv({ TF_CPP_MIN_LOG_LEVEL: '0' })).toMatchObject({ TF_CPP_MIN_LOG_LEVEL: '0', TF_ENABLE_ONEDNN_OPTS: '0' });
  });
});
