import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, promises as fs, readSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-write.js';
import { CheckpointError } from './errors.js';
import { wholeNumber } from './schemas.js';
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
export const CHECKPOINT_FORMAT: 'flint-checkpoint' = 'flint-checkpoint';
export const CHECKPOINT_FORMAT_VERSION: 1 = 1;
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

const count = wholeNumber;
/** Any number, NaN and ±Infinity included (a metric may be NaN; the file stores those as `{ "$number": "NaN" }`). */
const anyNumber = z.custom<number>((v) => typeof v === 'number', { error: 'must be a number' });
const jsonRecord = z.record(z.string(), z.unknown());
const hostTensor = z.custom<HostTensor>((v) => v instanceof HostTensor, { error: 'must be a tensor ({ "$tensor": index })' });
const uint32 = z.number().int().min(0).max(0xffffffff);

const tensorIndexEntrySchema = z.object({
  dtype: z.enum(['float32', 'int32', 'bool']),
  shape: z.array(count),
  offset: count,
  byteLength: count,
});
type TensorIndexEntry = z.output<typeof tensorIndexEntrySchema>;

/**
 * What a checkpoint's JSON header holds besides the checkpoint object's JSON part: the envelope
 * that `readCheckpointHeader` checks (tensors are still `{ "$tensor": index }` there).
 */
export const checkpointHeaderSchema = z.looseObject({
  format: z.literal(CHECKPOINT_FORMAT),
  formatVersion: z.number().int().min(1).max(CHECKPOINT_FORMAT_VERSION),
  flintVersion: z.string(),
  /** Callbacks' states by stateKey (full checkpoints only). */
  callbacks: z.record(z.string(), jsonRecord).optional(),
  tensors: z.array(tensorIndexEntrySchema),
  blobSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be 64 hex digits' }),
});

/** A checkpoint's header, checked (see `readCheckpointHeader`). */
export type CheckpointHeader = z.output<typeof checkpointHeaderSchema>;

const fitProgressSchema = z.object({ epoch: count, globalStep: count, batchInEpoch: count, totalBatches: count });

const optimizerStateSchema = z.object({
  className: z.string(),
  config: jsonRecord,
  weights: z.array(z.object({ name: z.string(), tensor: hostTensor })),
  extra: z.record(z.string(), hostTensor).default({}),
});

const epochRecordSchema = z.object({ epoch: count, globalStep: count, metrics: z.record(z.string(), anyNumber) });

/**
 * Fields of every checkpoint, weights-only or not, in the file's key order (a decoded checkpoint
 * encodes back to the same bytes).
 */
const v1Fields = <W extends boolean>(weightsOnly: W) => ({
  format: z.literal(CHECKPOINT_FORMAT),
  formatVersion: z.number().int().min(1).max(CHECKPOINT_FORMAT_VERSION),
  flintVersion: z.string(),
  createdAt: z.string(),
  /** The module's class name. */
  module: z.string(),
  /** The tfjs backend that wrote it. */
  backend: z.string(),
  /** Whether it holds the weights only (`saveWeightsOnly`): such a checkpoint cannot resume a fit. */
  weightsOnly: z.literal(weightsOnly),
  /** Epochs completed and optimizer steps taken when it was written. */
  epoch: count,
  globalStep: count,
  progress: fitProgressSchema,
  /** Where a fit resumes: the next batch of `epoch`, or batch 0 of the next epoch once an epoch's end ran. */
  resume: z.object({ epoch: count, batch: count }),
  hparams: jsonRecord,
  /** The weights by parameter name. */
  stateDict: z.record(z.string(), hostTensor),
});

/**
 * A format-v1 checkpoint object (after decoding: tensors are HostTensors). Weights-only checkpoints
 * (`saveWeightsOnly`) stop at the weights; full ones carry everything a resume needs. Keys added by
 * `onSaveCheckpoint` hooks are kept.
 */
