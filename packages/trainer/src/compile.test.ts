import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { OneCycleLR } from '@flint/callbacks';
import { adam, BatchNorm1d, Callback, crossEntropy, DataLoader, Dropout, LightningModule, Linear, seedEverything, Sequential, type Logger, type Metrics } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, worstRelativeDifference, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

// `Trainer({ compile: true })`: each training step one TensorFlow call on the native backend (this
// file's first part runs in the suite's native run, FLINT_BACKEND=tensorflow); on any other backend
// the trainer says why and trains eagerly (second part, wasm run).
const onNative = process.env.FLINT_BACKEND === 'tensorflow';

class Mlp extends LightningModule<BoringBatch> {
  net: Sequential;
  constructor(
    private readonly options: { dropout?: number; schedule?: boolean; batchNorm?: boolean } = {},
  ) {
    super();
    this.net = new Sequential(
      new Linear(6, 32, { activation: 'relu' }),
      ...(options.dropout === undefined ? [] : [new Dropout(options.dropout)]),
      ...(options.batchNorm === true ? [new BatchNorm1d(32)] : []),
      new Linear(32, 3),
    );
  }
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch, _batchIdx?: number) {
    const logits = this.forward(x);
    const loss = crossEntropy(logits, y) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true, progBar: true });
    this.log('train_acc', tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')), { onStep: true, onEpoch: true });
    return loss;
  }
  configureOptimizers() {
    const optimizer = adam({ learningRate: 0.01 });
    if (this.options.schedule !== true) return optimizer;
    // A schedule that changes the learning rate and Adam's beta1 at every step.
    return { optimizer, lrScheduler: { scheduler: new OneCycleLR(optimizer, { maxLr: 0.02, totalSteps: 40 }), interval: 'step' as const } };
  }
}

/** What the loggers were given, as the trainer sent it. */
class Rows implements Logger {
  readonly name = 'rows';
  readonly version = 0;
  readonly logDir = undefined;
  readonly rows: Array<{ step: number; metrics: Metrics }> = [];
  logHyperparams() {}
  logMetrics(metrics: Metrics, step: number) {
    this.rows.push({ step, metrics: { ...metrics } });
  }
  save() {}
  finalize() {}
}

class SaveAtEpochEnd extends Callback {
  constructor(
    private readonly file: string,
    private readonly epoch: number,
  ) {
    super();
  }
  override async onTrainEpochEnd(trainer: Trainer): Promise<void> {
    if (trainer.currentEpoch !== this.epoch) return;
    await trainer.saveCheckpoint(this.file);
    trainer.requestStop({ rule: 'test', message: 'saved' });
  }
}

/** Halves every parameter after batch 3 of each epoch, as a user's weight-averaging callback might. */
class Shrink extends Callback {
  override onTrainBatchEnd(trainer: Trainer, module: LightningModule, _outputs: unknown, _batch: unknown, batchIdx: number): void {
    if (batchIdx !== 3) return;
    for (const p of module.parameters()) tf.tidy(() => p.assign(tf.mul(p, 0.5)));
  }
}

/** Counts the steps that went through onAfterBackward. */
class GradientReader extends Callback {
  calls = 0;
  override onAfterBackward(): void {
    this.calls++;
  }
}

const quiet: TrainerOptions = { enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, logEveryNSteps: 1 };
// 100 rows in batches of 16: six full batches and a last one of 4 (a second input shape to compile).
const data = randomClassificationDataset({ n: 100, features: 6, classes: 3, seed: 8 });
const loader = () => new DataLoader(data, { batchSize: 16, shuffle: true, seed: 2 });
const weights = (m: LightningModule) => m.namedParameters().map((p) => p.variable.dataSync() as Float32Array);
let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-compile-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

async function train(compile: boolean, options: { module?: ConstructorParameters<typeof Mlp>[0]; epochs?: number; callbacks?: Callback[]; ckptPath?: string; seed?: number } = {}) {
  seedEverything(options.seed ?? 4);
  const module = new Mlp(options.module);
  const logger = new Rows();
  const printed: string[] = [];
  const trainer = new Trainer({ ...quiet, logger, compile, maxEpochs: options.epochs ?? 3, callbacks: options.callbacks ?? [] });
  trainer.print = (line: string) => printed.push(line);
  await expectNoLeak(() => trainer.fit(module, loader(), undefined, options.ckptPath === undefined ? undefined : { ckptPath: options.ckptPath }), `fit (compile: ${compile})`);
  const result = { weights: weights(module), rows: logger.rows, history: trainer.history, globalStep: trainer.globalStep, printed };
  module.parameters().forEach((p) => p.dispose());
  return result;
}

