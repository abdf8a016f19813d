import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { ExportError } from './errors.js';
import { fileHandler, MODEL_JSON, WEIGHTS_BIN } from './file-io.js';
import { isTfLayer, Module, withEvalMode, type TfLayerLike } from './module.js';
import { Dropout, Linear, Sequential, type Activation } from './nn.js';
import { parseOptions } from './options.js';

/** One parameter of a PyTorch module in the `state_dict`, and the Flint variable it comes from. */
export interface TorchParam {
  /** The name inside the PyTorch module: `weight`, `bias`. */
  readonly name: string;
  readonly variable: tf.Variable;
  /** True for a 2-D weight stored transposed: tfjs's `[in, out]` is PyTorch's `[out, in]`. */
  readonly transpose: boolean;
}

/** A PyTorch module of the equivalent `nn.Sequential`, as Python source (`nn.Linear(784, 256)`), with its parameters. */
export interface TorchModule {
  readonly code: string;
  readonly params: readonly TorchParam[];
}

/** What one item of a chain becomes. */
export interface LayerExport {
  /** Fresh tfjs-layers layers that compute what the item computes, with copies of its weights (`weights` in their args). */
  readonly layers: tf.layers.Layer[];
  /** The PyTorch modules of the equivalent `nn.Sequential`, or why there are none. */
  readonly torch: readonly TorchModule[] | { readonly unsupported: string };
}

/** Hands out the layer names and, to the very first layer, the model's input shape. */
export interface LayerExportContext {
  /** The item's dotted path in the module (`net.layers.0`). */
  readonly path: string;
  /** Args every new layer takes: a unique name (from the path, with `suffix` when the item makes several) and the input shape on the model's first layer. */
  layerArgs(suffix?: string): { name: string; inputShape?: number[] };
}

/**
 * Turns one kind of layer into tfjs layers (and PyTorch modules). Flint registers exporters for
 * `Linear`, `Dropout`, the activation functions (`tf.relu`, ...), tfjs `Dense` layers and, for the
 * PyTorch side only where a mapping is known, any other tfjs layer (cloned from its config). A new
 * layer type joins with `registerLayerExporter`; the exporter registered last wins.
 */
export interface LayerExporter {
  /** Shown in errors: `Linear`. */
  readonly name: string;
  matches(item: unknown): boolean;
  export(item: unknown, context: LayerExportContext): LayerExport;
}

const exporters: LayerExporter[] = [];

export function registerLayerExporter(exporter: LayerExporter): void {
  exporters.push(exporter);
}

function exporterFor(item: unknown): LayerExporter | undefined {
  for (let i = exporters.length - 1; i >= 0; i--) if (exporters[i]!.matches(item)) return exporters[i];
  return undefined;
}

/** tfjs activation names and PyTorch modules of the activations Flint knows. */
const ACTIVATIONS: Record<string, { torch: string }> = {
  relu: { torch: 'nn.ReLU()' },
  sigmoid: { torch: 'nn.Sigmoid()' },
  tanh: { torch: 'nn.Tanh()' },
  elu: { torch: 'nn.ELU()' },
  relu6: { torch: 'nn.ReLU6()' },
  selu: { torch: 'nn.SELU()' },
  softplus: { torch: 'nn.Softplus()' },
  softmax: { torch: 'nn.Softmax(dim=-1)' },
};

/** The tfjs ops that a Sequential may hold as plain functions, by activation name. */
const FUNCTIONS = new Map<unknown, string>([
  [tf.relu, 'relu'],
  [tf.sigmoid, 'sigmoid'],
  [tf.tanh, 'tanh'],
  [tf.elu, 'elu'],
  [tf.relu6, 'relu6'],
  [tf.selu, 'selu'],
  [tf.softplus, 'softplus'],
  [tf.softmax, 'softmax'],
]);

