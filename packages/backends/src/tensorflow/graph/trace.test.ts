import * as tf from '@tensorflow/tfjs';
import { expectNoLeak } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeBackend, OpAttr } from '../binding.js';
import { installNativeKernels } from '../kernels/index.js';
import { compileStep, graphBackend, type RawInput, type StepInput } from './trace.js';

// Tracing is for the native backend built by setup-native: this file runs in the suite's native run
// (FLINT_BACKEND=tensorflow).
const onNative = process.env.FLINT_BACKEND === 'tensorflow';

interface Raw {
  getNumOfTensors(): number;
}

describe.runIf(onNative)('traceStep: a training step as one TensorFlow function (native)', () => {
  let b: NodeBackend;
  const rawTensors = () => (b.binding as unknown as Raw).getNumOfTensors();
  beforeAll(async () => {
    await tf.setBackend('tensorflow');
    installNativeKernels();
    b = graphBackend()!;
  });

  it('is available on the native backend built by setup-native', () => {
    expect(b).toBeDefined();
  });

  /** An MLP with Adam in resource variables (as Flint's native Adam kernel keeps it). */
  function mlp(hidden: readonly number[], batch: number) {
    const t = b.binding;
    const sizes = [12, ...hidden, 3];
    const f32: OpAttr[] = [{ name: 'dtype', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT }];
    const applyAttrs: OpAttr[] = [
      { name: 'T', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT },
      { name: 'use_locking', type: t.TF_ATTR_BOOL, value: false },
      { name: 'use_nesterov', type: t.TF_ATTR_BOOL, value: false },
    ];
    const scalar = (v: number): RawInput => ({ id: t.createTensor([], t.TF_FLOAT, new Float32Array([v])), dtype: t.TF_FLOAT, shape: [] });
    const consts = [scalar(0), scalar(0.9), scalar(0.999), scalar(1e-7)] as const;
    const resource = (t as unknown as { TF_RESOURCE: number }).TF_RESOURCE;
    const varHandle = (shape: number[]): number =>
      t.executeOp(
        'VarHandleOp',
        [...f32, { name: 'shape', type: t.TF_ATTR_SHAPE, value: shape }, { name: 'container', type: t.TF_ATTR_STRING, value: '' }, { name: 'shared_name', type: t.TF_ATTR_STRING, value: 'cd2c89b7-88b7-44c8-ad83-06c2a9158347' }],
        [],
        1,
      )[0]!.id;
    const assign = (h: number, v: tf.Tensor) => t.executeOp('AssignVariableOp', f32, [h, b.getInputTensorIds([v])[0]!], 0);

    const state = {
      params: [] as tf.Tensor[],
      slots: [] as { p: number; m: number; v: number }[],
      t: 0,
    };
    for (let i = 0; i + 1 < sizes.length; i++) {
      state.params.push(tf.randomUniform([sizes[i]!, sizes[i + 1]!], -0.3, 0.3, 'float32', 7 + i), tf.zeros([sizes[i + 1]!]));
    }
    for (const p of state.params) {
      const h = { p: varHandle(p.shape), m: varHandle(p.shape), v: varHandle(p.shape) };
      assign(h.p, p);
      tf.tidy(() => {
        assign(h.m, tf.zerosLike(p));
        assign(h.v, tf.zerosLike(p));
      });
      state.slots.push(h);
    }
    const data = [0, 1, 2].map((i) => ({
      x: tf.randomNormal([batch, 12], 0, 1, 'float32', 100 + i),
      y: tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 3, 'int32', 200 + i), 3).toFloat()),
    }));
    const lossOf = (x: tf.Tensor, y: tf.Tensor, ps: tf.Tensor[]): tf.Scalar => {
      let h = x;
      for (let i = 0; i < ps.length; i += 2) {
        h = tf.add(tf.matMul(h, ps[i]!), ps[i + 1]!);
        if (i + 2 < ps.length) h = tf.relu(h);
      }
      return tf.losses.softmaxCrossEntropy(y, h);
    };
    /** The step's body: loss and the parameters after one Adam step. */
    const body = (x: tf.Tensor, y: tf.Tensor, alpha: tf.Tensor): tf.Tensor[] =>
      tf.tidy(() => {
        const { value, grads } = tf.valueAndGrads((...ps: tf.Tensor[]) => lossOf(x, y, ps))(state.params);
        const [zero, b1, b2, eps] = consts.map((c) => c.id) as [number, number, number, number];
        const alphaId = b.getInputTensorIds([alpha])[0]!;
        const next = state.params.map((_, i) => {
          const s = state.slots[i]!;
          b.binding.executeOp('ResourceApplyAdam', applyAttrs, [s.p, s.m, s.v, zero, zero, alphaId, b1, b2, eps, b.getInputTensorIds([grads[i]!])[0]!], 0);
          return b.createOutputTensor(b.binding.executeOp('ReadVariableOp', f32, [s.p], 1)[0]!);
        });
        return [value, ...next];
      });
    const inputs = (x: tf.Tensor, y: tf.Tensor, alpha: tf.Tensor): StepInput[] => [
      x,
      y,
      alpha,
      ...state.params,
      ...state.slots.flatMap((s) => [s.p, s.m, s.v].map((id) => ({ id, dtype: resource }))),
      ...consts,
    ];
    const fallbacks: string[] = [];
    let current: { x: tf.Tensor; y: tf.Tensor; alpha: tf.Tensor } | undefined;
    const compiled = compileStep(() => body(current!.x, current!.y, current!.alpha), { onFallback: (r) => fallbacks.push(r) });
    /** One step, eager or through `compileStep` (traced at the first two calls, one TensorFlow call after). Returns the loss. */
    const step = (i: number, viaCompiled: boolean): number => {
      state.t++;
      const alpha = tf.scalar((1e-2 * Math.sqrt(1 - 0.999 ** state.t)) / (1 - 0.9 ** state.t));
      const { x, y } = data[i % data.length]!;
      current = { x, y, alpha };
      const out = viaCompiled ? compiled.run(inputs(x, y, alpha)) : body(x, y, alpha);
      alpha.dispose();
      tf.dispose(state.params);
      state.params = out.slice(1);
      const loss = out[0]!.dataSync()[0]!;
      out[0]!.dispose();
      return loss;
    };
    const status = () => {
      const { x, y } = data[0]!;
      return tf.tidy(() => compiled.status(inputs(x, y, tf.scalar(0))));
    };
    const dispose = () => {
      compiled.dispose();
      tf.dispose(state.params);
      for (const d of data) tf.dispose([d.x, d.y]);
      for (const s of state.slots) {
        for (const h of [s.p, s.m, s.v]) {
          t.executeOp('DestroyResourceOp', [{ name: 'ignore_lookup_error', type: t.TF_ATTR_BOOL, value: true }], [h], 0);
          t.deleteTensor(h);
        }
      }
      for (const c of consts) t.deleteTensor(c.id);
    };
    return { step, state, dispose, status, fallbacks };
  }

  for (const [label, hidden, batch] of [
    ['MLP-S shape (one hidden layer)', [16], 8],
    ['MLP-L shape (two hidden layers)', [24, 24], 16],
  ] as const) {
    it(`${label}: 100 steps as one call each give the eager numbers (to 1e-5), and leak nothing`, async () => {
      const rawBefore = rawTensors();
      await expectNoLeak(() => {
        const eager = mlp(hidden, batch);
        const compiled = mlp(hidden, batch);
        const lossE: number[] = [];
        const lossC: number[] = [];
        for (let i = 0; i < 100; i++) {
          lossE.push(eager.step(i, false));
          lossC.push(compiled.step(i, true));
        }
        expect(compiled.fallbacks).toEqual([]);
        expect(compiled.status()).toMatchObject({ kind: 'compiled', name: expect.stringMatching(/^flint_step_/) });
        expect(lossC.at(-1)!).toBeLessThan(lossC[0]! * 0.5); // it trains
        lossC.forEach((l, i) => expect(Math.abs(l - lossE[i]!)).toBeLessThanOrEqual(1e-5));
        eager.state.params.forEach((p, i) => {
          const d = tf.tidy(() => tf.max(tf.abs(tf.sub(p, compiled.state.params[i]!))).dataSync()[0]!);
          expect(d).toBeLessThanOrEqual(1e-5);
        });
        eager.dispose();
        compiled.dispose();
      }, 'eager and compiled training');
      expect(rawTensors()).toBe(rawBefore);
    });
  }

  /** Runs `fn` through compileStep `calls` times on `x`; returns the outputs' values per call, and the fallback reasons. */
  function through(fn: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, calls = 3) {
    const reasons: string[] = [];
    const step = compileStep((inp) => [fn(inp[0] as tf.Tensor)], { onFallback: (r) => reasons.push(r) });
    const values: number[][] = [];
    for (let i = 0; i < calls; i++) {
      const [y] = step.run([x]);
      values.push(Array.from(y!.dataSync()));
      y!.dispose();
    }
    const status = step.status([x]);
    step.dispose();
    return { values, reasons, status };
  }

  it('keeps a step that reads values back to JavaScript eager (and right), says why once, and leaves nothing behind', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    b.getInputTensorIds([x]);
    const rawBefore = rawTensors();
    await expectNoLeak(() => {
      const r = through((v) => tf.tidy(() => tf.mul(v, tf.sum(v).dataSync()[0]!)), x);
      expect(r.values).toEqual([[6, 12, 18], [6, 12, 18], [6, 12, 18]]);
      expect(r.reasons).toEqual(['inputs float32[3]: the step reads a tensor back to JavaScript (dataSync/arraySync/print) while it runs: such a step cannot run as one TensorFlow call']);
      expect(r.status).toEqual({ kind: 'eager', reason: r.reasons[0]!.replace('inputs float32[3]: ', '') });
    });
    expect(rawTensors()).toBe(rawBefore);
    x.dispose();
  });

  it('keeps dropout (a random mask drawn in JavaScript each call) eager: a replay would repeat one mask', () => {
    const x = tf.ones([200]);
    const r = through((v) => tf.dropout(v, 0.5), x, 4);
    expect(r.reasons).toEqual([
      'inputs float32[200]: two calls made different graphs: tensors made from JavaScript values inside the step change from call to call (a random draw in JavaScript such as dropout, or a value computed in JavaScript): pass them as inputs',
    ]);
    // Every call draws its own mask, as in eager.
    expect(new Set(r.values.map((v) => v.join())).size).toBe(4);
    x.dispose();
  });

  it('keeps TensorFlow random ops, and tensors from outside that are not inputs, eager', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const w = tf.tensor1d([4, 5, 6]);
    b.getInputTensorIds([w]);
    const outside = through((v) => tf.mul(v, w), x);
    expect(outside.values[2]).toEqual([4, 10, 18]);
    expect(outside.reasons[0]).toMatch(/^inputs float32\[3\]: op Mul uses a tensor made outside the step that is not one of its inputs \(binding id \d+\): pass it as an input$/);
    const random = compileStep(() => [
      tf.tidy(() => {
        const shape = b.getInputTensorIds([tf.tensor1d([3], 'int32')]);
        const t = b.binding;
        const attrs = [{ name: 'dtype', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT }, { name: 'T', type: t.TF_ATTR_TYPE, value: t.TF_INT32 }];
        return b.createOutputTensor(t.executeOp('RandomStandardNormal', attrs, shape, 1)[0]!);
      }),
    ]);
    for (let i = 0; i < 3; i++) tf.dispose(random.run([x]));
    expect(random.status([x])).toEqual({ kind: 'eager', reason: 'the step runs the random op RandomStandardNormal: its replay would not draw the same numbers' });
    random.dispose();
    const same = compileStep((inp) => [inp[0] as tf.Tensor]);
    same.run([x]);
    expect(same.status([x])).toEqual({ kind: 'eager', reason: 'output 0 of the step is a tensor made outside the step (return only tensors the step computes)' });
    same.dispose();
    tf.dispose([x, w]);
  });

  it('turns constants made inside the step into Const nodes, and compiles each input shape on its own', () => {
    const step = compileStep((inp) => [tf.tidy(() => tf.add(tf.mul(inp[0] as tf.Tensor, tf.scalar(2)), 1))]);
    const run = (x: tf.Tensor) => {
      const [y] = step.run([x]);
      const v = y!.arraySync();
      y!.dispose();
      return v;
    };
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const a2 = tf.tensor2d([[10, 20], [30, 40]]);
    const c = tf.tensor1d([1, 2]);
    expect([run(a), run(a)]).toEqual([[[3, 5], [7, 9]], [[3, 5], [7, 9]]]);
    expect(step.status([a])).toMatchObject({ kind: 'compiled' });
    expect(run(a2)).toEqual([[21, 41], [61, 81]]);
    expect(step.status([c])).toBeUndefined();
    expect(run(c)).toEqual([3, 5]);
    expect(step.status([c])).toEqual({ kind: 'tracing', calls: 1 });
    step.dispose();
    expect(() => step.run([a])).toThrow('compileStep: this step was disposed');
    tf.dispose([a, a2, c]);
  });
});

describe.runIf(!onNative)('traceStep on another backend', () => {
  it('says that it needs the native backend built by setup-native', () => {
    expect(graphBackend()).toBeUndefined();
    const reasons: string[] = [];
    const x = tf.tensor1d([1, 2]);
    const step = compileStep((inp) => [tf.add(inp[0] as tf.Tensor, 1)], { onFallback: (r) => reasons.push(r) });
    for (let i = 0; i < 3; i++) {
      const [y] = step.run([x]);
      expect(Array.from(y!.dataSync())).toEqual([2, 3]);
      y!.dispose();
    }
    expect(reasons).toEqual(["inputs float32[2]: the native backend ('tensorflow') with Flint's graph functions is not active (run setup-native to build it)"]);
    step.dispose();
    x.dispose();
  });
});
