import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic-write.js';
import { ExportError } from './errors.js';
import { torchPlan, type Exportable, type ExportOptions, type TorchPlan } from './export.js';
import { FLINT_VERSION } from './version.js';

/** One tensor of a safetensors file. */
export interface SafetensorsEntry {
  readonly dtype: string;
  readonly shape: number[];
  readonly data: Uint8Array;
}

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** What `exportSafetensors` wrote. */
export interface SafetensorsResult {
  readonly file: string;
  /** Python source of the PyTorch module whose `load_state_dict` takes the file: `nn.Sequential(nn.Linear(784, 10))`. */
  readonly torch: string;
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly shape: number[]; readonly layer: string }>;
}

function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** Encodes tensors (float32 values, little-endian) and string metadata as a safetensors file. */
export function encodeSafetensors(tensors: ReadonlyArray<{ name: string; shape: number[]; values: Float32Array }>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.values.byteLength] };
    offset += t.values.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // the data starts 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const t of tensors) {
    const bytes = new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength);
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

/** Decodes a safetensors file's bytes; `file` names it in errors (`ExportError`) about a damaged header or data. */
export function decodeSafetensors(bytes: Uint8Array, file: string): { tensors: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
  const bad = (why: string) => new ExportError(`${file} is not a valid safetensors file: ${why}.`);
  if (bytes.byteLength < 8) throw bad(`it holds ${bytes.byteLength} bytes, fewer than the 8 of the header length`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) throw bad(`the header length says ${headerLength} bytes but the file holds ${bytes.byteLength}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw bad(`its header is not JSON (${(error as Error).message})`);
  }
  const data = bytes.subarray(8 + headerLength);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const offsets = e.data_offsets as [number, number];
    if (typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(offsets) || offsets.length !== 2) throw bad(`tensor '${name}' lacks dtype, shape or data_offsets`);
    const shape = e.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[e.dtype] ?? Number.NaN);
    if (!(offsets[1] - offsets[0] === size) || offsets[0] < 0 || offsets[1] > data.byteLength) {
      throw bad(`tensor '${name}' ${e.dtype}[${shape.join(', ')}] needs ${size} bytes but its data_offsets [${offsets.join(', ')}] give ${offsets[1] - offsets[0]} of ${data.byteLength}`);
    }
    tensors.set(name, { dtype: e.dtype, shape, data: data.subarray(offsets[0], offsets[1]) });
  }
  return { tensors, metadata: (header.__metadata__ ?? {}) as Record<string, string> };
}

/**
 * Writes the module's weights as a safetensors file whose names and shapes are the `state_dict` of
 * the PyTorch `nn.Sequential` of the same architecture (`result.torch`, also in the file's metadata as
 * `flint.torch`): entry `i.weight` / `i.bias` of the i-th module of that Sequential, where an
 * activation fused into a Linear counts as a module of its own. Linear (and tfjs Dense) weights are
 * transposed: Flint and tfjs store `[in, out]`, PyTorch's `nn.Linear.weight` is `[out, in]`. Atomic.
 */
export async function exportSafetensors(module: Exportable, file: string, options: ExportOptions = {}): Promise<SafetensorsResult> {
  const plan = torchPlan(module, options);
  const tensors = plan.entries.map(({ name, param }) => {
    const values = param.variable.dataSync() as Float32Array;
    const shape = param.variable.shape;
    if (param.transpose && shape.length === 2) return { name, shape: [shape[1]!, shape[0]!], values: transpose2d(values, shape[0]!, shape[1]!) };
    return { name, shape: [...shape], values: Float32Array.from(values) };
  });
  const target = path.resolve(file);
  try {
    await writeFileAtomic(target, encodeSafetensors(tensors, { format: 'pt', 'flint.torch': plan.code, 'flint.version': FLINT_VERSION }));
  } catch (error) {
    throw new ExportError(`Cannot write ${target} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); nothing was written there.`, { cause: error });
  }
  return { file: target, torch: plan.code, tensors: tensors.map((t, i) => ({ name: t.name, shape: t.shape, layer: plan.entries[i]!.layer })) };
}

function toFloat32(entry: SafetensorsEntry): Float32Array {
  const bytes = new Uint8Array(entry.data); // an aligned copy (a Buffer's slice would be a view)
  if (entry.dtype === 'F32') return new Float32Array(bytes.buffer);
  return Float32Array.from(new Float64Array(bytes.buffer));
}

/**
 * Loads a safetensors `state_dict` (as `exportSafetensors` or PyTorch's `safetensors.torch.save_file`
 * writes for the equivalent `nn.Sequential`) into the module's weights, transposing Linear weights
 * back. Everything is checked before anything is assigned: a missing or extra tensor, a shape that does
 * not fit, or a dtype other than F32/F64 is an `ExportError` naming the file, the tensor, the layer
 * and both shapes; then the module's weights are unchanged.
 */
export async function importSafetensors(module: Exportable, file: string, options: ExportOptions = {}): Promise<void> {
  const source = path.resolve(file);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(source);
  } catch (error) {
    throw new ExportError(`Cannot read the safetensors file ${source} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`, { cause: error });
  }
  const { tensors } = decodeSafetensors(bytes, source);
  const plan: TorchPlan = torchPlan(module, options);
  const problems: string[] = [];
  const values: Array<{ variable: tf.Variable; data: Float32Array; shape: number[] }> = [];
  for (const { name, param, layer, module: torchModule } of plan.entries) {
    const entry = tensors.get(name);
    const shape = param.variable.shape;
    const expected = param.transpose && shape.length === 2 ? [shape[1]!, shape[0]!] : [...shape];
    if (entry === undefined) {
      problems.push(`'${name}' is missing (${layer}, ${torchModule}, expects [${expected.join(', ')}])`);
      continue;
    }
    if (entry.dtype !== 'F32' && entry.dtype !== 'F64') {
      problems.push(`'${name}' is ${entry.dtype}; ${layer} takes F32 or F64`);
      continue;
    }
    if (entry.shape.join() !== expected.join()) {
      const note = param.transpose ? ' ([out, in] as torch.nn.Linear: the transpose of the layer\'s [in, out] weight)' : '';
      problems.push(`'${name}' has shape [${entry.shape.join(', ')}] but ${layer} (${torchModule}) expects [${expected.join(', ')}]${note}`);
      continue;
    }
    const data = toFloat32(entry);
    values.push({ variable: param.variable, shape, data: param.transpose && shape.length === 2 ? transpose2d(data, expected[0]!, expected[1]!) : data });
  }
  const known = new Set(plan.entries.map((e) => e.name));
  const extra = [...tensors.keys()].filter((n) => !known.has(n));
  if (extra.length > 0) problems.push(`unexpected tensors ${extra.map((n) => `'${n}'`).join(', ')} (the module's are ${[...known].join(', ')})`);
  if (problems.length > 0) {
    throw new ExportError(`${source} does not fit the module (${plan.code}): ${problems.join('; ')}. No weight was changed.`);
  }
  for (const { variable, data, shape } of values) tf.tidy(() => variable.assign(tf.tensor(data, shape, variable.dtype)));
}