/** An activation as tfjs layers and PyTorch modules (none for 'linear'). */
function activationExport(activation: string, context: LayerExportContext, suffix?: string): { layers: tf.layers.Layer[]; torch: TorchModule[] } {
  if (activation === 'linear') return { layers: [], torch: [] };
  if (activation === 'leakyrelu') {
    return { layers: [tf.layers.leakyReLU({ ...context.layerArgs(suffix), alpha: 0.2 })], torch: [{ code: 'nn.LeakyReLU(0.2)', params: [] }] };
  }
  const known = ACTIVATIONS[activation];
  if (known === undefined) throw new ExportError(`${context.path}: the activation '${activation}' has no layer export (known: linear, leakyrelu, ${Object.keys(ACTIVATIONS).join(', ')}).`);
  return {
    layers: [tf.layers.activation({ ...context.layerArgs(suffix), activation: activation as 'relu' })],
    torch: [{ code: known.torch, params: [] }],
  };
}

registerLayerExporter({
  name: 'tfjs layer',
  matches: (item) => isTfLayer(item),
  export(item, context) {
    const layer = item as tf.layers.Layer;
    const config: Record<string, unknown> = { ...layer.getConfig() };
    delete config.batchInputShape;
    delete config.inputShape;
    const make = layer.constructor as new (args: unknown) => tf.layers.Layer;
    const fresh = new make({ ...config, ...context.layerArgs(), weights: layer.getWeights() });
    return { layers: [fresh], torch: { unsupported: `tfjs ${layer.getClassName()} layers have no PyTorch mapping in Flint (Dense does)` } };
  },
});

registerLayerExporter({
  name: 'tfjs Dense',
  matches: (item) => isTfLayer(item) && item.getClassName() === 'Dense',
  export(item, context) {
    const layer = item as tf.layers.Layer;
    const config = layer.getConfig() as { units: number; useBias: boolean; activation: string };
    const [kernel, bias] = (layer as unknown as TfLayerLike).trainableWeights.map((w) => w.read());
    const args = context.layerArgs();
    const fresh = tf.layers.dense({ ...args, units: config.units, useBias: config.useBias, activation: config.activation as 'relu', weights: layer.getWeights() });
    const act = config.activation === 'linear' ? [] : ACTIVATIONS[config.activation];
    const params: TorchParam[] = [{ name: 'weight', variable: kernel!, transpose: true }];
    if (bias !== undefined) params.push({ name: 'bias', variable: bias, transpose: false });
    const linear: TorchModule = { code: `nn.Linear(${kernel!.shape[0]}, ${kernel!.shape[1]}${bias === undefined ? ', bias=False' : ''})`, params };
    return {
      layers: [fresh],
      torch: act === undefined ? { unsupported: `the Dense activation '${config.activation}' has no PyTorch mapping` } : Array.isArray(act) ? [linear] : [linear, { code: act.torch, params: [] }],
    };
  },
});

registerLayerExporter({
  name: 'Linear',
  matches: (item) => item instanceof Linear,
  export(item, context) {
    const linear = item as Linear;
    const [inFeatures, outFeatures] = linear.weight.shape as [number, number];
    const fused = linear.activation !== 'leakyrelu' && linear.activation !== 'linear';
    const dense = tf.layers.dense({
      ...context.layerArgs(),
      units: outFeatures,
      useBias: linear.bias !== undefined,
      activation: fused ? (linear.activation as 'relu') : 'linear',
      weights: linear.bias === undefined ? [linear.weight] : [linear.weight, linear.bias],
    });
    const params: TorchParam[] = [{ name: 'weight', variable: linear.weight, transpose: true }];
    if (linear.bias !== undefined) params.push({ name: 'bias', variable: linear.bias, transpose: false });
    const act = activationExport(linear.activation, context, linear.activation);
    return {
      layers: fused ? [dense] : [dense, ...act.layers],
      torch: [{ code: `nn.Linear(${inFeatures}, ${outFeatures}${linear.bias === undefined ? ', bias=False' : ''})`, params }, ...act.torch],
    };
  },
});

registerLayerExporter({
  name: 'Dropout',
  matches: (item) => item instanceof Dropout,
  export(item, context) {
    const rate = (item as Dropout).rate;
    return { layers: [tf.layers.dropout({ ...context.layerArgs(), rate })], torch: [{ code: `nn.Dropout(${rate})`, params: [] }] };
  },
});

