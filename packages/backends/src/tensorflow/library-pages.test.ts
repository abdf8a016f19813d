import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quietTensorFlowEnv } from './setup/index.js';

// The native backend built by setup-native gives back the pages of TensorFlow's library that only
// loading it touched (releaseLibraryPages). Measured in fresh processes, as a user's process starts:
// the resident part of libtensorflow_cc and the whole process's RSS, after the backend is up and
// after 200 training steps, with and without the release.
const onNative = process.env.FLINT_BACKEND === 'tensorflow';

const SCRIPT = `
const { readFileSync } = require('node:fs');
const libraryKb = () => {
  let kb = 0, lib = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ /.test(line);
    if (header) lib = line.includes('libtensorflow_cc');
    else if (lib && line.startsWith('Rss:')) kb += Number(line.split(/\\s+/)[1]);
  }
  return kb;
};
(async () => {
  const { tensorflowLoader } = await import('@flint/backends');
  const tf = await import('@tensorflow/tfjs');
  const release = process.argv[1] === 'release';
  if (!release) {
    // The same library loaded without the release: tfjs-node as it comes.
    await import('@tensorflow/tfjs-node');
    await tf.setBackend('tensorflow');
  } else {
    const r = await tensorflowLoader('@tensorflow/tfjs-node').load();
    if (!r.ok) throw new Error(r.reason);
  }
  const up = { libMb: libraryKb() / 1024, rssMb: process.memoryUsage().rss / 2 ** 20 };
  const x = tf.randomNormal([256, 784], 0, 1, 'float32', 1);
  const w = tf.variable(tf.randomNormal([784, 128], 0, 0.05, 'float32', 2));
  const opt = tf.train.adam(1e-3);
  let loss = 0;
  for (let i = 0; i < 200; i++) loss = opt.minimize(() => tf.tidy(() => tf.relu(x.matMul(w)).square().mean()), true).dataSync()[0];
  const trained = { libMb: libraryKb() / 1024, rssMb: process.memoryUsage().rss / 2 ** 20 };
  process.stdout.write(JSON.stringify({ up, trained, loss }) + '\\n');
})().catch((e) => { console.error(e); process.exit(1); });
`;

function run(mode: 'release' | 'keep'): { up: { libMb: number; rssMb: number }; trained: { libMb: number; rssMb: number }; loss: number } {
  const out = execFileSync(process.execPath, ['-e', SCRIPT, mode], { cwd: process.cwd(), env: quietTensorFlowEnv(process.env), encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe.runIf(onNative)('the native backend gives back the library pages only loading touched', () => {
  it('keeps most of libtensorflow_cc out of the resident set, through training, with the same results', () => {
    const kept = run('keep');
    const released = run('release');
    console.log(`libtensorflow_cc resident: ${kept.up.libMb.toFixed(0)} -> ${released.up.libMb.toFixed(0)} MB after load, ${kept.trained.libMb.toFixed(0)} -> ${released.trained.libMb.toFixed(0)} MB after 200 steps; process RSS after 200 steps ${kept.trained.rssMb.toFixed(0)} -> ${released.trained.rssMb.toFixed(0)} MB`);
    expect(kept.up.libMb).toBeGreaterThan(150);
    expect(released.up.libMb).toBeLessThan(kept.up.libMb / 3);
    // Training maps back what it uses, and no more than a fraction of what loading touched.
    expect(released.trained.libMb).toBeLessThan(kept.trained.libMb / 2);
    expect(kept.trained.rssMb - released.trained.rssMb).toBeGreaterThan(100);
    expect(released.loss).toBe(kept.loss);
  }, 240_000);
});
