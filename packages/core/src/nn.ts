import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from './errors.js';
import { parseOptions } from './options.js';
import { exampleShape, isTfLayer, Module, tryBuild, withEvalMode } from './module.js';
import { createRng } from './seed.js';

export const ACTIVATIONS = ['linear', 'relu', 'sigmoid', 'tanh', 'elu', 'relu6', 'leakyrelu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** Options of `Linear`. */
export const linearOptionsSchema = z.strictObject({
  /** Add a learned bias (default true). */
  bias: z.boolean().default(true),
  /** The activation fused into the layer (default 'linear': none). */
  activation: z.enum(ACTIVATIONS).default('linear'),
});
export type LinearOptions = z.input<typeof linearOptionsSchema>;

const FUSED: ReadonlySet<Activation> = new Set(['linear', 'relu', 'sigmoid', 'elu', 'relu6', 'leakyrelu']);

/**
 * Name of the kernel `Linear` runs when the active backend registers it (`@flint/backends` does for
 * the native and the wasm backend): inputs `{ x: [batch, in], weight: [in, out], bias?: [out] }`, attribute
 * `activation` ('linear' | 'relu' | 'sigmoid' | 'tanh'), output `act(x W + b)`. One tape entry with
 * a gradient of its own (below): the tfjs ops Linear runs otherwise record matmul, add and the
 * activation separately while training, because tfjs fuses only without a gradient tape.
 */
export const DENSE_KERNEL = 'FlintDense';

/**
 * Name of the kernel for the activation's backward step from the layer's output `y`: inputs
 * `{ dy, y }`, attribute `activation` ('relu' | 'sigmoid' | 'tanh'), output `dy · act'(y)`.
 * Optional: without it the gradient uses tfjs ops.
 */
export const ACTIVATION_GRAD_KERNEL = 'FlintActivationGrad';

/** The activations the dense kernel computes, whose derivative follows from the output alone. */
export type DenseActivation = 'linear' | 'relu' | 'sigmoid' | 'tanh';
const DENSE_ACTIVATIONS: ReadonlySet<Activation> = new Set<DenseActivation>(['linear', 'relu', 'sigmoid', 'tanh']);

/** `dy · act'(z)` from the output `y = act(z)`. */
function activationGrad(dy: tf.Tensor, y: tf.Tensor, activation: DenseActivation): tf.Tensor {
  if (activation === 'linear') return dy;
  if (tf.getKernel(ACTIVATION_GRAD_KERNEL, tf.getBackend()) !== undefined) {
    return tf.engine().runKernel(ACTIVATION_GRAD_KERNEL, { dy, y }, { activation }) as tf.Tensor;
  }
  if (activation === 'relu') return tf.mul(dy, tf.step(y));
  if (activation === 'sigmoid') return tf.mul(dy, tf.mul(y, tf.sub(1, y)));
  return tf.mul(dy, tf.sub(1, tf.square(y)));
}

// The gradient of the dense kernel: the activation's backward step once, then each input's
// gradient only when the tape asks for it (the first layer's input needs none).
tf.registerGradient({
  kernelName: DENSE_KERNEL,
  inputsToSave: ['x', 'weight'],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [x, weight, y] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const dz = activationGrad(dy as tf.Tensor, y, (attrs as unknown as { activation: DenseActivation }).activation) as tf.Tensor2D;
    return {
      x: () => tf.matMul(dz, weight, false, true),
      weight: () => tf.matMul(x, dz, true, false),
      bias: () => tf.sum(dz, 0),
    };
  },
});

/** Glorot-uniform initial values drawn from Math.random (seeded by seedEverything). */
function glorotUniform(fanIn: number, fanOut: number): tf.Tensor2D {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const values = new Float32Array(fanIn * fanOut);
  const rng = createRng(Math.floor(Math.random() * 0xffffffff));
  for (let i = 0; i < values.length; i++) values[i] = (rng.next() * 2 - 1) * limit;
  return tf.tensor2d(values, [fanIn, fanOut]);
}