registerLayerExporter({
  name: 'activation function',
  matches: (item) => FUNCTIONS.has(item),
  export: (item, context) => activationExport(FUNCTIONS.get(item)!, context),
});

export const exportOptionsSchema = z.strictObject({
  /** The shape of one example (without the batch dimension), when the module does not tell it: `[784]`. */
  inputShape: z.array(z.number().int().positive()).min(1).optional(),
});
export type ExportOptions = z.input<typeof exportOptionsSchema>;

/** A module, or a tfjs layer or model, to export. */
export type Exportable = Module | TfLayerLike;

interface Item {
  readonly path: string;
  readonly value: unknown;
}

interface Plan {
  readonly rootName: string;
  readonly items: Item[];
  readonly inputShape: number[];
  readonly forward: (x: tf.Tensor) => tf.Tensor;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `a function${value.name === '' ? '' : ` (${value.name})`}`;
  if (isTfLayer(value)) return `a tfjs ${value.getClassName()} layer`;
  if (value instanceof Module) return `a ${value.constructor.name}`;
  return typeof value;
}

function flatten(value: unknown, at: string, out: Item[]): void {
  const join = (name: string) => (at === '' ? name : `${at}.${name}`);
  if (value instanceof Sequential) value.layers.forEach((item, i) => flatten(item, join(`layers.${i}`), out));
  else if (isTfLayer(value) && value.getClassName() === 'Sequential' && Array.isArray(value.layers)) {
    value.layers.forEach((layer, i) => {
      if (layer.getClassName() !== 'InputLayer') flatten(layer, join(String(i)), out);
    });
  } else out.push({ path: at === '' ? 'root' : at, value });
}

function moduleName(module: Exportable): string {
  return isTfLayer(module) ? `tfjs ${module.getClassName()} '${module.name}'` : module.constructor.name;
}

/** Finds the chain that computes the module's forward, or says why there is none. */
function plan(module: Exportable, options: ExportOptions): Plan {
  const { inputShape: given } = parseOptions('exportModule', exportOptionsSchema, options);
  const name = moduleName(module);
  const cannot = (why: string) =>
    new ExportError(
      `Cannot export ${name}: its forward cannot be traced into TensorFlow.js layers: ${why}. Flint exports a chain: a Sequential of Linear, Dropout, activation functions and tfjs layers, a tfjs Sequential model, or a module whose forward is one such chain held in one property.`,
    );
  let root: unknown = module;
  let rootName = '';
  if (!(module instanceof Sequential) && !isTfLayer(module) && exporterFor(module) === undefined) {
    const holders = (module as Module).children().filter((c) => c.kind !== 'module' || c.value.namedParameters().length > 0);
    if (holders.length !== 1) {
      throw cannot(holders.length === 0 ? 'it holds no layers or parameters' : `its parameters are spread over ${holders.map((h) => `'${h.name}'`).join(', ')}`);
    }
    const only = holders[0]!;
    if (only.kind === 'variable') throw cannot(`it holds the tf.Variable '${only.name}' [${only.value.shape.join(', ')}] itself, not in a layer`);
    root = only.value;
    rootName = only.name;
  }
  const items: Item[] = [];
  flatten(root, rootName, items);
  for (const item of items) {
    if (exporterFor(item.value) === undefined) {
      throw cannot(`${item.path} is ${describe(item.value)}, which no layer exporter takes (registered: ${[...new Set(exporters.map((e) => e.name))].join(', ')})`);
    }
  }
  const inputShape = given ?? inferInputShape(module, items);
  if (inputShape === undefined) {
    throw new ExportError(`Cannot export ${name}: the input shape is unknown (its first layer ${items[0]?.path ?? ''} does not tell it); pass { inputShape: [...] }, the shape of one example without the batch dimension.`);
  }
  const forward = (x: tf.Tensor): tf.Tensor => {
    if (isTfLayer(module)) return module.apply(x, { training: false }) as tf.Tensor;
    const f = (module as Module & { forward?: (x: tf.Tensor) => unknown }).forward;
    if (typeof f !== 'function') throw cannot(`${name} has no forward`);
    const y = f.call(module, x);
    if (!(y instanceof tf.Tensor)) throw cannot(`forward returned ${Array.isArray(y) ? 'a list of tensors' : typeof y}, not one tensor`);
    return y;
  };
  return { rootName, items, inputShape, forward };
}

