import * as tf from '@tensorflow/tfjs';
import { CheckpointError } from './errors.js';

/** A parameter found on a module: its stable dotted name and the variable behind it. */
export interface NamedParameter {
  readonly name: string;
  readonly variable: tf.Variable;
  readonly trainable: boolean;
}

/** One row of `summary()`: a top-level child of the module. */
export interface SummaryRow {
  readonly name: string;
  readonly type: string;
  readonly params: number;
  readonly trainableParams: number;
  readonly mode: 'train' | 'eval' | '-';
}

export interface ModuleSummary {
  readonly rows: readonly SummaryRow[];
  readonly trainableParams: number;
  readonly nonTrainableParams: number;
  readonly totalParams: number;
  /** Estimated size of the parameters in MB (float32). */
  readonly sizeMB: number;
}

/** A tfjs-layers weight (LayerVariable) as seen through duck typing. */
interface LayerWeightLike {
  read(): tf.Variable;
  readonly trainable: boolean;
  readonly originalName?: string;
  readonly name: string;
}

/** A tfjs-layers Layer or LayersModel as seen through duck typing. */
export interface TfLayerLike {
  readonly name: string;
  readonly built: boolean;
  readonly trainableWeights: LayerWeightLike[];
  readonly nonTrainableWeights: LayerWeightLike[];
  getClassName(): string;
  apply(...args: unknown[]): unknown;
  readonly layers?: TfLayerLike[];
}

export function isTfLayer(value: unknown): value is TfLayerLike {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Partial<TfLayerLike>;
  return (
    typeof v.getClassName === 'function' &&
    typeof v.apply === 'function' &&
    Array.isArray(v.trainableWeights) &&
    Array.isArray(v.nonTrainableWeights)
  );
}

