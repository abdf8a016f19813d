import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeNativeBackend } from '@flint/backends';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// What a user sees on the console when a script of theirs trains: run in real child processes (a
// fresh tfjs each time, as for a user), reading stdout and stderr.

const packages = fileURLToPath(new URL('../../', import.meta.url));
let root: string;
let child: string;

beforeAll(() => {
  for (const p of ['core', 'trainer']) {
    if (!fs.existsSync(path.join(packages, p, 'dist', 'index.js'))) throw new Error(`packages/${p}/dist is missing: run \`pnpm build\` first (these tests run the built packages in child processes).`);
  }
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-first-'));
  child = path.join(root, 'child.mjs');
  fs.writeFileSync(child, CHILD);
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A user's script: tensors made at the top (on tfjs's default backend, before any Trainer), then a short fit. */
const CHILD = `
import { createRequire } from 'node:module';
const cfg = JSON.parse(process.argv[2]);
const tf = await import(createRequire(cfg.packages + 'core/package.json').resolve('@tensorflow/tfjs'));
const core = await import(cfg.packages + 'core/dist/index.js');
const { Trainer } = await import(cfg.packages + 'trainer/dist/index.js');
const { BoringModule, randomClassificationDataset } = await import(cfg.packages + 'core/dist/testing/index.js');
const early = tf.tensor([1, 2, 3]).mul(2);
early.dispose();
const trainer = new Trainer({ ...cfg.options, maxEpochs: 1, limitTrainBatches: 2, limitValBatches: 1, logger: false, enableCheckpointing: false, enableProgressBar: false, enableModelSummary: false });
const data = new core.DataLoader(randomClassificationDataset({ n: 32, features: 4, seed: 1 }), { batchSize: 8 });
await trainer.fit(new BoringModule(4, 2), data, data);
process.stdout.write('done ' + trainer.globalStep + '\\n');
`;

function run(options: Record<string, unknown>, env: Record<string, string | undefined> = {}): { stdout: string; stderr: string; flintLines: string[] } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.FLINT_BACKEND; // the user's default: nothing pinned
  if (env.FLINT_VERBOSE === undefined) delete childEnv.FLINT_VERBOSE;
  const r = spawnSync(process.execPath, [child, JSON.stringify({ packages, options })], { encoding: 'utf8', env: childEnv, timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain('done 2');
  return { stdout: r.stdout, stderr: r.stderr, flintLines: r.stdout.split('\n').filter((l) => l.startsWith('Flint: ')) };
}

describe('first impressions: the console of a first run', () => {
  it("prints no tfjs 'Hi, looks like you are running TensorFlow.js in Node.js' banner and one short backend line", async () => {
    const out = run({});
    expect(out.stdout + out.stderr).not.toContain('looks like you are running TensorFlow.js in Node.js');
    // On the native backend TensorFlow's C++ runtime logs its own start-up lines (absl, oneDNN) to
    // stderr before any JavaScript runs; anything else on stderr is ours and must not be there.
    const tfRuntime = /^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} \d\d:\d\d:|I0000 )/;
    expect(out.stderr.split('\n').filter((l) => l.trim() !== '' && !tfRuntime.test(l))).toEqual([]);
    expect(out.flintLines).toHaveLength(1);
    const line = out.flintLines[0]!;
    expect(line).toMatch(/^Flint: accelerator cpu, backend '(tensorflow|wasm)' from @tensorflow\/tfjs-(node|backend-wasm)[.;]/);
    expect(line).not.toContain('node_modules'); // no paths
    expect(line).not.toContain('skipped:');
    // Something missing is said in a few words, with how to learn more.
    const native = await probeNativeBackend();
    if (native.ok) expect(line).toBe("Flint: accelerator cpu, backend 'tensorflow' from @tensorflow/tfjs-node.");
    else if (/ is not installed$/.test(native.reason)) expect(line).toBe("Flint: accelerator cpu, backend 'wasm' from @tensorflow/tfjs-backend-wasm.");
    else {
      expect(line).toBe(
        "Flint: accelerator cpu, backend 'wasm' from @tensorflow/tfjs-backend-wasm; @tensorflow/tfjs-node is installed but does not work (FLINT_VERBOSE=1 or Trainer option verbose: true says why).",
      );
    }
    expect(line.length).toBeLessThanOrEqual(200);
  });

  it('an explicit backend is said just as briefly, with no banner even on the pure-JS cpu backend', () => {
    const out = run({ backend: 'cpu' });
    expect(out.stdout + out.stderr).not.toContain('TensorFlow.js in Node.js');
    expect(out.flintLines).toEqual(["Flint: accelerator cpu, backend 'cpu' from @tensorflow/tfjs (pure JavaScript)."]);
  });

  it('Trainer option verbose: true, or FLINT_VERBOSE=1, says why, with what was skipped and the details', async () => {
    const native = await probeNativeBackend();
    for (const out of [run({ verbose: true }), run({}, { FLINT_VERBOSE: '1' })]) {
      expect(out.flintLines).toHaveLength(1);
      const line = out.flintLines[0]!;
      expect(line).toContain("accelerator 'auto' picked the best available; skipped: @tensorflow/tfjs-node-gpu is not installed");
      if (!native.ok) expect(line).toContain(native.reason); // e.g. where tfjs-node is and what is missing in it
      expect(line).toMatch(/from @tensorflow\/tfjs-(node|backend-wasm) \(/); // the details: TensorFlow version, or XNNPACK and threads
    }
    expect(run({}, { FLINT_VERBOSE: '0' }).flintLines[0]).not.toContain('skipped:');
  });

  it('a bad verbose option is refused with the option named', () => {
    const r = spawnSync(process.execPath, [child, JSON.stringify({ packages, options: { verbose: 'yes' } })], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/verbose/);
  });
});