function inferInputShape(module: Exportable, items: Item[]): number[] | undefined {
  const first = items[0]?.value;
  if (first instanceof Linear) return [first.weight.shape[0]!];
  if (isTfLayer(first)) {
    const batch = (first as { batchInputShape?: Array<number | null> }).batchInputShape;
    if (Array.isArray(batch) && batch.length > 1 && batch.slice(1).every((d) => typeof d === 'number')) return batch.slice(1) as number[];
  }
  const example = (module as { exampleInputArray?: unknown }).exampleInputArray;
  if (example instanceof tf.Tensor && example.rank > 1) return example.shape.slice(1);
  return undefined;
}

function makeContext(pathName: string, names: Set<string>, state: { first: boolean; inputShape: number[] }): LayerExportContext {
  return {
    path: pathName,
    layerArgs(suffix?: string) {
      let name = `${pathName}${suffix === undefined ? '' : `_${suffix}`}`.replace(/[^A-Za-z0-9_]/g, '_');
      for (let i = 1; names.has(name); i++) name = `${name}_${i}`;
      names.add(name);
      if (!state.first) return { name };
      state.first = false;
      return { name, inputShape: state.inputShape };
    },
  };
}

/**
 * The module as a tfjs `Sequential` LayersModel with copies of its weights (dispose it when done).
 * The model's output is checked against `module.forward` (in eval mode) on a random batch: a module
 * whose forward computes anything but its chain of layers is an `ExportError`, not a wrong model.
 */