function isVariable(value: unknown): value is tf.Variable {
  return value instanceof tf.Variable;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function shortWeightName(weight: LayerWeightLike): string {
  const full = weight.originalName ?? weight.name;
  const slash = full.lastIndexOf('/');
  return slash >= 0 ? full.slice(slash + 1) : full;
}

/** What the walker found at one place in the object graph. */
export type ModuleChild =
  | { readonly kind: 'module'; readonly name: string; readonly value: Module }
  | { readonly kind: 'layer'; readonly name: string; readonly value: TfLayerLike }
  | { readonly kind: 'variable'; readonly name: string; readonly value: tf.Variable };

/**
 * The base of everything that holds parameters, like `torch.nn.Module`: parameters are found
 * without registration among the object's own properties (tf.Variables, tfjs layers and models,
 * nested modules, and arrays or plain objects of those). Names are stable dotted paths built from
 * property names, array indices, the index of a layer within a tfjs model, and the weight's short
 * name (`net.0.kernel`, `fc1.bias`, `encoder.w`).
 */
export class Module {
  /** True while training: dropout is active only then. Toggle with `train()` / `eval()`. */
  training = true;

  /**
   * Property names the walker does not look into (bookkeeping that may hold references to other
   * objects). Subclasses can extend it.
   */
  protected static readonly ignoredProperties: ReadonlySet<string> = new Set(['training', 'trainer', 'hparams']);

  /** Puts this module and every nested module into training mode (or eval mode with `false`). */
  train(mode = true): this {
    this.training = mode;
    for (const child of this.namedModules()) child.value.training = mode;
    return this;
  }

  /** Puts this module and every nested module into evaluation mode. */
  eval(): this {
    return this.train(false);
  }

  /** The module's direct children: nested modules, tfjs layers and variables, in property order. */
  children(): ModuleChild[] {
    const out: ModuleChild[] = [];
    const ignored = (this.constructor as typeof Module).ignoredProperties;
    const visit = (value: unknown, name: string, depth: number): void => {
      if (value === this || depth > 8) return;
      if (value instanceof Module) out.push({ kind: 'module', name, value });
      else if (isVariable(value)) out.push({ kind: 'variable', name, value });
      else if (isTfLayer(value)) out.push({ kind: 'layer', name, value });
      else if (Array.isArray(value)) value.forEach((item, i) => visit(item, `${name}.${i}`, depth + 1));
      else if (isPlainObject(value)) {
        for (const [k, v] of Object.entries(value)) visit(v, `${name}.${k}`, depth + 1);
      }
    };
    for (const [key, value] of Object.entries(this)) {
      if (key.startsWith('_') || ignored.has(key)) continue;
      visit(value, key, 0);
    }
    return out;
  }

  /** Every nested Module (not this one), depth first, with dotted names. */
  namedModules(prefix = ''): Array<{ name: string; value: Module }> {
    const out: Array<{ name: string; value: Module }> = [];
    for (const child of this.children()) {
      if (child.kind !== 'module') continue;
      const name = prefix + child.name;
      out.push({ name, value: child.value });
      out.push(...child.value.namedModules(`${name}.`));
    }
    return out;
  }

  /** Every tfjs layer held by this module or nested modules, with dotted names (models' inner layers included). */
  namedLayers(prefix = ''): Array<{ name: string; value: TfLayerLike }> {
    const out: Array<{ name: string; value: TfLayerLike }> = [];
    const visitLayer = (layer: TfLayerLike, name: string): void => {
      out.push({ name, value: layer });
      if (Array.isArray(layer.layers)) layer.layers.forEach((inner, i) => visitLayer(inner, `${name}.${i}`));
    };
    for (const child of this.children()) {
      const name = prefix + child.name;
      if (child.kind === 'layer') visitLayer(child.value, name);
      else if (child.kind === 'module') out.push(...child.value.namedLayers(`${name}.`));
    }
    return out;
  }

  /**
   * Every parameter with its stable dotted name, trainable and not, each variable once (the first
   * name wins when a variable is shared).
   */
  namedParameters(options: { trainableOnly?: boolean } = {}): NamedParameter[] {
    const out: NamedParameter[] = [];
    const seen = new Set<tf.Variable>();
    const add = (name: string, variable: tf.Variable, trainable: boolean): void => {
      if (seen.has(variable)) return;
      seen.add(variable);
      if (options.trainableOnly === true && !trainable) return;
      out.push({ name, variable, trainable });
    };
    const visitLayer = (layer: TfLayerLike, name: string): void => {
      if (Array.isArray(layer.layers) && layer.layers.length > 0) {
        layer.layers.forEach((inner, i) => visitLayer(inner, `${name}.${i}`));
        return;
      }
      for (const w of layer.trainableWeights) add(`${name}.${shortWeightName(w)}`, w.read(), true);
      for (const w of layer.nonTrainableWeights) add(`${name}.${shortWeightName(w)}`, w.read(), false);
    };
    for (const child of this.children()) {
      if (child.kind === 'variable') add(child.name, child.value, child.value.trainable);
      else if (child.kind === 'layer') visitLayer(child.value, child.name);
      else {
        for (const p of child.value.namedParameters()) add(`${child.name}.${p.name}`, p.variable, p.trainable);
      }
    }
    return out;
  }

  /** The trainable variables, in `namedParameters()` order. */
  parameters(): tf.Variable[] {
    return this.namedParameters({ trainableOnly: true }).map((p) => p.variable);
  }

  /**
   * Names of tfjs layers that have no weights yet (they get them on their first call). Builtness is
   * judged on the layers that hold weights: a tfjs model counts as built when all its layers are,
   * whatever its own `built` flag says (`tf.sequential` whose first layer has an `inputShape` holds
   * every weight but reports `built: false` until its first call).
   */
  unbuiltLayers(): string[] {
    return this.namedLayers()
      .filter((l) => !(Array.isArray(l.value.layers) && l.value.layers.length > 0) && !l.value.built)
      .map((l) => l.name);
  }

  /**
   * Builds the tfjs layers whose input shape is known without data: a layer given an `inputShape`
   * (or `batchInputShape`) is called once on zeros of that shape (batch 1). Subclasses that know
   * more override it (`Sequential` runs its chain from its first item's input shape). Runs in eval
   * mode, so that no layer state (batch-norm statistics) changes; a call that fails leaves the layer
   * unbuilt. Returns `unbuiltLayers()` after.
   */
  buildLayers(): string[] {
    if (this.unbuiltLayers().length === 0) return [];
    withEvalMode(this, () => {
      for (const child of this.children()) {
        if (child.kind === 'module') child.value.buildLayers();
        else if (child.kind === 'layer' && !child.value.built) {
          const shape = exampleShape(child.value);
          if (shape !== undefined) tryBuild(() => child.value.apply(tf.zeros(shape), { training: false }));
        }
      }
    });
    return this.unbuiltLayers();
  }

  /** The weights as host copies, by parameter name (trainable and not). */
  stateDict(): Record<string, { shape: number[]; dtype: tf.DataType; data: Float32Array | Int32Array | Uint8Array }> {
    const out: Record<string, { shape: number[]; dtype: tf.DataType; data: Float32Array | Int32Array | Uint8Array }> = {};
    for (const p of this.namedParameters()) {
      out[p.name] = {
        shape: p.variable.shape.slice(),
        dtype: p.variable.dtype,
        data: p.variable.dataSync() as Float32Array | Int32Array | Uint8Array,
      };
    }
    return out;
  }

  /**
   * Loads weights by parameter name. All names and shapes are checked before any variable is
   * assigned, so a mismatch never leaves the module half-loaded.
   */
  loadStateDict(
    state: Readonly<Record<string, { shape: readonly number[]; data: ArrayLike<number> } | tf.Tensor>>,
    options: { strict?: boolean } = {},
  ): void {
    const strict = options.strict ?? true;
    const params = this.namedParameters();
    const byName = new Map(params.map((p) => [p.name, p]));
    const missing = params.filter((p) => !(p.name in state)).map((p) => p.name);
    const unexpected = Object.keys(state).filter((k) => !byName.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      throw new CheckpointError(
        `loadStateDict: the weights do not fit this module.` +
          (missing.length > 0 ? ` Missing parameters: ${missing.join(', ')}.` : '') +
          (unexpected.length > 0 ? ` Unexpected parameters: ${unexpected.join(', ')}.` : '') +
          ` The module has: ${params.map((p) => p.name).join(', ') || '(no parameters; are its layers built?)'}.`,
      );
    }
    const assignments: Array<[tf.Variable, tf.Tensor | { shape: readonly number[]; data: ArrayLike<number> }]> = [];
    for (const [name, value] of Object.entries(state)) {
      const p = byName.get(name);
      if (p === undefined) continue;
      const shape = value instanceof tf.Tensor ? value.shape : value.shape;
      if (shape.length !== p.variable.shape.length || shape.some((d, i) => d !== p.variable.shape[i])) {
        throw new CheckpointError(
          `loadStateDict: parameter '${name}' has shape [${shape.join(', ')}] in the weights but [${p.variable.shape.join(', ')}] in the module.`,
        );
      }
      if (!(value instanceof tf.Tensor)) {
        const size = shape.reduce((a, b) => a * b, 1);
        if (value.data.length !== size) {
          throw new CheckpointError(
            `loadStateDict: parameter '${name}' has ${value.data.length} values for shape [${shape.join(', ')}] (expected ${size}).`,
          );
        }
      }
      assignments.push([p.variable, value]);
    }
    for (const [variable, value] of assignments) {
      tf.tidy(() => {
        const t = value instanceof tf.Tensor ? value : tf.tensor(Array.from(value.data), value.shape as number[], variable.dtype);
        variable.assign(t.dtype === variable.dtype ? t : t.cast(variable.dtype));
      });
    }
  }

  /** Lightning-style summary of the top-level children with parameter counts. */
  summaryData(): ModuleSummary {
    const rows: SummaryRow[] = [];
    const count = (vars: Array<{ variable: tf.Variable; trainable: boolean }>) => ({
      params: vars.reduce((a, v) => a + v.variable.size, 0),
      trainableParams: vars.filter((v) => v.trainable).reduce((a, v) => a + v.variable.size, 0),
    });
    const all = this.namedParameters();
    for (const child of this.children()) {
      const prefix = `${child.name}.`;
      const own = all.filter((p) => p.name === child.name || p.name.startsWith(prefix));
      const type =
        child.kind === 'module'
          ? child.value.constructor.name
          : child.kind === 'layer'
            ? child.value.getClassName()
            : `Variable[${child.value.shape.join('x')}]`;
      const mode = child.kind === 'module' ? (child.value.training ? 'train' : 'eval') : child.kind === 'layer' ? (this.training ? 'train' : 'eval') : '-';
      rows.push({ name: child.name, type, mode, ...count(own) });
    }
    const totals = count(all);
    return {
      rows,
      trainableParams: totals.trainableParams,
      nonTrainableParams: totals.params - totals.trainableParams,
      totalParams: totals.params,
      sizeMB: (totals.params * 4) / 1e6,
    };
  }

  /** A printable table of the layers and parameter counts (trainable and not), as Lightning's ModelSummary. */
  summary(): string {
    const s = this.summaryData();
    const header = ['', 'Name', 'Type', 'Params', 'Mode'];
    const body = s.rows.map((r, i) => [String(i), r.name, r.type, formatCount(r.params), r.mode]);
    const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
    const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ');
    const rule = '-'.repeat(line(header).length);
    return [
      line(header),
      rule,
      ...body.map(line),
      rule,
      `${formatCount(s.trainableParams).padEnd(9)}Trainable params`,
      `${formatCount(s.nonTrainableParams).padEnd(9)}Non-trainable params`,
      `${formatCount(s.totalParams).padEnd(9)}Total params`,
      `${s.sizeMB.toFixed(3).padEnd(9)}Total estimated model params size (MB)`,
    ].join('\n');
  }
}

/**
 * The shape of a batch of one for a tfjs layer created with `inputShape` / `batchInputShape`
 * (unknown dimensions become 1), or undefined when the layer does not know its input shape.
 */
export function exampleShape(layer: TfLayerLike): number[] | undefined {
  const batchInputShape = (layer as { batchInputShape?: ReadonlyArray<number | null> }).batchInputShape;
  if (!Array.isArray(batchInputShape) || batchInputShape.length === 0) return undefined;
  return batchInputShape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
}

/**
 * Runs a call that builds layers on zeros inside `tf.tidy`. Building without data is a best effort:
 * a layer the zeros do not fit stays unbuilt, and whoever asked for it reports the unbuilt layers.
 */
export function tryBuild(call: () => unknown): void {
  try {
    tf.tidy(() => void call());
  } catch {
    // left unbuilt: see unbuiltLayers()
  }
}

/** Runs `fn` with `module` and every nested module in eval mode, then restores each one's mode. */
export function withEvalMode<T>(module: Module, fn: () => T): T {
  const modes = [module, ...module.namedModules().map((m) => m.value)].map((m) => [m, m.training] as const);
  for (const [m] of modes) m.training = false;
  try {
    return fn();
  } finally {
    for (const [m, training] of modes) m.training = training;
  }
}

function formatCount(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} K`;
  return `${(n / 1e6).toFixed(1)} M`;
}