export const checkpointV1Schema = z.discriminatedUnion('weightsOnly', [
  z.looseObject({
    ...v1Fields(false),
    optimizers: z.array(optimizerStateSchema),
    /** Each LR scheduler's stateDict, in configureOptimizers' order. */
    lrSchedulers: z.array(jsonRecord),
    /** Callbacks' states by stateKey (stateless callbacks are left out). */
    callbacks: z.record(z.string(), jsonRecord),
    /** Loggers' states by stateKey (or class name). */
    loggers: z.record(z.string(), jsonRecord),
    /** The global RNG's state (`seedEverything`), or null when none was seeded. */
    rng: z.object({ algorithm: z.literal('sfc32'), state: z.tuple([uint32, uint32, uint32, uint32]).readonly() }).nullable(),
    loops: z.object({
      history: z.array(epochRecordSchema),
      callbackMetrics: z.record(z.string(), anyNumber),
      /** The metric collector's partial epoch (read when resuming mid-epoch). */
      collector: jsonRecord.optional(),
    }),
  }),
  z.looseObject(v1Fields(true)),
]);

/** A checkpoint object, as `dumpCheckpoint` makes it, `onSaveCheckpoint` / `onLoadCheckpoint` see it, and `loadCheckpointFile` returns it. */
export type Checkpoint = z.output<typeof checkpointV1Schema>;
/** A checkpoint that can resume a fit (not `saveWeightsOnly`). */
export type FullCheckpoint = Extract<Checkpoint, { weightsOnly: false }>;

/** @deprecated Use `Checkpoint`. */
export type CheckpointObject = Checkpoint;

/** Throws a CheckpointError naming the first field of `value` that `schema` rejects. */
function checked<S extends z.ZodType>(schema: S, value: unknown, source: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new CheckpointError(`${source} is damaged: ${describeIssue(result.error.issues[0]!, value)}`, { cause: result.error });
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const path = issue.path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
  let value: unknown = root;
  for (const key of issue.path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  if (path === '') return `its header is not a checkpoint object (${issue.message}).`;
  if (value === undefined) return `field '${path}' is missing.`;
  if (issue.code === 'invalid_union' && 'discriminator' in issue) return `field '${path}' must be true or false (received ${shown(value)}).`;
  const message = issue.message.replace(/^Invalid input: /, '');
  return `field '${path}' ${message.startsWith('must') ? message : `is invalid: ${message}`} (received ${shown(value)}).`;
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value instanceof HostTensor) return `a ${value.dtype} tensor of shape [${value.shape.join(', ')}]`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Encodes a checkpoint object (with HostTensors anywhere inside) into the file format. */
export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
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

const PREFIX = MAGIC.length + 4;

/** Checks the magic and the header length against the file's length; returns the header's length. */
function headerLengthOf(prefix: Buffer, fileLength: number, source: string): number {
  const magicLength = Math.min(prefix.length, MAGIC.length);
  if (!prefix.subarray(0, magicLength).equals(MAGIC.subarray(0, magicLength)) || fileLength === 0) {
    if (fileLength === 0) throw new CheckpointError(`${source} is empty (0 bytes): a Flint checkpoint starts with ${PREFIX} bytes (magic and header length) and its header.`);
    const start = JSON.stringify(prefix.subarray(0, 16).toString('latin1'));
    throw new CheckpointError(`${source} is not a Flint checkpoint: it should start with "FLINTCKPT" but starts with ${start}.`);
  }
  if (fileLength < PREFIX) {
    throw new CheckpointError(
      `${source} is truncated: it has ${fileLength} bytes, fewer than the ${PREFIX} of a Flint checkpoint's magic and header length.`,
    );
  }
  const headerLength = prefix.readUInt32LE(MAGIC.length);
  if (PREFIX + headerLength > fileLength) {
    throw new CheckpointError(
      `${source} is truncated: its header should have ${headerLength} bytes but the file has ${fileLength - PREFIX} after the magic and header length (${fileLength} bytes in all).`,
    );
  }
  return headerLength;
}

/** Parses and checks a header's JSON (format, version, tensor index). */
function parseHeader(json: Buffer, source: string): CheckpointHeader {
  let header: unknown;
  try {
    header = JSON.parse(json.toString('utf8'));
  } catch (error) {
    throw new CheckpointError(`${source} is damaged: its header is not valid JSON.`, { cause: error });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new CheckpointError(`${source} is damaged: its header is not a JSON object (received ${shown(header)}).`);
  }
  const { format, formatVersion } = header as Record<string, unknown>;
  if (format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(`${source} is not a Flint checkpoint (format ${JSON.stringify(format)}).`);
  }
  if (typeof formatVersion === 'number' && formatVersion > CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `${source} has checkpoint format version ${String(formatVersion)}, newer than this Flint ${FLINT_VERSION} reads (up to ${CHECKPOINT_FORMAT_VERSION}); upgrade Flint.`,
    );
  }
  return checked(checkpointHeaderSchema, header, source);
}