describe.runIf(onNative)('Trainer({ compile: true }) on the native backend', () => {
  it('trains as one TensorFlow call per step, with the weights, logged rows and history of an eager fit', async () => {
    const eager = await train(false);
    const compiled = await train(true);
    expect(compiled.printed.filter((l) => l.includes('compile'))).toEqual([expect.stringMatching(/^Trainer\(compile: true\): the training step runs as one TensorFlow call \(\d+ ops\) from global step 3 on\.$/)]);
    expect(worstRelativeDifference(eager.weights, compiled.weights)).toBeLessThan(1e-5);
    expect(compiled.globalStep).toBe(21);
    // Every step's loss and accuracy went to the logger at the same steps, with the same values.
    expect(compiled.rows.map((r) => [r.step, Object.keys(r.metrics).sort()])).toEqual(eager.rows.map((r) => [r.step, Object.keys(r.metrics).sort()]));
    compiled.rows.forEach((r, i) => {
      for (const [k, v] of Object.entries(r.metrics)) expect(v, `${k} at step ${r.step}`).toBeCloseTo(eager.rows[i]!.metrics[k]!, 5);
    });
    expect(compiled.history.map((h) => Object.keys(h.metrics).sort())).toEqual(eager.history.map((h) => Object.keys(h.metrics).sort()));
    compiled.history.forEach((h, i) => {
      for (const [k, v] of Object.entries(h.metrics)) expect(v, `${k} in epoch ${i}`).toBeCloseTo(eager.history[i]!.metrics[k]!, 5);
    });
    expect(Object.keys(compiled.history[0]!.metrics).sort()).toEqual(['train_acc', 'train_loss']);
  });

  it('follows a schedule that changes the learning rate and beta1 at every step', async () => {
    const eager = await train(false, { module: { schedule: true } });
    const compiled = await train(true, { module: { schedule: true } });
    expect(compiled.printed.some((l) => l.includes('one TensorFlow call'))).toBe(true);
    expect(worstRelativeDifference(eager.weights, compiled.weights)).toBeLessThan(1e-5);
  });

  it('resumes from a checkpoint of a compiled fit exactly where an uninterrupted compiled fit would be', async () => {
    const full = await train(true, { epochs: 4 });
    const file = path.join(dir, 'epoch1.ckpt');
    await train(true, { epochs: 4, callbacks: [new SaveAtEpochEnd(file, 1)] });
    const resumed = await train(true, { epochs: 4, ckptPath: file, seed: 999 });
    expect(resumed.globalStep).toBe(full.globalStep);
    expect(worstRelativeDifference(full.weights, resumed.weights)).toBeLessThan(1e-5);
  });

  it('says why a step with dropout (a mask drawn in JavaScript) runs eagerly, and trains as compile: false does', async () => {
    const eager = await train(false, { module: { dropout: 0.3 } });
    const compiled = await train(true, { module: { dropout: 0.3 } });
    const lines = compiled.printed.filter((l) => l.includes('compile'));
    expect(lines).toEqual([
      'Trainer(compile: true): the training step runs eagerly: two calls made different graphs: tensors made from JavaScript values inside the step change from call to call ' +
        '(a random draw in JavaScript such as dropout, or a value computed in JavaScript) (batch [float32[16,6], int32[16]]).',
    ]);
    expect(compiled.printed.some((l) => l.includes('one TensorFlow call'))).toBe(false);
    expect(worstRelativeDifference(eager.weights, compiled.weights)).toBeLessThan(1e-5);
  });

  it('uses parameters assigned from outside between steps (a callback), as an eager fit does', async () => {
    const eager = await train(false, { callbacks: [new Shrink()] });
    const compiled = await train(true, { callbacks: [new Shrink()] });
    expect(compiled.printed.some((l) => l.includes('one TensorFlow call'))).toBe(true);
    expect(worstRelativeDifference(eager.weights, compiled.weights)).toBeLessThan(1e-5);
  });

  it('keeps a step that moves BatchNorm running statistics (variables assigned in JavaScript) eager, and says why', async () => {
    const eager = await train(false, { module: { batchNorm: true } });
    const compiled = await train(true, { module: { batchNorm: true } });
    const lines = compiled.printed.filter((l) => l.includes('compile'));
    expect(lines[0]).toMatch(/^Trainer\(compile: true\): the training step runs eagerly: .*(running_|made outside the step)/);
    expect(compiled.printed.some((l) => l.includes('one TensorFlow call'))).toBe(false);
    expect(worstRelativeDifference(eager.weights, compiled.weights)).toBeLessThan(1e-5);
  });

  it('an error thrown by trainingStep while the step is traced reaches fit as it would eagerly, with where it happened, and nothing leaks', async () => {
    class Throws extends Mlp {
      override trainingStep(batch: BoringBatch, batchIdx = 0) {
        if (batchIdx === 1) throw new RangeError('bad batch');
        return super.trainingStep(batch);
      }
    }
    seedEverything(4);
    const trainer = new Trainer({ ...quiet, logger: false, compile: true, maxEpochs: 1 });
    trainer.print = () => undefined;
    const module = new Throws();
    let thrown: unknown;
    await expectNoLeak(async () => {
      thrown = await trainer.fit(module, loader()).catch((e: unknown) => e);
    }, 'failed fit');
    module.parameters().forEach((p) => p.dispose());
    expect(thrown).toBeInstanceOf(RangeError);
    expect((thrown as Error).message).toBe('bad batch\n[Flint] in Throws.trainingStep on batch 1 of epoch 0 (batch: [float32[16,6], int32[16]])');
  });

  it('keeps a step with onAfterBackward eager, says so once, and calls the hook at every step', async () => {
    const reader = new GradientReader();
    const compiled = await train(true, { callbacks: [reader] });
    expect(compiled.printed.filter((l) => l.includes('compile'))).toEqual(['Trainer(compile: true): the training step runs eagerly: onAfterBackward runs between trainingStep and the update.']);
    expect(reader.calls).toBe(21);
  });
});

describe.runIf(!onNative)('Trainer({ compile: true }) on another backend', () => {
  it('says that steps compile on the native backend only, and trains as compile: false does', async () => {
    const eager = await train(false);
    const compiled = await train(true);
    expect(compiled.printed.filter((l) => l.includes('compile'))).toEqual([
      expect.stringMatching(/^Trainer\(compile: true\): the training step runs eagerly: the '\w+' backend runs ops one by one; compiled steps need the native backend/),
    ]);
    expect(compiled.weights).toEqual(eager.weights);
    expect(compiled.history).toEqual(eager.history);
  });
});
