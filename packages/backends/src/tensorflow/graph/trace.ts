import * as tf from '@tensorflow/tfjs';
import type { NodeBackend, OpAttr, OutputMetadata, TfBinding } from '../binding.js';
import { DT, encodeGraphDef, type AttrValue, type NodeDef } from './graphdef.js';

/**
 * Tracing a step of TensorFlow ops into one TensorFlow function, and replaying it as one call.
 *
 * `compileStep(fn)` runs `fn` eagerly, with real values, at its first two calls (for each shape of
 * the inputs) while it records every op the native backend runs through its binding (`executeOp`)
 * and every tensor made inside (`createTensor`, which become constants). The inputs become the
 * function's arguments; the tensors `fn` returns become its results. Ops that take a resource
 * (TensorFlow variables: Flint's Adam moments) keep their order through control edges, and ops
 * without outputs (updates) run before any result is returned. When the two recordings are the same
 * graph, the function is registered and every later call is one TensorFlow call. A step that cannot
 * be replayed as recorded stays eager, with the reason: a host read inside the step, a random op, a
 * tensor from outside that is not an input, or tensors made from JavaScript values that change from
 * call to call (a random draw in JavaScript, a value computed in JavaScript).
 */
export class TraceError extends Error {
  override readonly name = 'TraceError';
}

/** A raw TensorFlow handle as an input (a resource variable's handle): its binding id and TF_DataType. */
export interface RawInput {
  readonly id: number;
  readonly dtype: number;
  readonly shape?: readonly number[];
}
export type StepInput = tf.Tensor | RawInput;

/** TensorFlow ops whose result is not a function of their inputs (replaying the recorded graph would not be the same step). */
const RANDOM_OPS = /^(Random|StatelessRandom|TruncatedNormal|Multinomial|ParameterizedTruncatedNormal)/;

interface GraphBinding extends TfBinding {
  registerGraphFunction(name: string, graphDef: Uint8Array, inputs: readonly string[], outputs: readonly string[]): void;
  removeFunction(name: string): void;
}

/** The native backend, when it is active and its binding has Flint's graph functions (built by `setup-native`). */
export function graphBackend(): NodeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as NodeBackend;
  return typeof (b.binding as Partial<GraphBinding>).registerGraphFunction === 'function' ? b : undefined;
}

/** Why steps cannot be compiled here (undefined when they can): the active backend, or a binding built without Flint's graph functions. */
export function compileStepUnavailable(): string | undefined {
  if (tf.getBackend() !== 'tensorflow') return `the '${tf.getBackend()}' backend runs ops one by one; compiled steps need the native backend ('tensorflow', built by setup-native)`;
  if (graphBackend() === undefined) return "the native backend's binding was built without Flint's graph functions (run setup-native again)";
  return undefined;
}

const TFJS_DTYPES: Readonly<Record<string, number>> = { float32: DT.float, int32: DT.int32, bool: DT.bool };

function isTensor(x: StepInput): x is tf.Tensor {
  return x instanceof tf.Tensor;
}

function dtypeOf(x: StepInput): number {
  if (!isTensor(x)) return x.dtype;
  const d = TFJS_DTYPES[x.dtype];
  if (d === undefined) throw new TraceError(`a ${x.dtype} input cannot be traced (float32, int32 and bool can)`);
  return d;
}

function shapeOf(x: StepInput): readonly number[] | undefined {
  return isTensor(x) ? x.shape : x.shape;
}

/** The inputs' dtypes and shapes, e.g. `float32[64,784] resource` (a compiled function is specialised on them). */
export function signatureOf(inputs: readonly StepInput[]): string {
  return inputs.map((x) => (isTensor(x) ? `${x.dtype}[${x.shape.join(',')}]` : x.dtype === DT.resource ? 'resource' : `dtype${x.dtype}[${x.shape?.join(',') ?? '?'}]`)).join(' ');
}

function ids(b: NodeBackend, inputs: readonly StepInput[]): number[] {
  return inputs.map((x) => (isTensor(x) ? b.getInputTensorIds([x])[0]! : x.id));
}

