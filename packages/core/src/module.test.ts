import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CheckpointError, Dropout, LightningModule, Linear, Module, Sequential, type OptimizersReturn } from './index.js';

class Encoder extends Module {
  w = tf.variable(tf.ones([2, 3]));
  frozen = tf.variable(tf.zeros([3]), false);
}

class Net extends LightningModule {
  encoder = new Encoder();
  head = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3], activation: 'relu' }), tf.layers.batchNormalization(), tf.layers.dense({ units: 2 })] });
  blocks = [new Linear(2, 2), new Dropout(0.5)];
  extra = { scale: tf.variable(tf.scalar(1)) };
  trainingStep(): tf.Scalar {
    return tf.scalar(0);
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(0.1);
  }
}

describe('Module parameter discovery', () => {
  it('finds variables, tfjs models and nested modules with stable dotted names', () => {
    const net = new Net();
    expect(net.namedParameters().map((p) => `${p.name}${p.trainable ? '' : ' (frozen)'}`)).toEqual([
      'encoder.w',
      'encoder.frozen (frozen)',
      'head.0.kernel',
      'head.0.bias',
      'head.1.gamma',
      'head.1.beta',
      'head.1.moving_mean (frozen)',
      'head.1.moving_variance (frozen)',
      'head.2.kernel',
      'head.2.bias',
      'blocks.0.weight',
      'blocks.0.bias',
      'extra.scale',
    ]);
    expect(net.parameters()).toHaveLength(10);
    // a second instance gets the same names although tfjs gives its layers new names
    expect(new Net().namedParameters().map((p) => p.name)).toEqual(net.namedParameters().map((p) => p.name));
  });

  it('summary lists the top-level children with trainable and non-trainable counts', () => {
    const net = new Net();
    const s = net.summaryData();
    expect(s.rows.map((r) => [r.name, r.type, r.params])).toEqual([
      ['encoder', 'Encoder', 9],
      ['head', 'Sequential', 16 + 16 + 10],
      ['blocks.0', 'Linear', 6],
      ['blocks.1', 'Dropout', 0],
      ['extra.scale', 'Variable[]', 1],
    ]);
    expect(s.trainableParams).toBe(6 + 16 + 8 + 10 + 6 + 1);
    expect(s.nonTrainableParams).toBe(3 + 8);
    const text = net.summary();
    expect(text).toContain('Trainable params');
    expect(text).toMatch(/47 +Trainable params/);
    expect(text).toMatch(/11 +Non-trainable params/);
    expect(text).toMatch(/58 +Total params/);
  });

  it('train() and eval() reach nested modules; Dropout is active only while training', () => {
    const net = new Net();
    net.eval();
    const dropout = net.blocks[1] as Dropout;
    expect(dropout.training).toBe(false);
    const x = tf.ones([100, 10]);
    expect(Array.from(dropout.forward(x).dataSync()).every((v) => v === 1)).toBe(true);
    net.train();
    expect(dropout.training).toBe(true);
    const y = dropout.forward(x).dataSync();
    const zeros = Array.from(y).filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(350);
    expect(zeros).toBeLessThan(650);
    expect(Array.from(y).filter((v) => v !== 0).every((v) => Math.abs(v - 2) < 1e-6)).toBe(true);
    x.dispose();
  });

  it('stateDict round-trips, and a mismatch leaves the module untouched', () => {
    const a = new Net();
    const b = new Net();
    b.loadStateDict(a.stateDict());
    expect(b.namedParameters().map((p) => Array.from(p.variable.dataSync()))).toEqual(a.namedParameters().map((p) => Array.from(p.variable.dataSync())));
    const state = a.stateDict();
    const before = Array.from(b.encoder.w.dataSync());
    state['encoder.w'] = { ...state['encoder.w']!, data: new Float32Array(6).fill(9) };
    state['blocks.0.weight'] = { shape: [3, 3], dtype: 'float32', data: new Float32Array(9) };
    expect(() => b.loadStateDict(state)).toThrow(CheckpointError);
    expect(() => b.loadStateDict(state)).toThrow("loadStateDict: parameter 'blocks.0.weight' has shape [3, 3] in the weights but [2, 2] in the module.");
    expect(Array.from(b.encoder.w.dataSync())).toEqual(before);
    const { 'extra.scale': _removed, ...missing } = a.stateDict();
    expect(() => b.loadStateDict(missing)).toThrow(/Missing parameters: extra\.scale\./);
  });

  it('Sequential chains Flint modules, tfjs layers and functions', () => {
    const seq = new Sequential(new Linear(3, 4, { activation: 'relu' }), tf.layers.dense({ units: 2, inputShape: [4] }), tf.sigmoid);
    const y = seq.forward(tf.ones([5, 3]));
    expect(y.shape).toEqual([5, 2]);
    expect(seq.namedParameters().map((p) => p.name)).toEqual(['layers.0.weight', 'layers.0.bias', 'layers.1.kernel', 'layers.1.bias']);
  });

  it('unbuiltLayers judges models by their layers; buildLayers builds what known input shapes allow, in eval mode', () => {
    class Mixed extends Module {
      seq = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3] }), tf.layers.dense({ units: 2 })] });
      chain = new Sequential(new Linear(3, 4), tf.layers.batchNormalization(), tf.layers.dense({ units: 2 }));
      shaped = tf.layers.dense({ units: 2, inputShape: [5] });
      unknown = new Sequential(tf.layers.dense({ units: 2 }));
      // a chain that fails on zeros: the layers after the failure stay unbuilt
      misfit = new Sequential(tf.layers.dense({ units: 2, inputShape: [3] }), (): tf.Tensor => {
        throw new Error('needs real data');
      }, tf.layers.dense({ units: 1 }));
    }
    const m = new Mixed();
    expect(m.seq.built).toBe(false);
    expect(m.unbuiltLayers()).toEqual(['chain.layers.1', 'chain.layers.2', 'shaped', 'unknown.layers.0', 'misfit.layers.0', 'misfit.layers.2']);
    const tensors = tf.memory().numTensors;
    expect(m.buildLayers()).toEqual(['unknown.layers.0', 'misfit.layers.2']);
    // New tensors are the new weights only (batch norm: 4, dense: 2, shaped: 2, misfit's dense: 2).
    expect(tf.memory().numTensors - tensors).toBe(10);
    expect(m.training && m.chain.training).toBe(true);
    const bn = m.namedParameters().filter((p) => p.name.startsWith('chain.layers.1.moving'));
    expect(bn.map((p) => Array.from(p.variable.dataSync()))).toEqual([[0, 0, 0, 0], [1, 1, 1, 1]]);
  });

  it('Linear rejects bad sizes and inputs with the shapes involved', () => {
    expect(() => new Linear(0, 3)).toThrow('Linear(inFeatures, outFeatures): both must be positive integers (received 0, 3).');
    expect(() => new Linear(3, 2).forward(tf.ones([4, 5]))).toThrow('Linear expects input of shape [batch, 3] (received [4, 5]).');
    expect(() => new Dropout(1)).toThrow('Dropout rate must be in [0, 1) (received 1).');
  });
});

describe('LightningModule', () => {
  it('saveHyperparameters stores JSON values and refuses tensors', () => {
    const net = new Net();
    net.saveHyperparameters({ lr: 0.1, layers: [3, 4] });
    expect(net.hparams).toEqual({ lr: 0.1, layers: [3, 4] });
    expect(() => net.saveHyperparameters({ w: tf.scalar(1) })).toThrow("saveHyperparameters: 'w' must be JSON-serializable (received a tensor).");
  });

  it('log() and optimizers() outside a Trainer say so', () => {
    const net = new Net();
    expect(() => net.log('x', 1)).toThrow("log('x') was called outside of a Trainer: log() works inside steps and hooks run by trainer.fit/validate/test.");
    expect(() => net.optimizers()).toThrow(/only available while a Trainer runs this module/);
    expect(() => net.manualBackward(() => tf.scalar(0))).toThrow(/set `automaticOptimization = false`/);
  });
});
