import * as tf from '@tensorflow/tfjs';
import { adam, Callback, DataLoader, LightningModule, Linear, Module, seedEverything, type OptimizersReturn, type TrainerContext } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { BackboneFinetuning } from '@flint/callbacks';
import { describe, expect, it } from 'vitest';
import { regressionData, regressionProblem, weightsOf } from '../testing/regression.js';
import { Trainer, type TrainerOptions } from '../index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
type Batch = [tf.Tensor2D, tf.Tensor2D];

class Backbone extends Module {
  readonly fc = new Linear(3, 4);
}
class WithBackbone extends LightningModule<Batch> {
  readonly backbone = new Backbone();
  readonly head = new Linear(4, 2);
  constructor(readonly useAdam = false) {
    super();
  }
  lossOf([x, y]: Batch): tf.Scalar {
    return tf.losses.meanSquaredError(y, this.head.forward(tf.tanh(this.backbone.fc.forward(x)))) as tf.Scalar;
  }
  trainingStep(batch: Batch): tf.Scalar {
    return this.lossOf(batch);
  }
  configureOptimizers(): OptimizersReturn {
    return this.useAdam ? adam({ learningRate: 0.01 }) : tf.train.sgd(0.1);
  }
}

class Recorder extends Callback {
  readonly lrs: Array<number | undefined> = [];
  readonly weights: Array<Record<string, number[]>> = [];
  constructor(private readonly finetuning: BackboneFinetuning) {
    super();
  }
  override onTrainEpochStart(_t: TrainerContext, module: LightningModule): void {
    this.lrs.push(this.finetuning.backboneLr);
    this.weights.push(weightsOf(module));
  }
}

describe('BackboneFinetuning', () => {
  it("freezes the backbone until the epoch, then trains it with Lightning's lower, growing, aligned learning rate (exact for SGD); no leaks", async () => {
    seedEverything(8);
    const module = new WithBackbone();
    const ft = new BackboneFinetuning({ unfreezeBackboneAtEpoch: 2 });
    const rec = new Recorder(ft);
    const p = regressionProblem();
    const ds = regressionData(p);
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 9, callbacks: [ft, rec] }).fit(module, new DataLoader(ds, { batchSize: 22 })), 'fit');
    // Lightning: 0.1 x 0.1 at the unfreeze epoch, then x 1.5 each epoch, never above the optimizer's 0.1.
    const want = [undefined, undefined, 0.01, 0.015, 0.0225, 0.03375, 0.050625, 0.0759375, 0.1];
    rec.lrs.forEach((lr, i) => (want[i] === undefined ? expect(lr).toBeUndefined() : expect(lr).toBeCloseTo(want[i]!, 12)));
    const w = rec.weights;
    expect(w[1]!['backbone.fc.weight']).toEqual(w[0]!['backbone.fc.weight']);
    expect(w[2]!['backbone.fc.weight']).toEqual(w[0]!['backbone.fc.weight']);
    expect(w[1]!['head.weight']).not.toEqual(w[0]!['head.weight']);
    // Epoch 2 (one batch): the backbone moves by -0.01 x its gradient at the epoch's start weights, the head by -0.1 x its own.
    const probe = new WithBackbone();
    probe.loadStateDict(Object.fromEntries(Object.entries(w[2]!).map(([k, v]) => [k, { shape: module.namedParameters().find((q) => q.name === k)!.variable.shape, data: v }])));
    const grads = tf.tidy(() => {
      const x = tf.tensor2d(p.x, [22, 3]);
      const y = tf.tensor2d(p.y, [22, 2]);
      const vars = probe.namedParameters();
      const { grads: g } = tf.variableGrads(() => probe.lossOf([x, y]), vars.map((q) => q.variable));
      return Object.fromEntries(vars.map((q) => [q.name, Array.from(g[q.variable.name]!.dataSync())]));
    });
    for (const [name, lr] of [['backbone.fc.weight', 0.01], ['backbone.fc.bias', 0.01], ['head.weight', 0.1]] as const) {
      w[3]![name]!.forEach((v, j) => expect(v).toBeCloseTo(w[2]![name]![j]! - lr * grads[name]![j]!, 6));
    }
    ds.dispose();
    tf.dispose(probe.parameters());
  });

  it('works with Adam (a second Adam for the backbone) and a custom lambdaFunc; errors name the missing backbone', async () => {
    seedEverything(9);
    const module = new WithBackbone(true);
    const ft = new BackboneFinetuning({ unfreezeBackboneAtEpoch: 1, lambdaFunc: () => 2, backboneInitialLr: 0.001 });
    const rec = new Recorder(ft);
    const ds = regressionData(regressionProblem());
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 4, callbacks: [ft, rec] }).fit(module, new DataLoader(ds, { batchSize: 8 })), 'fit');
    expect(rec.lrs).toEqual([undefined, 0.001, 0.002, 0.004]);
    expect(rec.weights[3]!['backbone.fc.weight']).not.toEqual(rec.weights[1]!['backbone.fc.weight']);
    class NoBackbone extends WithBackbone {
      override readonly backbone = undefined as never;
    }
    await expect(new Trainer({ ...quiet, maxEpochs: 1, callbacks: [new BackboneFinetuning()] }).fit(new NoBackbone(), new DataLoader(ds, { batchSize: 8 }))).rejects.toThrow(
      "BackboneFinetuning: NoBackbone must have a 'backbone' field holding a Module (the layers to freeze and fine-tune).",
    );
    ds.dispose();
  });
});
