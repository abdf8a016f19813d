// Prototype measurement: one MLP training step (forward, backward, Adam through ResourceApplyAdam on
// resource variables, as Flint's native Adam kernel does) run eagerly, op by op, against the same
// step traced once and replayed as one TensorFlow function call. Same process, alternating blocks,
// median per-step time. Usage: node scripts/graph-step-prototype.mjs [hidden=128[,128]] [batch=64] [steps=100] [ops=flint|tfjs]
// ops=flint (default): the layers and loss as Flint's Linear and crossEntropy run them (its fused
// dense and cross-entropy kernels, int labels); ops=tfjs: tf.matMul/add/relu and tf.losses.softmaxCrossEntropy.
// Needs the native backend built by `pnpm setup-native`.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
const tf = await import('@tensorflow/tfjs');
await import('@tensorflow/tfjs-node');
await tf.setBackend('tensorflow');
const { installNativeKernels } = await import('../dist/index.js');
const { crossEntropy, DENSE_KERNEL } = await import('@flint/core');
const { compileStep } = await import('../dist/tensorflow/graph/trace.js');
installNativeKernels();

const hidden = (process.argv[2] ?? '128').split(',').map(Number);
const batch = Number(process.argv[3] ?? 64);
const steps = Number(process.argv[4] ?? 100);
const flintOps = (process.argv[5] ?? 'flint') === 'flint';
const b = tf.backend();
const t = b.binding;
const sizes = [784, ...hidden, 10];

function makeParams(seed) {
  const ps = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    ps.push(tf.randomUniform([sizes[i], sizes[i + 1]], -0.05, 0.05, 'float32', seed + i));
    ps.push(tf.zeros([sizes[i + 1]]));
  }
  return ps;
}

const dtypeAttr = [{ name: 'dtype', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT }];
const applyAttrs = [
  { name: 'T', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT },
  { name: 'use_locking', type: t.TF_ATTR_BOOL, value: false },
  { name: 'use_nesterov', type: t.TF_ATTR_BOOL, value: false },
];
function varHandle(shape) {
  return t.executeOp('VarHandleOp', [
    { name: 'dtype', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT },
    { name: 'shape', type: t.TF_ATTR_SHAPE, value: shape },
    { name: 'container', type: t.TF_ATTR_STRING, value: '' },
    { name: 'shared_name', type: t.TF_ATTR_STRING, value: 'cd2c89b7-88b7-44c8-ad83-06c2a9158347' },
  ], [], 1)[0].id;
}
function assign(h, tensor) {
  t.executeOp('AssignVariableOp', dtypeAttr, [h, b.getInputTensorIds([tensor])[0]], 0);
}
const scalar = (v) => ({ id: t.createTensor([], t.TF_FLOAT, new Float32Array([v])), dtype: t.TF_FLOAT, shape: [] });

/** A trainer state: parameters (tfjs tensors), their resource copies and moments. */
function makeState() {
  const params = makeParams(1);
  const slots = params.map((p) => {
    const h = { p: varHandle(p.shape), m: varHandle(p.shape), v: varHandle(p.shape) };
    assign(h.p, p);
    tf.tidy(() => { assign(h.m, tf.zerosLike(p)); assign(h.v, tf.zerosLike(p)); });
    return h;
  });
  return { params, slots, t: 0 };
}
const consts = { zero: scalar(0), b1: scalar(0.9), b2: scalar(0.999), eps: scalar(1e-7) };

function loss(x, y, ps) {
  if (flintOps) {
    let h = x;
    for (let i = 0; i < ps.length; i += 2) {
      h = tf.engine().runKernel(DENSE_KERNEL, { x: h, weight: ps[i], bias: ps[i + 1] }, { activation: i + 2 < ps.length ? 'relu' : 'linear' });
    }
    return crossEntropy(h, y);
  }
  let h = x;
  for (let i = 0; i < ps.length; i += 2) {
    h = tf.add(tf.matMul(h, ps[i]), ps[i + 1]);
    if (i + 2 < ps.length) h = tf.relu(h);
  }
  return tf.losses.softmaxCrossEntropy(y, h);
}