function attrOf(binding: TfBinding, a: OpAttr, op: string): AttrValue {
  const v = a.value;
  switch (a.type) {
    case binding.TF_ATTR_STRING:
      return { kind: 'string', value: String(v) };
    case binding.TF_ATTR_BOOL:
      return { kind: 'bool', value: v as boolean | boolean[] };
    case binding.TF_ATTR_FLOAT:
      return { kind: 'float', value: v as number | number[] };
    case binding.TF_ATTR_TYPE:
      return { kind: 'type', value: v as number | number[] };
    case binding.TF_ATTR_SHAPE:
      return { kind: 'shape', value: v as number[] };
    case (binding as unknown as { TF_ATTR_INT: number }).TF_ATTR_INT:
      return { kind: 'int', value: v as number | number[] };
    default:
      throw new TraceError(`op ${op}: attribute '${a.name}' has a kind (${a.type}) the tracer does not write`);
  }
}

function contentOf(values: Float32Array | Int32Array | Uint8Array, op: string): Uint8Array {
  if (!(values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array)) {
    throw new TraceError(`${op}: a tensor made inside the step from ${Object.prototype.toString.call(values)} cannot become a constant`);
  }
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
}

let counter = 0;

/** How the recording under way notes a failure (undefined when no step is being recorded). */
let recordingFailure: ((message: string) => void) | undefined;

/**
 * Called by the step itself while it is being traced: this call cannot be replayed as recorded
 * (something it does happens outside TensorFlow, e.g. a variable assigned in JavaScript), so its
 * input signature stays eager with `reason`. Does nothing outside a recording.
 */
export function failTrace(reason: string): void {
  recordingFailure?.(reason);
}

interface Recording {
  readonly outputs: tf.Tensor[];
  /** The serialized graph (deterministic: equal bytes mean the same ops, attributes and constants). */
  readonly graph?: Uint8Array;
  readonly numOps: number;
  /** Why this call cannot be replayed as one function (the call itself ran eagerly and is right). */
  readonly failure?: string;
}