/**
 * A dense layer `y = act(x W + b)` with its weights as plain tf.Variables, computed with one fused
 * matmul + bias + activation op (as `torch.nn.Linear` followed by an activation). Where the backend
 * registers `DENSE_KERNEL` (`@flint/backends` does for the native and the wasm backend), linear/relu/sigmoid/tanh
 * layers run it: one kernel forward and the activation's backward plus two matmuls and a sum back.
 */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly activation: Activation;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    if (!Number.isInteger(inFeatures) || inFeatures < 1 || !Number.isInteger(outFeatures) || outFeatures < 1) {
      throw new MisconfigurationError(`Linear(inFeatures, outFeatures): both must be positive integers (received ${inFeatures}, ${outFeatures}).`);
    }
    const { bias, activation } = parseOptions('Linear', linearOptionsSchema, options);
    this.activation = activation;
    const init = glorotUniform(inFeatures, outFeatures);
    this.weight = tf.variable(init, true);
    init.dispose();
    this.bias = !bias ? undefined : tf.tidy(() => tf.variable(tf.zeros([outFeatures]), true));
  }

  /** The output shape [batch, outFeatures] for an input shape [batch, inFeatures]. */
  outputShape(inputShape: readonly number[]): number[] {
    if (inputShape.length !== 2 || inputShape[1] !== this.weight.shape[0]) {
      throw new MisconfigurationError(`Linear expects input of shape [batch, ${this.weight.shape[0]}] (received [${inputShape.join(', ')}]).`);
    }
    return [inputShape[0]!, this.weight.shape[1]!];
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.weight.shape[0]) {
      throw new MisconfigurationError(
        `Linear expects input of shape [batch, ${this.weight.shape[0]}] (received [${x.shape.join(', ')}]).`,
      );
    }
    if (DENSE_ACTIVATIONS.has(this.activation) && tf.getKernel(DENSE_KERNEL, tf.getBackend()) !== undefined) {
      const inputs: tf.NamedTensorMap = this.bias === undefined ? { x, weight: this.weight } : { x, weight: this.weight, bias: this.bias };
      return tf.engine().runKernel(DENSE_KERNEL, inputs, { activation: this.activation }) as tf.Tensor;
    }
    if (FUSED.has(this.activation)) {
      return tf.fused.matMul({
        a: x as tf.Tensor2D,
        b: this.weight as unknown as tf.Tensor2D,
        bias: this.bias,
        activation: this.activation as 'linear' | 'relu' | 'sigmoid' | 'elu' | 'relu6' | 'leakyrelu',
      });
    }
    const y = tf.fused.matMul({ a: x as tf.Tensor2D, b: this.weight as unknown as tf.Tensor2D, bias: this.bias });
    return this.activation === 'tanh' ? tf.tanh(y) : y;
  }
}

/** Inverted dropout, active only while the module is in training mode; `rate` may change during training. */
export class Dropout extends Module {
  private _rate: number;

  constructor(rate: number) {
    super();
    this._rate = Dropout.check(rate);
  }

  private static check(rate: number): number {
    if (!(rate >= 0 && rate < 1)) throw new MisconfigurationError(`Dropout rate must be in [0, 1) (received ${rate}).`);
    return rate;
  }

  get rate(): number {
    return this._rate;
  }

  set rate(value: number) {
    this._rate = Dropout.check(value);
  }

  outputShape(inputShape: readonly number[]): number[] {
    return inputShape.slice();
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this._rate === 0) return x;
    return tf.dropout(x, this._rate, undefined, Math.floor(Math.random() * 0xffffffff));
  }
}

/** Anything Sequential can chain: a Flint module with `forward`, a tfjs layer, or a function. */
export type SequentialItem = (Module & { forward(x: tf.Tensor): tf.Tensor }) | { apply(x: tf.Tensor, kwargs?: unknown): unknown } | ((x: tf.Tensor) => tf.Tensor);

/**
 * Chains layers, as `torch.nn.Sequential`: Flint modules, tfjs layers (called with `{ training }`)
 * or plain functions such as `tf.relu`. Parameters are named by position under `layers` (`net.layers.0.weight`, `net.layers.2.bias` for a Sequential held in `net`).
 */
export class Sequential extends Module {
  readonly layers: SequentialItem[];

  constructor(...layers: SequentialItem[]) {
    super();
    this.layers = layers;
  }

  forward(x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const layer of this.layers) {
      if (layer instanceof Module) y = layer.forward(y);
      else if (typeof layer === 'function') y = layer(y);
      else y = layer.apply(y, { training: this.training }) as tf.Tensor;
    }
    return y;
  }

  /**
   * The output shape for an input shape, from each item's `outputShape` (Flint's layers) or
   * `computeOutputShape` (tfjs layers), without running anything: e.g. the width of the `Linear`
   * that follows convolutions and a `Flatten`. Throws, naming the item, where one cannot tell
   * (a plain function) or does not accept the shape.
   */
  outputShape(inputShape: readonly number[]): number[] {
    let shape = inputShape.slice();
    this.layers.forEach((layer, i) => {
      const own = (layer as { outputShape?: unknown }).outputShape;
      if (typeof own === 'function') shape = (own as (s: readonly number[]) => number[]).call(layer, shape);
      else if (isTfLayer(layer)) shape = (layer as unknown as { computeOutputShape(s: number[]): number[] }).computeOutputShape(shape);
      else {
        throw new MisconfigurationError(
          `Sequential.outputShape: item ${i} (${typeof layer === 'function' ? `function ${layer.name || '(anonymous)'}` : layer.constructor.name}) does not tell its output shape; wrap it in a Module with outputShape(inputShape).`,
        );
      }
    });
    return shape;
  }

  /** The shape of a batch of one, when the first item tells it (a Linear, or a tfjs layer with an `inputShape`). */
  inputShape(): number[] | undefined {
    const first = this.layers[0];
    if (first instanceof Linear) return [1, first.weight.shape[0]!];
    if (first instanceof Sequential) return first.inputShape();
    return isTfLayer(first) ? exampleShape(first) : undefined;
  }

  /** Builds the tfjs layers in the chain by running it once on zeros (in eval mode), when the first item tells the input shape. */
  override buildLayers(): string[] {
    const shape = this.inputShape();
    if (shape === undefined || this.unbuiltLayers().length === 0) return super.buildLayers();
    withEvalMode(this, () => tryBuild(() => this.forward(tf.zeros(shape))));
    return this.unbuiltLayers();
  }
}