/**
 * Reads and checks a checkpoint file's header (format, version, tensor index; JSON values, with
 * tensors as `{ "$tensor": index }`) without reading its tensor data: what callbacks need to look
 * into a checkpoint cheaply. Throws a CheckpointError for a missing, foreign or damaged file.
 */
export async function readCheckpointHeader(file: string): Promise<CheckpointHeader> {
  const source = `checkpoint ${file}`;
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    throw readError(file, error);
  }
  try {
    const { size } = await handle.stat();
    const prefix = Buffer.alloc(Math.min(PREFIX, size));
    await handle.read(prefix, 0, prefix.length, 0);
    const length = headerLengthOf(prefix, size, source);
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, PREFIX);
    return parseHeader(json, source);
  } finally {
    await handle.close();
  }
}

/** `readCheckpointHeader`, synchronously (for callbacks' constructors and setup). */
export function readCheckpointHeaderSync(file: string): CheckpointHeader {
  const source = `checkpoint ${file}`;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw readError(file, error);
  }
  try {
    const { size } = fstatSync(fd);
    const prefix = Buffer.alloc(Math.min(PREFIX, size));
    readSync(fd, prefix, 0, prefix.length, 0);
    const length = headerLengthOf(prefix, size, source);
    const json = Buffer.alloc(length);
    readSync(fd, json, 0, length, PREFIX);
    return parseHeader(json, source);
  } finally {
    closeSync(fd);
  }
}

function readError(file: string, error: unknown): CheckpointError {
  const code = (error as NodeJS.ErrnoException).code;
  return new CheckpointError(
    code === 'ENOENT' ? `checkpoint ${file} does not exist.` : `could not read the checkpoint ${file}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** Decodes and verifies a checkpoint file's bytes against `checkpointV1Schema`; `source` names the file in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): Checkpoint {
  const headerLength = headerLengthOf(bytes.subarray(0, PREFIX), bytes.length, source);
  const headerEnd = PREFIX + headerLength;
  const header = parseHeader(bytes.subarray(PREFIX, headerEnd), source);
  const index = header.tensors;
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
    if (e.byteLength % bytesPer !== 0) throw new CheckpointError(`${source} is damaged: field 'tensors[${i}].byteLength' is not a multiple of ${bytesPer} (received ${e.byteLength}).`);
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
      const entries = Object.entries(value);
      const [only] = entries;
      if (entries.length === 1 && only![0] === '$tensor' && typeof only![1] === 'number') {
        const t = tensors[only![1]];
        if (t === undefined) throw new CheckpointError(`${source} is damaged: it refers to tensor ${only![1]} which is not in its index.`);
        return t;
      }
      if (entries.length === 1 && only![0] === '$number' && typeof only![1] === 'string') return Number(only![1]);
      return Object.fromEntries(entries.map(([k, v]) => [k, restore(v)]));
    }
    return value;
  };
  const { tensors: _t, blobSha256: _s, ...rest } = header;
  return checked(checkpointV1Schema, restore(rest), source);
}

/** Writes a checkpoint object to `file` atomically. */
export async function saveCheckpointFile(file: string, checkpoint: Checkpoint): Promise<void> {
  try {
    await writeFileAtomic(file, encodeCheckpoint(checkpoint));
  } catch (error) {
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError(`could not write the checkpoint ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads and verifies a checkpoint file. */
export async function loadCheckpointFile(file: string): Promise<Checkpoint> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    throw readError(file, error);
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