/** Runs `fn(inputs)` eagerly, recording it; the step always completes, a failure is only noted. */
function record(b: NodeBackend, inputs: readonly StepInput[], fn: (inputs: readonly StepInput[]) => tf.Tensor[]): Recording {
  const real = b.binding as GraphBinding;
  if ((real as { __flintRecorder?: boolean }).__flintRecorder === true) {
    return { outputs: fn(inputs), numOps: 0, failure: 'another step is being traced (nested compiled steps run eagerly)' };
  }
  const inputIds = ids(b, inputs);
  const refs = new Map<number, string>();
  const dtypes = new Map<number, number>();
  const nodes: NodeDef[] = [];
  let failure: string | undefined;
  const fail = (message: string): void => {
    failure ??= message;
  };
  inputs.forEach((x, i) => {
    const name = `in${i}`;
    let dtype: number = DT.float;
    try {
      dtype = dtypeOf(x);
    } catch (error) {
      fail((error as Error).message);
    }
    const shape = shapeOf(x);
    nodes.push({ name, op: 'Placeholder', inputs: [], attrs: { dtype: { kind: 'type', value: dtype }, ...(shape === undefined ? {} : { shape: { kind: 'shape', value: shape } }) } });
    if (refs.has(inputIds[i]!)) fail(`inputs ${refs.get(inputIds[i]!)!.split(':')[0]!.slice(2)} and ${i} are the same tensor: pass it once`);
    refs.set(inputIds[i]!, `${name}:0`);
    dtypes.set(inputIds[i]!, dtype);
  });
  let lastStateful: string | undefined;
  const effects: string[] = [];

  const recorder = Object.create(real) as GraphBinding;
  Object.defineProperty(recorder, '__flintRecorder', { value: true });
  Object.defineProperty(recorder, 'createTensor', {
    value: (shape: readonly number[], dtype: number, values: Float32Array | Int32Array) => {
      const id = real.createTensor(shape, dtype, values);
      const name = `c${nodes.length}`;
      try {
        nodes.push({ name, op: 'Const', inputs: [], attrs: { dtype: { kind: 'type', value: dtype }, value: { kind: 'tensor', value: { dtype, shape, content: contentOf(values, 'createTensor') } } } });
      } catch (error) {
        fail((error as Error).message);
      }
      refs.set(id, `${name}:0`);
      dtypes.set(id, dtype);
      return id;
    },
  });
  Object.defineProperty(recorder, 'tensorDataSync', {
    value: (id: number) => {
      fail('the step reads a tensor back to JavaScript (dataSync/arraySync/print) while it runs: such a step cannot run as one TensorFlow call');
      return real.tensorDataSync(id);
    },
  });
  Object.defineProperty(recorder, 'executeOp', {
    value: (op: string, attrs: readonly OpAttr[], opInputs: readonly number[], numOutputs: number): OutputMetadata[] => {
      if (RANDOM_OPS.test(op)) fail(`the step runs the random op ${op}: its replay would not draw the same numbers`);
      const name = `n${nodes.length}`;
      const inputRefs = opInputs.map((id) => {
        const ref = refs.get(id);
        if (ref === undefined) fail(`op ${op} uses a tensor made outside the step that is not one of its inputs (binding id ${id}): pass it as an input`);
        return ref ?? '?';
      });
      const stateful = opInputs.some((id) => dtypes.get(id) === DT.resource) || numOutputs === 0;
      const control = stateful && lastStateful !== undefined ? [`^${lastStateful}`] : [];
      const nodeAttrs: Record<string, AttrValue> = {};
      for (const a of attrs) {
        try {
          nodeAttrs[a.name] = attrOf(real, a, op);
        } catch (error) {
          fail((error as Error).message);
        }
      }
      const out = real.executeOp(op, attrs, opInputs, numOutputs);
      nodes.push({ name, op, inputs: [...inputRefs, ...control], attrs: nodeAttrs });
      out.forEach((o, j) => {
        refs.set(o.id, `${name}:${j}`);
        dtypes.set(o.id, o.dtype);
      });
      if (stateful) lastStateful = name;
      if (numOutputs === 0) effects.push(name);
      return out;
    },
  });

  let outputs: tf.Tensor[];
  (b as { binding: TfBinding }).binding = recorder;
  recordingFailure = fail;
  try {
    outputs = fn(inputs);
  } finally {
    (b as { binding: TfBinding }).binding = real;
    recordingFailure = undefined;
  }
  const numOps = nodes.length - inputs.length;
  if (failure !== undefined) return { outputs, numOps, failure };
  const outIds = b.getInputTensorIds(outputs);
  const tail = lastStateful === undefined ? [] : [`^${lastStateful}`, ...effects.filter((e) => e !== lastStateful).map((e) => `^${e}`)];
  for (const [k, id] of outIds.entries()) {
    const ref = refs.get(id);
    if (ref === undefined || ref.startsWith('in')) {
      return { outputs, numOps, failure: `output ${k} of the step is a tensor made outside the step (return only tensors the step computes)` };
    }
    nodes.push({ name: `out${k}`, op: 'Identity', inputs: [ref, ...tail], attrs: { T: { kind: 'type', value: dtypes.get(id)! } } });
  }
  return { outputs, numOps, graph: encodeGraphDef(nodes) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface CompileStepOptions {
  /**
   * Told once per input shape when that shape's step stays eager: `message` names the inputs' shapes
   * and says what to do; `reason` is why, alone.
   */
  readonly onFallback?: (message: string, reason: string) => void;
  /** Input shapes (signatures) compiled at most; further shapes run eagerly. Default 4. */
  readonly maxSignatures?: number;
}

export type StepStatus =
  | { readonly kind: 'tracing'; readonly calls: number }
  | { readonly kind: 'compiled'; readonly name: string; readonly numOps: number }
  | { readonly kind: 'eager'; readonly reason: string };

/** A step that runs as one TensorFlow call once it is traced (see `compileStep`). */
export interface CompiledStep {
  /** One step: `fn(inputs)` eagerly while tracing or when it cannot be compiled, else one TensorFlow call. */
  run(inputs: readonly StepInput[]): tf.Tensor[];
  /** What happens for inputs of this signature (`signatureOf(inputs)`), or undefined before their first call. */
  status(inputs: readonly StepInput[]): StepStatus | undefined;
  /** Removes the registered functions from TensorFlow's context. */
  dispose(): void;
}

type Entry = { kind: 'tracing'; calls: number; graph?: Uint8Array } | { kind: 'compiled'; name: string; numOps: number; numOutputs: number } | { kind: 'eager'; reason: string };

/**
 * Compiles `fn`, a step of TensorFlow ops over `inputs` that returns tensors it computes, into one
 * TensorFlow function per input signature (shapes and dtypes): its first two calls run eagerly and
 * are recorded; if both recordings are the same graph it is registered, and later calls are one
 * TensorFlow call, with the same numbers. Otherwise that signature stays eager (`onFallback` says
 * why). `fn` must use only `inputs` and tensors it makes itself, and must not keep tensors from a
 * call (the outputs are returned to the caller). Tensors it makes from JavaScript values are frozen
 * at tracing (equal in the first two calls is all that is checked): pass anything that may change
 * later, such as a scheduled learning rate, as an input. Needs the native backend built by `setup-native`;
 * on any other backend every call runs eagerly.
 */
export function compileStep(fn: (inputs: readonly StepInput[]) => tf.Tensor[], options: CompileStepOptions = {}): CompiledStep {
  const maxSignatures = options.maxSignatures ?? 4;
  const entries = new Map<string, Entry>();
  let disposed = false;
  const toEager = (sig: string, reason: string, advice = ''): void => {
    entries.set(sig, { kind: 'eager', reason });
    options.onFallback?.(`inputs ${sig}: ${reason}${advice}`, reason);
  };
  return {
    run(inputs) {
      if (disposed) throw new Error('compileStep: this step was disposed');
      const b = graphBackend();
      const sig = signatureOf(inputs);
      let entry = entries.get(sig);
      if (entry === undefined) {
        if (b === undefined) toEager(sig, "the native backend ('tensorflow') with Flint's graph functions is not active (run setup-native to build it)");
        else if (entries.size >= maxSignatures) toEager(sig, `more than ${maxSignatures} input shapes: the others run eagerly`);
        else entries.set(sig, { kind: 'tracing', calls: 0 });
        entry = entries.get(sig)!;
      }
      if (entry.kind === 'eager' || b === undefined) return fn(inputs);
      if (entry.kind === 'compiled') {
        const metas = b.binding.executeOp(entry.name, [], ids(b, inputs), entry.numOutputs);
        return metas.map((m) => b.createOutputTensor(m));
      }
      const rec = record(b, inputs, fn);
      if (rec.failure !== undefined) {
        toEager(sig, rec.failure);
        return rec.outputs;
      }
      entry.calls++;
      if (entry.graph === undefined) {
        entry.graph = rec.graph;
        return rec.outputs;
      }
      if (!sameBytes(entry.graph, rec.graph!)) {
        toEager(
          sig,
          'two calls made different graphs: tensors made from JavaScript values inside the step change from call to call (a random draw in JavaScript such as dropout, or a value computed in JavaScript)',
          ': pass them as inputs',
        );
        return rec.outputs;
      }
      const name = `flint_step_${process.pid}_${++counter}`;
      try {
        (b.binding as GraphBinding).registerGraphFunction(
          name,
          rec.graph!,
          inputs.map((_, i) => `in${i}:0`),
          rec.outputs.map((_, k) => `out${k}:0`),
        );
        entries.set(sig, { kind: 'compiled', name, numOps: rec.numOps, numOutputs: rec.outputs.length });
      } catch (error) {
        toEager(sig, `TensorFlow did not take the traced step as a function: ${(error as Error).message}`);
      }
      return rec.outputs;
    },
    status(inputs) {
      const e = entries.get(signatureOf(inputs));
      if (e === undefined) return undefined;
      return e.kind === 'tracing' ? { kind: 'tracing', calls: e.calls } : e.kind === 'compiled' ? { kind: 'compiled', name: e.name, numOps: e.numOps } : { kind: 'eager', reason: e.reason };
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      const b = graphBackend();
      for (const e of entries.values()) if (e.kind === 'compiled' && b !== undefined) (b.binding as GraphBinding).removeFunction(e.name);
      entries.clear();
    },
  };
}
