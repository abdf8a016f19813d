import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { emptyCheckpoint, expectNoLeak } from '../testing/index.js';
import {
  adam,
  captureOptimizerState,
  CHECKPOINT_FORMAT,
  decodeCheckpoint,
  encodeCheckpoint,
  FlintAdam,
  getMomentum,
  MisconfigurationError,
  setMomentum,
  restoreOptimizerState,
} from '../index.js';

const SHAPES = [[30, 20], [20], [20, 3]] as const;
const native = (): boolean => tf.getBackend() === 'tensorflow';
/** TensorFlow handles held by the native backend (tfjs tensors and Flint's raw resource handles). */
const nativeHandles = (): number => (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding.getNumOfTensors();

/** Variables with fixed initial values; gradient t of variable i is the same for every optimizer. */
function makeVars(): tf.Variable[] {
  return SHAPES.map((s, i) => tf.tidy(() => tf.variable(tf.randomNormal([...s], 0, 0.1, 'float32', 7 + i))));
}
function gradsAt(vars: readonly tf.Variable[], t: number): tf.NamedTensorMap {
  return Object.fromEntries(vars.map((v, i) => [v.name, tf.randomNormal(v.shape, 0, 1e-2 * (1 + (t % 7)), 'float32', 1000 * t + i + 1)]));
}
function steps(opt: tf.Optimizer, vars: readonly tf.Variable[], from: number, to: number, each?: (t: number) => void): void {
  for (let t = from; t < to; t++) {
    each?.(t);
    const g = gradsAt(vars, t);
    tf.tidy(() => opt.applyGradients(g));
    tf.dispose(Object.values(g));
  }
}
const values = (vars: readonly tf.Variable[]): Float32Array[] => vars.map((v) => v.dataSync().slice() as Float32Array);

/** |a - b| <= 1e-6 · max(|b|, 1e-2) for every element: 1e-6 relative, 1e-8 absolute near zero. */
function expectClose(got: Float32Array[], want: Float32Array[], rtol = 1e-6): void {
  let worst = 0;
  got.forEach((g, i) => g.forEach((x, j) => {
    const r = want[i]![j]!;
    worst = Math.max(worst, Math.abs(x - r) / Math.max(Math.abs(r), 1e-2));
  }));
  expect(worst).toBeLessThanOrEqual(rtol);
}

function runWith(make: () => tf.Optimizer, n: number, each?: (t: number, opt: tf.Optimizer, vars: tf.Variable[]) => void): Float32Array[] {
  const vars = makeVars();
  const opt = make();
  try {
    steps(opt, vars, 0, n, each === undefined ? undefined : (t) => each(t, opt, vars));
    return values(vars);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
}

describe('FlintAdam', () => {
  it.each([true, false])('gives the numbers of tf.train.adam to 1e-6 relative after 200 steps (native: %s)', async (useNative) => {
    const want = runWith(() => tf.train.adam(1e-3), 200);
    const got = await expectNoLeak(() => runWith(() => adam({ native: useNative }), 200), 'FlintAdam');
    expectClose(got, want);
  });

  it('the fused native update and the tfjs-ops update agree', () => {
    const a = runWith(() => adam({ native: true }), 50);
    const b = runWith(() => adam({ native: false }), 50);
    // TensorFlow's kernel rounds as the tfjs ops do; wasm's (@flint/backends) computes in float64.
    expectClose(a, b, tf.getBackend() === 'wasm' ? 1e-6 : 1e-7);
  });

  it('follows learning-rate changes between steps (as schedulers make them) and non-default betas', () => {
    const schedule = (t: number, opt: tf.Optimizer) => {
      (opt as unknown as { learningRate: number }).learningRate = 1e-2 / (1 + t);
    };
    const want = runWith(() => tf.train.adam(1e-2, 0.8, 0.99, 1e-6), 60, schedule);
    const got = runWith(() => adam({ learningRate: 1e-2, beta1: 0.8, beta2: 0.99, epsilon: 1e-6 }), 60, schedule);
    expectClose(got, want);
  });

  it('takes a variable assigned from outside between steps (e.g. loadStateDict)', () => {
    const reset = (t: number, _opt: tf.Optimizer, vars: tf.Variable[]) => {
      if (t === 5) tf.tidy(() => vars[0]!.assign(tf.fill(vars[0]!.shape, 0.25)));
    };
    expectClose(runWith(() => adam(), 10, reset), runWith(() => tf.train.adam(1e-3), 10, reset));
  });

  it('checkpoints through getWeights/setWeights: a restored optimizer continues exactly (captureOptimizerState, file round trip)', async () => {
    const full = runWith(() => adam(), 40);

    const vars = makeVars();
    const first = adam();
    steps(first, vars, 0, 25);
    const weights = await first.getWeights();
    weights[0]!.tensor.dispose();
    expect(weights.map((w) => w.name)).toEqual(['iter', ...vars.map((v) => `${v.name}/m`), ...vars.map((v) => `${v.name}/v`)]);
    const varToParam = new Map(vars.map((v, i) => [v.name, `p${i}`]));
    const state = await captureOptimizerState(first, varToParam);
    expect(state.className).toBe('FlintAdam');
    expect(state.extra).toEqual({});
    const bytes = encodeCheckpoint(emptyCheckpoint({ optimizers: [state] }));
    const saved = values(vars);
    first.dispose();
    tf.dispose(vars);

    // "Another process": new variables (other names) with the saved values, a new optimizer.
    const again = makeVars();
    again.forEach((v, i) => v.assign(tf.tensor(saved[i]!, v.shape)));
    const decoded = decodeCheckpoint(bytes, 'test');
    if (decoded.weightsOnly) throw new Error('expected a full checkpoint');
    await expectNoLeak(async () => {
      const second = adam();
      await restoreOptimizerState(second, decoded.optimizers[0]!, new Map(again.map((v, i) => [`p${i}`, v.name])), 'test');
      expect(second.iterations).toBe(25);
      steps(second, again, 25, 40);
      second.dispose();
    }, 'restore and continue');
    expect(values(again)).toEqual(full);
    tf.dispose(again);
  });

  it('leaves no tensors and, on the native backend, no TensorFlow handles behind once disposed', async () => {
    const vars = makeVars();
    tf.tidy(() => vars.forEach((v) => tf.neg(v))); // gives the variables their TensorFlow handles first
    const handles = native() ? nativeHandles() : 0;
    await expectNoLeak(async () => {
      const opt = adam();
      steps(opt, vars, 0, 3);
      (await opt.getWeights())[0]!.tensor.dispose(); // 'iter' is the caller's; the moments stay the optimizer's
      steps(opt, vars, 3, 5);
      (await opt.getWeights())[0]!.tensor.dispose();
      opt.dispose();
    });
    if (native()) expect(nativeHandles()).toBe(handles);
    tf.dispose(vars);
  });

  it('validates its options and the gradients it gets', () => {
    expect(() => adam({ beta1: 1 })).toThrow(MisconfigurationError);
    expect(() => adam({ beta1: 1 })).toThrow("FlintAdam option 'beta1': must be in [0, 1) (received 1)");
    expect(() => adam({ epsilon: 0 })).toThrow("FlintAdam option 'epsilon': must be a number > 0 (received 0)");
    expect(() => adam({ lr: 0.1 } as never)).toThrow(/FlintAdam option '\(options\)': Unrecognized key: "lr"/);
    const opt = adam();
    const g = tf.ones([2]);
    expect(() => opt.applyGradients({ nope: g })).toThrow("FlintAdam.applyGradients: 'nope' is not the name of a tf.Variable (gradients must be keyed by variable name).");
    g.dispose();
    opt.dispose();
  });

  it('serializes its configuration like a tfjs optimizer', () => {
    const opt = adam({ learningRate: 0.01, beta2: 0.99 });
    expect(opt.getClassName()).toBe('FlintAdam');
    expect(opt.getConfig()).toEqual({ learningRate: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-7, native: true });
    const copy = FlintAdam.fromConfig(FlintAdam, opt.getConfig());
    expect(copy).toBeInstanceOf(FlintAdam);
    expect(copy.getConfig()).toEqual(opt.getConfig());
  });

  it.runIf(process.env.FLINT_BACKEND === 'tensorflow')('moves its state when the backend changes between steps', async () => {
    const want = runWith(() => tf.train.adam(1e-3), 20);
    try {
      const got = runWith(() => adam(), 20, (t) => {
        if (t === 10) tf.setBackend('cpu');
      });
      expectClose(got, want);
    } finally {
      await tf.setBackend('tensorflow');
    }
  });
});

describe('a cycled beta1 (OneCycleLR, CyclicLR): setMomentum', () => {
  /** PyTorch's Adam in float64 with beta1 changed before every step: bias correction 1 - beta1^t of the current beta1. */
  function torchAdam(w0: Float64Array, grads: Float64Array[], betas: number[], lr: number, eps: number): Float64Array {
    const w = Float64Array.from(w0);
    const m = new Float64Array(w.length);
    const v = new Float64Array(w.length);
    grads.forEach((g, i) => {
      const t = i + 1;
      const b1 = betas[i]!;
      for (let j = 0; j < w.length; j++) {
        m[j] = b1 * m[j]! + (1 - b1) * g[j]!;
        v[j] = 0.999 * v[j]! + 0.001 * g[j]! * g[j]!;
        w[j]! -= (lr * (m[j]! / (1 - b1 ** t))) / (Math.sqrt(v[j]! / (1 - 0.999 ** t)) + eps);
      }
    });
    return w;
  }

  for (const [label, make] of [
    ['adam()', () => adam({ learningRate: 0.01, native: false })],
    ['tf.train.adam', () => tf.train.adam(0.01)],
  ] as const) {
    it(`${label}: every step uses the beta1 set before it, as PyTorch's Adam`, () => {
      const betas = Array.from({ length: 12 }, (_, t) => 0.85 + 0.1 * Math.abs(Math.cos(t / 3)));
      const w = tf.variable(tf.tensor1d([0.5, -0.3, 0.2, 0.1]));
      const w0 = Float64Array.from(w.dataSync());
      const grads = betas.map((_, t) => Float64Array.from([0.1, -0.2, 0.05, 0.3].map((g, j) => g * Math.cos(t + j))));
      const before = tf.memory().numTensors;
      const opt = make();
      grads.forEach((g, t) => {
        setMomentum(opt, betas[t]!);
        expect(getMomentum(opt)).toBe(betas[t]);
        const grad = tf.tensor1d(Array.from(g));
        opt.applyGradients([{ name: w.name, tensor: grad }]);
        grad.dispose();
      });
      const want = torchAdam(w0, grads, betas, 0.01, 1e-7);
      const constant = torchAdam(w0, grads, betas.map(() => 0.9), 0.01, 1e-7);
      w.dataSync().forEach((x, j) => expect(Math.abs(x - want[j]!)).toBeLessThan(1e-6));
      expect(Math.max(...Array.from(w.dataSync(), (x, j) => Math.abs(x - constant[j]!)))).toBeGreaterThan(1e-4);
      opt.dispose();
      expect(tf.memory().numTensors, 'tensors left by the optimizer').toBe(before);
      w.dispose();
    });
  }

  it('optimizers without momentum are refused with a pinned message', () => {
    const sgd = tf.train.sgd(0.1);
    expect(getMomentum(sgd)).toBeUndefined();
    expect(() => setMomentum(sgd, 0.9)).toThrow(
      'The optimizer SGD has no momentum or beta1 that Flint can set: use tf.train.momentum(lr, 0.9), tf.train.rmsprop(lr, 0.9, 0.9), adam() from @flint/core or tf.train.adam(lr).',
    );
    expect(() => setMomentum(tf.train.momentum(0.1, 0.9), 1)).toThrow('momentum must be a number in [0, 1) (received 1).');
    sgd.dispose();
  });
});
