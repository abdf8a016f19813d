// The real thing: downloads the tensorflow-cpu wheel with pip (274 MB; about 2 s from a local mirror),
// builds tfjs-node's addon against it in a throwaway project (a copy of the workspace's tfjs-node, so
// the workspace's own build is never touched), then trains in a child process. About 30-40 s.
// Skips, printing why, where pip cannot get the wheel or the machine lacks the tools.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@flint/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupNative, probeNativeBackend, quietTensorFlowEnv, type SetupNativeReport } from './index.js';
import { addonPath, locateTfjsNode } from './locate.js';
import { STAGING } from './staging.js';
import { hostEnv } from './tools.js';
import { LINK_NAMES, TENSORFLOW_HEADERS, TENSORFLOW_VERSION } from './wheel.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

/** A project with its own unbuilt copy of the workspace's tfjs-node; tfjs-node's dependencies are symlinked. */
function makeProject(): { root: string; pkgDir: string } {
  const source = locateTfjsNode(repoRoot);
  if (source === undefined) throw new Error(`@tensorflow/tfjs-node is not installed in ${repoRoot}`);
  const root = mkdtempSync(join(tmpdir(), 'flint-native-e2e-'));
  writeFileSync(join(root, 'package.json'), '{ "name": "native-e2e", "private": true }\n');
  const pkgDir = join(root, 'node_modules/@tensorflow/tfjs-node');
  const skip = new Set(['deps', 'lib', 'build', 'node_modules', STAGING]);
  cpSync(source.dir, pkgDir, { recursive: true, filter: (src) => src === source.dir || !skip.has(src.slice(source.dir.length + 1).split('/')[0] ?? '') });
  const manifest = JSON.parse(readFileSync(join(source.dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(manifest.dependencies)) {
    const found = findDependency(source.dir, dep);
    mkdirSync(dirname(join(root, 'node_modules', dep)), { recursive: true });
    symlinkSync(found, join(root, 'node_modules', dep));
  }
  return { root, pkgDir: realpathSync(pkgDir) };
}

function findDependency(from: string, dep: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', dep);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) throw new Error(`cannot find ${dep} from ${from}`);
  }
}

/** Errors that mean "this machine cannot do it", not "setup-native is broken". */
const environmental = (e: unknown): boolean =>
  e instanceof BackendError &&
  /^setup-native: (pip could not get|this is |this Linux has|[\d.]+ [MG]B free on the disk)|^setup-native cannot build the native backend on this machine/.test(e.message);

const TRAIN_SCRIPT = `
const tf = require(process.argv[1]);
(async () => {
  const x = tf.randomNormal([64, 4], 0, 1, 'float32', 7);
  const y = x.matMul(tf.tensor2d([[1], [-2], [3], [0.5]]));
  const model = tf.sequential({ layers: [
    tf.layers.dense({ units: 8, inputShape: [4], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
    tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
  ] });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
  const h = await model.fit(x, y, { epochs: 15, batchSize: 16, shuffle: false, verbose: 0 });
  console.log(JSON.stringify({ backend: tf.getBackend(), tf: tf.backend().binding.TF_Version, loss: h.history.loss }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('setupNative on a fresh project (real wheel, real build)', () => {
  let project: { root: string; pkgDir: string };
  let report: SetupNativeReport | undefined;
  let skipReason: string | undefined;
  const lines: string[] = [];

  beforeAll(async () => {
    if (process.env.FLINT_BACKEND === 'tensorflow') {
      // The suite's native pass runs on the workspace's own build already; building again proves nothing new.
      skipReason = 'FLINT_BACKEND=tensorflow: the setup itself is tested in the default (wasm) pass';
      console.warn(`native e2e skipped: ${skipReason}`);
      return;
    }
    project = makeProject();
    try {
      report = await setupNative({ cwd: project.root, log: (l) => lines.push(l) });
    } catch (error) {
      if (!environmental(error)) throw error;
      skipReason = (error as Error).message;
      console.warn(`native e2e skipped: ${skipReason}`);
    }
  }, 600_000);

  afterAll(() => {
    if (project !== undefined) rmSync(project.root, { recursive: true, force: true });
  });

  it('builds the addon from the wheel, with progress lines, and leaves no staging behind', (ctx) => {
    if (report === undefined) return ctx.skip(skipReason);
    expect(report.status).toBe('built');
    expect(report.packageDir).toBe(project.pkgDir);
    expect(report.tfVersion).toBe(TENSORFLOW_VERSION);
    expect(report.addonPath).toBe(addonPath(project.pkgDir));
    expect(existsSync(report.addonPath)).toBe(true);
    const lib = join(project.pkgDir, 'deps/lib');
    for (const { link, target } of LINK_NAMES) expect(readlinkSync(join(lib, link))).toBe(target);
    for (const f of ['LICENSE', 'THIRD_PARTY_NOTICES.txt']) expect(existsSync(join(lib, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(project.pkgDir, 'deps/flint-native.json'), 'utf8'))).toMatchObject({ tensorflow: TENSORFLOW_VERSION });
    for (const h of TENSORFLOW_HEADERS) expect(existsSync(join(project.pkgDir, 'deps/include', h))).toBe(true);
    expect(existsSync(join(project.pkgDir, STAGING))).toBe(false);
    // 634 MB stripped, 853 MB without strip.
    expect(report.diskBytes).toBeGreaterThan(0.5e9);
    expect(report.diskBytes).toBeLessThan(hostEnv().which('strip') === undefined ? 1.0e9 : 0.75e9);
    expect(report.steps.map((s) => s.name)).toEqual([
      'find @tensorflow/tfjs-node',
      'check the current build',
      'check the platform and tools',
      'download the tensorflow-cpu==2.21.0 wheel with pip',
      'extract the libraries, headers and licences',
      'strip the libraries',
      "build tfjs-node's addon (node-pre-gyp, node-gyp)",
      'move the build into place',
      'check the native backend',
    ]);
    expect(lines.filter((l) => /^setup-native \[\d\/9\] .*\(\d+\.\d s\)$/.test(l))).toHaveLength(9);
    console.info(`native e2e: setup took ${(report.totalMs / 1000).toFixed(1)} s, ${(report.diskBytes / 1e6).toFixed(0)} MB on disk\n  ${lines.join('\n  ')}`);
  });

  it('the build trains a tiny dense net on the tensorflow backend, loss decreasing (child process)', (ctx) => {
    if (report === undefined) return ctx.skip(skipReason);
    const r = spawnSync(process.execPath, ['-e', TRAIN_SCRIPT, project.pkgDir], { encoding: 'utf8', env: quietTensorFlowEnv(), timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { backend: string; tf: string; loss: number[] };
    expect(out.backend).toBe('tensorflow');
    expect(out.tf).toBe(TENSORFLOW_VERSION);
    expect(out.loss).toHaveLength(15);
    expect(out.loss.every(Number.isFinite)).toBe(true);
    expect(out.loss.at(-1)!).toBeLessThan(out.loss[0]! * 0.5);
    // TensorFlow's startup noise stays silent under TF_CPP_MIN_LOG_LEVEL=2 and TF_ENABLE_ONEDNN_OPTS=0.
    expect(r.stderr).not.toMatch(/oneDNN custom operations|cpu_feature_guard/);
  });

  it('a second run notices the working build and changes nothing', async (ctx) => {
    if (report === undefined) return ctx.skip(skipReason);
    const before = statSync(report.addonPath).mtimeMs;
    const again = await setupNative({ cwd: project.root, log: () => {} });
    expect(again.status).toBe('working');
    expect(again.tfVersion).toBe(TENSORFLOW_VERSION);
    expect(again.steps.map((s) => s.name)).toEqual(['find @tensorflow/tfjs-node', 'check the current build']);
    expect(statSync(report.addonPath).mtimeMs).toBe(before);
    const checked = await setupNative({ cwd: project.root, check: true, log: () => {} });
    expect(checked.status).toBe('working');
  });

  it('probeNativeBackend sees the build, and reports a broken one without harming this process', async (ctx) => {
    if (report === undefined) return ctx.skip(skipReason);
    // graphFunctions: the build has Flint's patch (registerGraphFunction), so compileStep can use it.
    expect(await probeNativeBackend({ cwd: project.root })).toEqual({ ok: true, tfVersion: TENSORFLOW_VERSION, path: project.pkgDir, graphFunctions: true });
    const deps = join(project.pkgDir, 'deps');
    renameSync(deps, `${deps}.away`);
    try {
      const broken = await probeNativeBackend({ cwd: project.root, fresh: true });
      expect(broken.ok).toBe(false);
      if (!broken.ok) expect(broken.reason).toMatch(/libtensorflow_cc\.so\.2: cannot open shared object file/);
      await expect(setupNative({ cwd: project.root, check: true, log: () => {} })).rejects.toThrow(
        /^setup-native --check: the native backend does not work: .*libtensorflow_cc\.so\.2.*Run setup-native to build it\.$/s,
      );
    } finally {
      renameSync(`${deps}.away`, deps);
    }
    expect(lstatSync(deps).isDirectory()).toBe(true);
  });
});

describe('setupNative when the build fails', () => {
  it('names the failure with the log tail and leaves no deps/, lib/ or staging behind', async (ctx) => {
    if (process.env.FLINT_BACKEND === 'tensorflow') return ctx.skip('FLINT_BACKEND=tensorflow: tested in the default (wasm) pass');
    const project = makeProject();
    try {
      const real = hostEnv();
      // A compiler that fails at once; no strip, to keep the test short.
      const host = { ...real, env: { ...real.env, CXX: '/bin/false' }, which: (n: string) => (n === 'strip' ? undefined : real.which(n)) };
      let error: unknown;
      try {
        await setupNative({ cwd: project.root, log: () => {} }, host);
      } catch (e) {
        error = e;
      }
      if (environmental(error)) return ctx.skip((error as Error).message);
      expect(error).toBeInstanceOf(BackendError);
      expect((error as Error).message).toMatch(
        /^setup-native: building @tensorflow\/tfjs-node's addon failed \(node-pre-gyp install --build-from-source exited 1\)\. Last lines of the build log \(whole log: .*flint-setup-native-build\.log\):\n[\s\S]*\nNothing was changed in /,
      );
      for (const left of ['deps', 'lib', STAGING]) expect(existsSync(join(project.pkgDir, left)), left).toBe(false);
      expect(await probeNativeBackend({ cwd: project.root })).toMatchObject({ ok: false, reason: expect.stringMatching(/is installed at .* but not built/) });
    } finally {
      rmSync(project.root, { recursive: true, force: true });
    }
  }, 600_000);
});