export function toLayersModel(module: Exportable, options: ExportOptions = {}): tf.Sequential {
  const p = plan(module, options);
  const names = new Set<string>();
  const state = { first: true, inputShape: p.inputShape };
  const model = tf.sequential({ name: p.rootName === '' ? 'flint' : p.rootName.replace(/[^A-Za-z0-9_]/g, '_') });
  try {
    for (const item of p.items) {
      const exported = exporterFor(item.value)!.export(item.value, makeContext(item.path, names, state));
      for (const layer of exported.layers) model.add(layer);
    }
    if (model.layers.length === 0) model.add(tf.layers.activation({ activation: 'linear', inputShape: p.inputShape }));
    checkSameOutput(module, p, model);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

function checkSameOutput(module: Exportable, p: Plan, model: tf.Sequential): void {
  const run = () =>
    tf.tidy(() => {
      const x = tf.randomUniform([3, ...p.inputShape], -1, 1, 'float32', 1234);
      const expected = p.forward(x);
      const actual = model.predict(x) as tf.Tensor;
      if (expected.shape.join() !== actual.shape.join()) return { shapes: [expected.shape, actual.shape], diff: Infinity, scale: 1 };
      return { shapes: undefined, diff: tf.max(tf.abs(tf.sub(expected, actual))).dataSync()[0]!, scale: Math.max(1, tf.max(tf.abs(expected)).dataSync()[0]!) };
    });
  const result = module instanceof Module ? withEvalMode(module, run) : run();
  if (result.diff <= 1e-4 * result.scale) return;
  const what = p.rootName === '' ? 'its layers' : `its property '${p.rootName}'`;
  const detail =
    result.shapes !== undefined
      ? `forward gives shape [${result.shapes[0]!.join(', ')}] and ${what} [${result.shapes[1]!.join(', ')}]`
      : `forward differs from ${what} by up to ${result.diff.toPrecision(3)} on a random input of shape [3, ${p.inputShape.join(', ')}]`;
  throw new ExportError(
    `Cannot export ${moduleName(module)}: its forward cannot be traced into TensorFlow.js layers: ${detail}, so forward computes more than the chain ${p.items.map((i) => i.path).join(', ')}. Export the part that is a chain (exportModule(module.${p.rootName === '' ? 'net' : p.rootName}, ...)) and do the rest after loading.`,
  );
}

/** What `exportModule` wrote. */
export interface ExportResult {
  readonly dir: string;
  readonly modelJson: string;
  readonly weightsBin: string;
  /** The tfjs layers of the exported model, as `Dense(784 -> 256, relu)` lines. */
  readonly layers: string[];
  readonly inputShape: number[];
}

/**
 * Writes the module as a TensorFlow.js Layers model, `<dir>/model.json` + `<dir>/weights.bin`, that
 * `tf.loadLayersModel('file://<dir>/model.json')` (Node) or `tf.loadLayersModel('/<url>/model.json')`
 * (a browser) loads. The module may be Flint's layers (Sequential, Linear, Dropout, activations),
 * tfjs layers or models, or both mixed, or a LightningModule whose forward is one of those held in
 * one property. Atomic: the folder appears whole or not at all. Errors are `ExportError`s.
 */
export async function exportModule(module: Exportable, dir: string, options: ExportOptions = {}): Promise<ExportResult> {
  const model = toLayersModel(module, options);
  const target = path.resolve(dir);
  try {
    await model.save(fileHandler(target));
    return {
      dir: target,
      modelJson: path.join(target, MODEL_JSON),
      weightsBin: path.join(target, WEIGHTS_BIN),
      layers: model.layers.map(describeLayer),
      inputShape: (model.inputs[0]!.shape.slice(1) as number[]),
    };
  } finally {
    model.dispose();
  }
}

function describeLayer(layer: tf.layers.Layer): string {
  const config = layer.getConfig() as { units?: number; activation?: string; rate?: number };
  const cls = layer.getClassName();
  if (cls === 'Dense') return `Dense(${(layer.getWeights()[0]?.shape[0] ?? '?') as number} -> ${config.units}, ${config.activation})`;
  if (cls === 'Dropout') return `Dropout(${config.rate})`;
  if (cls === 'Activation') return `Activation(${config.activation})`;
  return cls;
}

/** The PyTorch `nn.Sequential` equivalent to the module, and its state-dict entries by name. */
export interface TorchPlan {
  /** Python source of the equivalent module: `nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))`. */
  readonly code: string;
  /** State-dict entries in order: `0.weight` with the Flint parameter (and layer path) behind it. */
  readonly entries: ReadonlyArray<{ readonly name: string; readonly param: TorchParam; readonly layer: string; readonly module: string }>;
}

/**
 * The module as the PyTorch `nn.Sequential` of the same architecture: Flint's `Linear(in, out, {
 * activation })` becomes `nn.Linear(in, out)` followed by the activation's module (so indices count
 * those too), a tfjs Dense the same; Dropout becomes `nn.Dropout`. The forward is checked as for
 * `toLayersModel`.
 */
export function torchPlan(module: Exportable, options: ExportOptions = {}): TorchPlan {
  toLayersModel(module, options).dispose(); // the trace check
  const p = plan(module, options);
  const names = new Set<string>();
  const state = { first: true, inputShape: p.inputShape };
  const modules: Array<{ module: TorchModule; layer: string }> = [];
  for (const item of p.items) {
    const exported = exporterFor(item.value)!.export(item.value, makeContext(item.path, names, state));
    if (!Array.isArray(exported.torch)) {
      throw new ExportError(`Cannot export ${moduleName(module)} as a PyTorch state_dict: ${item.path} (${describe(item.value)}): ${(exported.torch as { unsupported: string }).unsupported}.`);
    }
    for (const m of exported.torch as TorchModule[]) modules.push({ module: m, layer: item.path });
  }
  const entries = modules.flatMap(({ module: m, layer }, i) => m.params.map((param) => ({ name: `${i}.${param.name}`, param, layer, module: m.code })));
  return { code: `nn.Sequential(${modules.map((m) => m.module.code).join(', ')})`, entries };
}