/** The step: returns [loss, ...new params]. `alpha` is a raw or tensor scalar input. */
function stepBody(state, x, y, alphaId) {
  const { value, grads } = tf.valueAndGrads((...ps) => loss(x, y, ps))(state.params);
  const next = state.params.map((p, i) => {
    const s = state.slots[i];
    const gid = b.getInputTensorIds([grads[i]])[0];
    b.binding.executeOp('ResourceApplyAdam', applyAttrs, [s.p, s.m, s.v, consts.zero.id, consts.zero.id, alphaId, consts.b1.id, consts.b2.id, consts.eps.id, gid], 0);
    return b.createOutputTensor(b.binding.executeOp('ReadVariableOp', dtypeAttr, [s.p], 1)[0]);
  });
  return [value, ...next];
}

const alphaOf = (n) => 1e-3 * Math.sqrt(1 - 0.999 ** n) / (1 - 0.9 ** n);

// data: fixed random batches
const xs = [], ys = [];
for (let i = 0; i < 8; i++) {
  xs.push(tf.randomUniform([batch, 784], 0, 1, 'float32', 100 + i));
  const labels = tf.randomUniform([batch], 0, 10, 'int32', 200 + i);
  ys.push(flintOps ? labels : tf.oneHot(labels, 10).toFloat());
}

function eagerStep(state, i) {
  state.t++;
  const alpha = tf.scalar(alphaOf(state.t));
  const out = tf.tidy(() => stepBody(state, xs[i % 8], ys[i % 8], b.getInputTensorIds([alpha])[0]));
  alpha.dispose();
  tf.dispose(state.params);
  state.params = out.slice(1);
  return out[0];
}

const slotInputs = (state) => state.slots.flatMap((s) => [s.p, s.m, s.v].map((id) => ({ id, dtype: t.TF_RESOURCE })));
let current;
const compiled = compileStep(() => tf.tidy(() => stepBody(g, current.x, current.y, b.getInputTensorIds([current.alpha])[0])), {
  onFallback: (r) => console.log(`fallback: ${r}`),
});
let g;
function graphStep(state, i) {
  state.t++;
  const alpha = tf.scalar(alphaOf(state.t));
  const x = xs[i % 8], y = ys[i % 8];
  current = { x, y, alpha };
  const out = compiled.run([x, y, alpha, ...state.params, ...slotInputs(state), consts.zero, consts.b1, consts.b2, consts.eps]);
  alpha.dispose();
  tf.dispose(state.params);
  state.params = out.slice(1);
  return out[0];
}

// 1. correctness: `steps` steps each way from the same start
const before = tf.memory().numTensors;
const e = makeState();
g = makeState();
let le, lg;
for (let i = 0; i < steps; i++) {
  le?.dispose(); lg?.dispose();
  le = eagerStep(e, i);
  lg = graphStep(g, i);
}
let maxDiff = 0;
for (let i = 0; i < e.params.length; i++) {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(e.params[i], g.params[i]))).dataSync()[0]);
  maxDiff = Math.max(maxDiff, d);
}
console.log(`status: ${JSON.stringify(tf.tidy(() => compiled.status([xs[0], ys[0], tf.scalar(0), ...g.params, ...slotInputs(g), consts.zero, consts.b1, consts.b2, consts.eps])))}`);
console.log(`after ${steps} steps: loss eager ${le.dataSync()[0]} graph ${lg.dataSync()[0]}; max |param diff| ${maxDiff.toExponential(2)}`);
le.dispose(); lg.dispose();

// 2. timing: alternating blocks of 50 steps, 7 rounds, median ms/step
const times = { eager: [], graph: [] };
for (let round = 0; round < 7; round++) {
  for (const [kind, fn, st] of [['eager', eagerStep, e], ['graph', graphStep, g]]) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) fn(st, i).dispose();
    // wait for the last result (execution is synchronous on this backend)
    times[kind].push((performance.now() - t0) / 50);
  }
}
const median = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
const me = median(times.eager), mg = median(times.graph);
console.log(`MLP ${sizes.join('-')} b${batch} (${flintOps ? "Flint's kernels" : 'tfjs ops'}): eager ${me.toFixed(3)} ms/step, one call ${mg.toFixed(3)} ms/step, ratio ${(me / mg).toFixed(2)}x`);
tf.dispose([...e.params, ...g.params]);
console.log(`tensors: ${before} before, ${tf.memory().numTensors} after (parameters disposed)`);
