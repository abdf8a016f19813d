import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic-write.js';
import { CheckpointError } from './errors.js';
import { FLINT_VERSION } from './version.js';

/**
 * Flint's checkpoint file (`.ckpt`):
 *
 *   bytes 0-9    magic "FLINTCKPT\n"
 *   bytes 10-13  header length H, uint32 little-endian
 *   H bytes      header: UTF-8 JSON, the checkpoint object with every tensor replaced by
 *                `{ "$tensor": index }`, plus `tensors` (the index: dtype, shape, byte offset and
 *                length of each) and `blobSha256`
 *   the rest     the tensors' raw little-endian data, one after another
 *
 * The header is readable with any JSON tool after skipping 14 bytes; the SHA-256 of the data part
 * catches damage. Writes go to a temporary file beside the target, are flushed, then renamed over it.
 */
export const CHECKPOINT_FORMAT = 'flint-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('FLINTCKPT\n', 'latin1');

/** A tensor held on the host inside a checkpoint object. */
export class HostTensor {
  constructor(
    readonly dtype: 'float32' | 'int32' | 'bool',
    readonly shape: readonly number[],
    readonly data: Float32Array | Int32Array | Uint8Array,
  ) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new CheckpointError(`tensor data has ${data.length} values for shape [${shape.join(', ')}] (expected ${size})`);
  }

  /** Copies a tfjs tensor to the host. */
  static fromTensor(t: tf.Tensor): HostTensor {
    const dtype = t.dtype === 'int32' ? 'int32' : t.dtype === 'bool' ? 'bool' : 'float32';
    const raw = t.dataSync();
    const data = dtype === 'float32' ? Float32Array.from(raw as Float32Array) : dtype === 'int32' ? Int32Array.from(raw as Int32Array) : Uint8Array.from(raw as Uint8Array);
    return new HostTensor(dtype, t.shape.slice(), data);
  }

  toTensor(): tf.Tensor {
    return tf.tensor(this.data, this.shape as number[], this.dtype);
  }
}

interface TensorIndexEntry {
  dtype: 'float32' | 'int32' | 'bool';
  shape: number[];
  offset: number;
  byteLength: number;
}

/** A checkpoint object: JSON values and HostTensors, nested. */
export type CheckpointObject = Record<string, unknown> & {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  flintVersion: string;
};

/** Encodes a checkpoint object (with HostTensors anywhere inside) into the file format. */
export function encodeCheckpoint(checkpoint: CheckpointObject): Buffer {
  const index: TensorIndexEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  const replace = (value: unknown): unknown => {
    if (value instanceof HostTensor) {
      const bytes = Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength);
      index.push({ dtype: value.dtype, shape: [...value.shape], offset, byteLength: bytes.length });
      chunks.push(bytes);
      offset += bytes.length;
      return { $tensor: index.length - 1 };
    }
    if (Array.isArray(value)) return value.map(replace);
    if (value !== null && typeof value === 'object') {
      if (ArrayBuffer.isView(value)) throw new CheckpointError('checkpoint objects hold typed arrays only inside HostTensor');
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v)]));
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
    return value;
  };
  const body = replace(checkpoint) as Record<string, unknown>;
  const blob = Buffer.concat(chunks);
  const header = Buffer.from(
    JSON.stringify({ ...body, tensors: index, blobSha256: createHash('sha256').update(blob).digest('hex') }),
    'utf8',
  );
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length, 0);
  return Buffer.concat([MAGIC, length, header, blob]);
}

/** Decodes and verifies a checkpoint file's bytes; `source` names the file in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): CheckpointObject {
  const prefix = MAGIC.length + 4;
  const magicLength = Math.min(bytes.length, MAGIC.length);
  if (!bytes.subarray(0, magicLength).equals(MAGIC.subarray(0, magicLength)) || bytes.length === 0) {
    if (bytes.length === 0) throw new CheckpointError(`${source} is empty (0 bytes): a Flint checkpoint starts with ${prefix} bytes (magic and header length) and its header.`);
    const start = JSON.stringify(bytes.subarray(0, 16).toString('latin1'));
    throw new CheckpointError(`${source} is not a Flint checkpoint: it should start with "FLINTCKPT" but starts with ${start}.`);
  }
  if (bytes.length < prefix) {
    throw new CheckpointError(
      `${source} is truncated: it has ${bytes.length} bytes, fewer than the ${prefix} of a Flint checkpoint's magic and header length.`,
    );
  }
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + headerLength;
  if (headerEnd > bytes.length) {
    throw new CheckpointError(
      `${source} is truncated: its header should have ${headerLength} bytes but the file has ${bytes.length - prefix} after the magic and header length (${bytes.length} bytes in all).`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(MAGIC.length + 4, headerEnd).toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new CheckpointError(`${source} is damaged: its header is not valid JSON.`, { cause: error });
  }
  if (header.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${source} is not a Flint checkpoint (format ${JSON.stringify(header.format)}).`);
  }
  if (typeof header.formatVersion !== 'number' || header.formatVersion > CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `${source} has checkpoint format version ${String(header.formatVersion)}, newer than this Flint ${FLINT_VERSION} reads (up to ${CHECKPOINT_FORMAT_VERSION}); upgrade Flint.`,
    );
  }
  const index = header.tensors as TensorIndexEntry[] | undefined;
  if (!Array.isArray(index)) throw new CheckpointError(`${source} is damaged: its header has no tensor index.`);
  const blob = bytes.subarray(headerEnd);
  const expectedLength = index.reduce((a, e) => Math.max(a, e.offset + e.byteLength), 0);
  if (blob.length !== expectedLength) {
    throw new CheckpointError(
      blob.length < expectedLength
        ? `${source} is truncated: it holds ${blob.length} bytes of tensor data, its index says ${expectedLength} (${expectedLength - blob.length} missing).`
        : `${source} is damaged: it holds ${blob.length} bytes of tensor data, its index says ${expectedLength}.`,
    );
  }
  const sha = createHash('sha256').update(blob).digest('hex');
  if (sha !== header.blobSha256) {
    throw new CheckpointError(`${source} is damaged: the SHA-256 of its tensor data does not match its header.`);
  }
  const tensors = index.map((e, i) => {
    const bytesPer = e.dtype === 'bool' ? 1 : 4;
    const copy = new Uint8Array(e.byteLength);
    copy.set(blob.subarray(e.offset, e.offset + e.byteLength));
    const n = e.byteLength / bytesPer;
    const data = e.dtype === 'float32' ? new Float32Array(copy.buffer, 0, n) : e.dtype === 'int32' ? new Int32Array(copy.buffer, 0, n) : copy;
    try {
      return new HostTensor(e.dtype, e.shape, data);
    } catch (error) {
      throw new CheckpointError(`${source} is damaged: tensor ${i} does not fit its shape.`, { cause: error });
    }
  });
  const restore = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(restore);
    if (value !== null && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      if (typeof o.$tensor === 'number' && Object.keys(o).length === 1) {
        const t = tensors[o.$tensor];
        if (t === undefined) throw new CheckpointError(`${source} is damaged: it refers to tensor ${o.$tensor} which is not in its index.`);
        return t;
      }
      if (typeof o.$number === 'string' && Object.keys(o).length === 1) return Number(o.$number);
      return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, restore(v)]));
    }
    return value;
  };
  const { tensors: _t, blobSha256: _s, ...rest } = header;
  return restore(rest) as CheckpointObject;
}

/** Writes a checkpoint object to `file` atomically. */
export async function saveCheckpointFile(file: string, checkpoint: CheckpointObject): Promise<void> {
  try {
    await writeFileAtomic(file, encodeCheckpoint(checkpoint));
  } catch (error) {
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError(`could not write the checkpoint ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads and verifies a checkpoint file. */
export async function loadCheckpointFile(file: string): Promise<CheckpointObject> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT' ? `checkpoint ${file} does not exist.` : `could not read the checkpoint ${file}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return decodeCheckpoint(bytes, `checkpoint ${file}`);
}

// ---- optimizer state ------------------------------------------------------------------------

/** A tfjs optimizer's state with variable names translated to parameter names. */
export interface OptimizerState {
  className: string;
  config: Record<string, unknown>;
  weights: Array<{ name: string; tensor: HostTensor }>;
  /** Scalar accumulators outside getWeights (Adam's beta powers), restored exactly. */
  extra: Record<string, HostTensor>;
}

function translate(name: string, map: ReadonlyMap<string, string>): string {
  const slash = name.indexOf('/');
  const head = slash < 0 ? name : name.slice(0, slash);
  const mapped = map.get(head);
  return mapped === undefined ? name : mapped + (slash < 0 ? '' : name.slice(slash));
}

/**
 * Captures an optimizer's state (moments, step counts) keyed by parameter names, which are stable
 * across processes, unlike tfjs variable names.
 */
export async function captureOptimizerState(optimizer: tf.Optimizer, varToParam: ReadonlyMap<string, string>): Promise<OptimizerState> {
  const named = await optimizer.getWeights();
  const weights = named.map((w) => ({ name: translate(w.name, varToParam), tensor: HostTensor.fromTensor(w.tensor) }));
  for (const w of named) if (w.name === 'iter') w.tensor.dispose();
  const extra: Record<string, HostTensor> = {};
  for (const [key, value] of Object.entries(optimizer)) {
    if (value instanceof tf.Variable) extra[key] = HostTensor.fromTensor(value);
  }
  return { className: optimizer.getClassName(), config: optimizer.getConfig() as Record<string, unknown>, weights, extra };
}

/** Restores what `captureOptimizerState` captured into an optimizer of the same class. */
export async function restoreOptimizerState(
  optimizer: tf.Optimizer,
  state: OptimizerState,
  paramToVar: ReadonlyMap<string, string>,
  source: string,
): Promise<void> {
  if (state.className !== optimizer.getClassName()) {
    throw new CheckpointError(`${source}: the checkpoint holds the state of a ${state.className} optimizer, the module configures a ${optimizer.getClassName()}.`);
  }
  const named = state.weights.map((w) => ({ name: translate(w.name, paramToVar), tensor: w.tensor.toTensor() }));
  try {
    await optimizer.setWeights(named);
  } finally {
    tf.dispose(named.map((n) => n.tensor));
  }
  for (const [key, host] of Object.entries(state.extra ?? {})) {
    const target = (optimizer as unknown as Record<string, unknown>)[key];
    if (target instanceof tf.Variable) {
      tf.tidy(() => target.assign(host.toTensor()));
    }
  }
}
