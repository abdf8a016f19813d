import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { DataError, MisconfigurationError } from '../errors.js';
import { parseOptions } from '../options.js';
import type { TensorBatch } from './batch.js';

/** The dtypes a column can have. */
export type ColumnDtype = 'float32' | 'int32' | 'bool';

/** The typed arrays a column's data may come in. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | Uint8ClampedArray;

/**
 * Column data given as a flat array and a shape whose first dimension counts rows
 * (`{ data: pixels, shape: [60000, 784] }`). Without `dtype`: int32 for Int8/Int16/Int32/Uint8/
 * Uint8Clamped/Uint16 arrays, float32 otherwise (number[], Float32/Float64, Uint32). A Uint8Array
 * is int32 (pixels, labels), not bool, unless `dtype: 'bool'` says so.
 */
export interface ColumnData {
  data: TypedArray | number[];
  shape: number[];
  dtype?: ColumnDtype;
}

/** One column of a data set: a tensor whose first dimension counts rows, or the data for one. */
export type Column = tf.Tensor | ColumnData;

/** A (possibly nested) array of numbers, as one field of a row. */
export type NestedNumbers = number | readonly NestedNumbers[];

/** The value of one field of one row in an array of records: a number, a boolean, a (nested) number array or a typed array. */
export type RowValue = NestedNumbers | boolean | TypedArray;

/** Everything `TensorDataset.from` accepts. */
export type TensorDatasetSource =
  | Column
  | readonly Column[]
  | Readonly<Record<string, Column>>
  | readonly Readonly<Record<string, RowValue>>[];

export const tensorDatasetOptionsSchema = z.strictObject({
  /**
   * The dtype of named fields (an array of records) or named columns (a record of columns), e.g.
   * `{ y: 'int32' }`. Without it, numbers and number arrays are float32, booleans bool, typed arrays
   * as in `ColumnData`; tensor columns of another dtype are cast once, at construction.
   */
  dtypes: z.record(z.string(), z.enum(['float32', 'int32', 'bool'])).optional(),
});

export type TensorDatasetOptions = z.input<typeof tensorDatasetOptionsSchema>;

type Kind = 'tensor' | 'array' | 'record';

/**
 * A column kept in host memory as a flat typed array (the caller's own, or one built from number
 * arrays or records): each batch copies its rows into a fresh tensor. The array is never copied
 * whole, so the data set costs no second copy of the data on any backend.
 */
interface HostColumn {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly rank: number;
  readonly dtype: ColumnDtype;
  /** Values per row. */
  readonly rowSize: number;
  /**
   * On a backend that copies a new tensor's values in (wasm), the array gathered or converted rows
   * go through on their way to the tensor, reused from batch to batch until `_releaseStaging`.
   */
  staging?: Float32Array | Int32Array | Uint8Array;
}

type StoredColumn = tf.Tensor | HostColumn;

/** The columns shared by a data set and its subsets; freed when the last of them is disposed. */
interface Storage {
  readonly kind: Kind;
  readonly names: readonly string[];
  readonly columns: StoredColumn[];
  readonly owned: readonly tf.Tensor[];
  readonly rows: number;
  refs: number;
}

/** A contiguous range of rows, `end` excluded. */
export interface RowRange {
  start: number;
  end: number;
}

/**
 * In-memory data with one row per sample. A batch has the structure of the source: a tensor for a
 * tensor, an array for an array of columns (`[x, y]`), a record for a record of columns or an array
 * of records (`{ x, y }`).
 *
 * Memory: one copy of the data, never two. Tensor columns are sliced (or gathered) per batch. Typed
 * array columns stay the caller's arrays, in host memory, not copied: each batch copies its rows
 * into a fresh tensor (converting to the column's dtype, e.g. Uint8 pixels to int32, one batch at a
 * time). Do not change such an array while the data set lives. Number arrays and arrays of records
 * are packed once into typed arrays the data set holds.
 *
 * Tensors you pass stay yours: `dispose()` frees only the tensors the data set created (casts). A
 * `subset` shares its parent's columns; they are released once the parent and every subset are
 * disposed.
 */
export class TensorDataset<B extends TensorBatch = TensorBatch> {
  private readonly storage: Storage;
  /** Rows of the storage this data set holds, in order; undefined for all of them. */
  private readonly indices: Int32Array | undefined;
  private disposed = false;

  private constructor(storage: Storage, indices: Int32Array | undefined) {
    this.storage = storage;
    this.indices = indices;
    storage.refs++;
  }

  /** A data set whose batches are slices of one tensor (or of one column given as data). */
  static from(source: tf.Tensor | ColumnData, options?: TensorDatasetOptions): TensorDataset<tf.Tensor>;
  /** A data set whose batches are arrays of tensors, one per column: `TensorDataset.from([x, y])`. */
  static from<const C extends readonly Column[]>(
    source: C,
    options?: TensorDatasetOptions,
  ): TensorDataset<{ -readonly [K in keyof C]: tf.Tensor } & tf.Tensor[]>;
  /** A data set whose batches are records of tensors: `TensorDataset.from({ x, y })`. */
  static from<R extends Readonly<Record<string, Column>>>(
    source: R,
    options?: TensorDatasetOptions,
  ): TensorDataset<{ [K in keyof R]: tf.Tensor }>;
  /**
   * A data set from an array of records, `[{ x: [0.1, 0.2], y: 1 }, ...]`: each field becomes a
   * column (stacked once). Numbers and (nested) number arrays are float32 unless `options.dtypes`
   * says otherwise (`{ y: 'int32' }` for class labels); booleans are bool; typed arrays keep their
   * kind as in `ColumnData`. Every row needs the same fields with the same shapes.
   */
  static from<R extends Readonly<Record<string, RowValue>>>(
    source: readonly R[],
    options?: TensorDatasetOptions,
  ): TensorDataset<{ [K in keyof R]: tf.Tensor }>;
  /** Any source (for callers holding a union); the batch type is then the general `TensorBatch`. */
  static from(source: TensorDatasetSource, options?: TensorDatasetOptions): TensorDataset;
  static from(source: TensorDatasetSource, options?: TensorDatasetOptions): TensorDataset {
    const { dtypes } = parseOptions('TensorDataset', tensorDatasetOptionsSchema, options);
    const owned: tf.Tensor[] = [];
    try {
      const { kind, names, columns } = buildColumns(source, dtypes, owned);
      const rows = checkRows(kind, names, columns);
      return new TensorDataset({ kind, names, columns, owned, rows, refs: 0 }, undefined);
    } catch (error) {
      tf.dispose(owned);
      throw error;
    }
  }

  /** Number of rows (samples). */
  get length(): number {
    return this.indices?.length ?? this.storage.rows;
  }

  /** True once `dispose()` was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * A view of some rows, in the given order, sharing this data set's tensors (nothing is copied).
   * Indices are rows of this data set: integers in [0, length).
   */
  subset(indices: ArrayLike<number>): TensorDataset<B> {
    this.checkAlive('subset');
    if (indices.length === 0) {
      throw new DataError('TensorDataset.subset: no indices given; a data set needs at least one row.');
    }
    const rows = new Int32Array(indices.length);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      if (!Number.isInteger(i) || i < 0 || i >= this.length) {
        throw new DataError(
          `TensorDataset.subset: index ${i} (at position ${k}) is not a row of this data set; valid rows are integers in [0, ${this.length - 1}].`,
        );
      }
      rows[k] = this.indices === undefined ? i : this.indices[i]!;
    }
    return new TensorDataset<B>(this.storage, rows);
  }

  /**
   * The given rows as a batch of fresh tensors owned by the caller (dispose them). Contiguous rows
   * of a data set that is not a subset are sliced; other rows are gathered.
   */
  getBatch(rows: Int32Array | RowRange): B {
    this.checkAlive('getBatch');
    let range: RowRange | undefined;
    let gather: Int32Array | undefined;
    if (rows instanceof Int32Array) {
      if (rows.length === 0) throw new DataError('TensorDataset.getBatch: no rows given; a batch needs at least one row.');
      gather = new Int32Array(rows.length);
      for (let k = 0; k < rows.length; k++) {
        const i = rows[k]!;
        if (i < 0 || i >= this.length) {
          throw new DataError(
            `TensorDataset.getBatch: row ${i} (at position ${k}) is out of range; valid rows are [0, ${this.length - 1}].`,
          );
        }
        gather[k] = this.indices === undefined ? i : this.indices[i]!;
      }
    } else {
      const { start, end } = rows;
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.length || start >= end) {
        throw new DataError(
          `TensorDataset.getBatch: rows { start: ${start}, end: ${end} } are not a range of this data set; ` +
            `valid ranges have integers 0 <= start < end <= ${this.length}.`,
        );
      }
      if (this.indices === undefined) range = { start, end };
      else gather = this.indices.subarray(start, end);
    }
    const { kind, names, columns } = this.storage;
    return tf.tidy(() => {
      let index: tf.Tensor1D | undefined;
      const parts = columns.map((column) => {
        if (!(column instanceof tf.Tensor)) return hostBatch(column, range, gather);
        if (gather === undefined) return tf.slice(column, range!.start, range!.end - range!.start);
        index ??= tf.tensor1d(gather, 'int32');
        return tf.gather(column, index);
      });
      return assemble(kind, names, parts);
    }) as B;
  }

  /**
   * @internal Lets go of the arrays that gathered or converted rows are staged in on wasm (see
   * `hostBatch`); the next such batch makes them again. A DataLoader calls it when a pass over the
   * data set ends, so that a finished epoch leaves nothing behind.
   */
  _releaseStaging(): void {
    for (const column of this.storage.columns) if (!(column instanceof tf.Tensor)) column.staging = undefined;
  }

  /**
   * Releases this data set. The tensors it created are freed once it and every subset sharing them
   * are disposed; tensors you passed in are never disposed. Calling it twice does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.refs--;
    if (this.storage.refs === 0) {
      tf.dispose(this.storage.owned as tf.Tensor[]);
      // Let go of the host arrays too (a disposed loader that is still referenced keeps nothing).
      this.storage.columns.length = 0;
    }
  }

  private checkAlive(method: string): void {
    if (this.disposed) {
      throw new DataError(`TensorDataset.${method}: this data set was disposed; create a new one.`);
    }
  }
}

/**
 * The rows of a host column as a fresh tensor of its dtype: a contiguous range, or gathered rows.
 *
 * On a backend that copies a new tensor's values in (wasm, and the native backend once `copiesIn`
 * hands the tensor over), the rows reach the tensor with no array of their own: contiguous rows of
 * the column's own array type straight from a view of it (one copy, as a hand-written loop's
 * `tf.tensor(data.subarray(...))`), gathered or converted rows through the column's staging array,
 * reused from batch to batch. A fresh array per batch cost more than the copy itself (0.6-2 ms for
 * 256 x 784 floats, against 50 us: the new pages are faulted in and zeroed). Backends that keep the
 * array a tensor is made from (cpu, webgl) get a fresh array that becomes the tensor's.
 */
function hostBatch(column: HostColumn, range: RowRange | undefined, gather: Int32Array | undefined): tf.Tensor {
  const { data, rowSize, dtype } = column;
  const count = range === undefined ? gather!.length : range.end - range.start;
  const shape = [count, ...column.shape.slice(1)];
  const copyIn = copiesIn();
  if (copyIn !== undefined && range !== undefined && isArrayOf(dtype, data)) {
    return copyIn(tf.tensor(data.subarray(range.start * rowSize, range.end * rowSize), shape, dtype));
  }
  const size = count * rowSize;
  const out = copyIn !== undefined && size <= MAX_STAGING_VALUES ? staging(column, size) : allocate(dtype, size);
  if (range !== undefined) {
    out.set(data.subarray(range.start * rowSize, range.end * rowSize));
  } else {
    for (let k = 0; k < count; k++) {
      const r = gather![k]!;
      out.set(data.subarray(r * rowSize, (r + 1) * rowSize), k * rowSize);
    }
  }
  const tensor = tf.tensor(out, shape, dtype);
  return copyIn === undefined ? tensor : copyIn(tensor);
}

/** tfjs-node's backend, as far as `copiesIn` uses it. */
interface NativeBackend {
  getInputTensorIds?: (tensors: tf.Tensor[]) => number[];
}

/**
 * On a backend that copies a new tensor's values out of the array it is made from, a function that
 * makes it do so now, after which the array may change (be reused, or be the data set's own array)
 * without reaching the tensor; undefined on a backend that keeps the array (cpu, webgl). wasm
 * copies the values into its heap when the tensor is made. The native backend keeps the array in
 * JavaScript until the tensor's first op and then gives it to TensorFlow: the function does that at
 * once. TensorFlow may share an array's memory instead of copying it (its C API does so for 64-byte
 * aligned memory it is handed), so the first call checks, once per backend instance, that later
 * writes to an array do not reach the tensor; if they do, batches get a fresh array, as on cpu.
 */
function copiesIn(): ((t: tf.Tensor) => tf.Tensor) | undefined {
  const name = tf.getBackend();
  if (name === 'wasm') return identity;
  if (name !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as NativeBackend;
  if (native?.backend !== backend) {
    const toTensorFlow = backend.getInputTensorIds;
    const handOver =
      typeof toTensorFlow === 'function'
        ? (t: tf.Tensor): tf.Tensor => {
            toTensorFlow.call(backend, [t]);
            return t;
          }
        : undefined;
    native = { backend, copyIn: handOver !== undefined && copiesEveryArray(handOver) ? handOver : undefined };
  }
  return native.copyIn;
}

const identity = (t: tf.Tensor): tf.Tensor => t;

/** The native backend this process checked, and how its batches are handed over (undefined: fresh arrays). */
let native: { backend: NativeBackend; copyIn: ((t: tf.Tensor) => tf.Tensor) | undefined } | undefined;

/**
 * @internal Makes tensors from views at every 4-byte offset modulo 64 of one array, hands each over,
 * changes the array, and says whether no tensor changed (exported for its test).
 */
export function copiesEveryArray(handOver: (t: tf.Tensor) => tf.Tensor): boolean {
  // Views of one buffer, so that at least one of them is 64-byte aligned whatever the buffer's address.
  const buffer = new Float32Array(256 + 16).fill(1);
  const tensors: tf.Tensor[] = [];
  try {
    for (let offset = 0; offset < 16; offset++) tensors.push(handOver(tf.tensor1d(buffer.subarray(offset, offset + 256))));
    buffer.fill(2);
    return tensors.every((t) => t.dataSync().every((v) => v === 1));
  } finally {
    tf.dispose(tensors);
  }
}

/**
 * The largest staging array a column keeps (values; 16 MB of float32): a batch bigger than that
 * (a whole data set gathered at once) gets an array of its own, so that the data set never holds a
 * second copy of the data.
 */
const MAX_STAGING_VALUES = 1 << 22;

/** The first `size` values of the column's staging array, grown when too small. Every value is overwritten by the caller. */
function staging(column: HostColumn, size: number): Float32Array | Int32Array | Uint8Array {
  if (column.staging === undefined || column.staging.length < size) column.staging = allocate(column.dtype, size);
  return column.staging.subarray(0, size);
}

/** True when `data` is the array type tfjs keeps `dtype` in (so that `tf.tensor` takes it as it is). */
function isArrayOf(dtype: ColumnDtype, data: TypedArray): boolean {
  return dtype === 'float32' ? data instanceof Float32Array : dtype === 'int32' ? data instanceof Int32Array : data instanceof Uint8Array;
}

function hostColumn(data: TypedArray, shape: readonly number[], dtype: ColumnDtype): HostColumn {
  return { data, shape, rank: shape.length, dtype, rowSize: shape.slice(1).reduce((a, b) => a * b, 1) };
}

function assemble(kind: Kind, names: readonly string[], parts: tf.Tensor[]): TensorBatch {
  if (kind === 'tensor') return parts[0]!;
  if (kind === 'array') return parts;
  const out: Record<string, tf.Tensor> = {};
  names.forEach((name, i) => {
    out[name] = parts[i]!;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

type Dtypes = Readonly<Record<string, ColumnDtype>> | undefined;

interface Built {
  kind: Kind;
  names: string[];
  columns: StoredColumn[];
}

function buildColumns(source: TensorDatasetSource, dtypes: Dtypes, owned: tf.Tensor[]): Built {
  if (source instanceof tf.Tensor || isColumnData(source)) {
    if (dtypes !== undefined) throw dtypesNeedNames('a single column');
    return { kind: 'tensor', names: ['the tensor'], columns: [toColumn(source, 'the column', undefined, owned)] };
  }
  if (Array.isArray(source)) {
    const items = source as readonly unknown[];
    if (items.length === 0) {
      throw new DataError('TensorDataset: the source is an empty array; give columns ([x, y]) or rows ([{ x, y }, ...]).');
    }
    if (items.every((c) => c instanceof tf.Tensor || isColumnData(c))) {
      if (dtypes !== undefined) throw dtypesNeedNames('an array of columns');
      const names = items.map((_, i) => String(i));
      return {
        kind: 'array',
        names,
        columns: items.map((c, i) => toColumn(c as Column, `column ${i}`, undefined, owned)),
      };
    }
    if (items.every(isPlainObject)) {
      return fromRecords(items as readonly Readonly<Record<string, unknown>>[], dtypes);
    }
    const bad = items.findIndex((c) => !(c instanceof tf.Tensor || isColumnData(c) || isPlainObject(c)));
    throw new DataError(
      `TensorDataset: item ${bad} of the source array is ${describeValue(items[Math.max(bad, 0)])}; ` +
        'give an array of columns (tensors or { data, shape }) or an array of records ({ x: [...], y: 1 }), not a mix.',
    );
  }
  if (isPlainObject(source)) {
    const entries = Object.entries(source);
    if (entries.length === 0) {
      throw new DataError('TensorDataset: the source is an empty record; give at least one column ({ x, y }).');
    }
    const names = entries.map(([k]) => k);
    checkDtypeNames(dtypes, names, 'column');
    const columns = entries.map(([name, column]) => {
      if (!(column instanceof tf.Tensor || isColumnData(column))) {
        throw new DataError(
          `TensorDataset: column '${name}' is ${describeValue(column)}; a column is a tensor or { data, shape, dtype? }.`,
        );
      }
      return toColumn(column, `column '${name}'`, dtypes?.[name], owned);
    });
    return { kind: 'record', names, columns };
  }
  throw new DataError(
    `TensorDataset: cannot make a data set from ${describeValue(source)}; give a tensor, an array of columns ([x, y]), ` +
      'a record of columns ({ x, y }) or an array of records ([{ x: [...], y: 1 }, ...]).',
  );
}

function dtypesNeedNames(what: string): MisconfigurationError {
  return new MisconfigurationError(
    `TensorDataset option 'dtypes' names fields of records, but the source is ${what}; give each column's dtype in { data, shape, dtype } instead.`,
  );
}

function checkDtypeNames(dtypes: Dtypes, names: readonly string[], what: 'column' | 'field'): void {
  if (dtypes === undefined) return;
  for (const key of Object.keys(dtypes)) {
    if (!names.includes(key)) {
      throw new MisconfigurationError(
        `TensorDataset option 'dtypes.${key}': the data has no ${what} '${key}' (${what}s: ${names.join(', ')}).`,
      );
    }
  }
}

/** The rows every column has; DataError when they differ or there are none. */
function checkRows(kind: Kind, names: readonly string[], columns: readonly StoredColumn[]): number {
  const label = (i: number) => (kind === 'tensor' ? 'the tensor' : kind === 'array' ? `column ${i}` : `column '${names[i]}'`);
  columns.forEach((c, i) => {
    if (c.rank === 0) {
      throw new DataError(
        `TensorDataset: ${label(i)} is a scalar (${c.dtype}[]); every column needs a first dimension with one row per sample.`,
      );
    }
  });
  const counts = columns.map((c) => c.shape[0]!);
  if (counts.some((n) => n !== counts[0])) {
    const list = counts.map((n, i) => `${label(i)} has ${n}`).join(', ');
    throw new DataError(
      `TensorDataset: the columns have different numbers of rows: ${list}. Every column needs one row per sample (the same first dimension).`,
    );
  }
  if (counts[0] === 0) throw new DataError('TensorDataset: the data set is empty (0 rows); it needs at least one sample.');
  return counts[0]!;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x) || ArrayBuffer.isView(x) || x instanceof tf.Tensor) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}

function isNumericArray(x: unknown): x is TypedArray | number[] {
  return Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView) && !(x instanceof BigInt64Array) && !(x instanceof BigUint64Array));
}

/** `{ data, shape, dtype? }` and nothing else. */
function isColumnData(x: unknown): x is ColumnData {
  if (!isPlainObject(x)) return false;
  const keys = Object.keys(x);
  return (
    'data' in x &&
    'shape' in x &&
    keys.every((k) => k === 'data' || k === 'shape' || k === 'dtype') &&
    isNumericArray(x.data) &&
    Array.isArray(x.shape)
  );
}

const INT_ARRAYS = [Int8Array, Int16Array, Int32Array, Uint8Array, Uint8ClampedArray, Uint16Array];

function defaultDtype(data: TypedArray | number[]): ColumnDtype {
  return INT_ARRAYS.some((T) => data instanceof T) ? 'int32' : 'float32';
}

function toColumn(column: Column, label: string, dtype: ColumnDtype | undefined, owned: tf.Tensor[]): StoredColumn {
  if (column instanceof tf.Tensor) {
    if (dtype === undefined || dtype === column.dtype) return column;
    const cast = tf.cast(column, dtype);
    owned.push(cast);
    return cast;
  }
  const { data, shape } = column;
  if (column.dtype !== undefined && !['float32', 'int32', 'bool'].includes(column.dtype)) {
    throw new DataError(`TensorDataset: ${label} has dtype ${describeValue(column.dtype)}; valid dtypes are 'float32', 'int32' and 'bool'.`);
  }
  if (dtype !== undefined && column.dtype !== undefined && dtype !== column.dtype) {
    throw new MisconfigurationError(
      `TensorDataset option 'dtypes': ${label} is '${dtype}' there but '${column.dtype}' in the column itself; give one of them.`,
    );
  }
  if (shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new DataError(
      `TensorDataset: ${label} has shape ${describeValue(shape)}; a shape is a non-empty array of whole numbers whose first entry counts rows.`,
    );
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) {
    throw new DataError(`TensorDataset: ${label} has shape [${shape.join(',')}], which needs ${size} values, but its data has ${data.length}.`);
  }
  const target = dtype ?? column.dtype ?? defaultDtype(data);
  check(data, target, label);
  // A typed array stays the caller's (no copy; batches convert their rows); a number array is packed once.
  return hostColumn(Array.isArray(data) ? allocateFrom(target, data) : (data as TypedArray), shape, target);
}

/** Checks that the values fit `dtype`: int32 needs 32-bit integers, bool 0 or 1 (float32 takes any number). */
function check(data: TypedArray | number[], dtype: ColumnDtype, label: string): void {
  if (dtype === 'float32') return;
  if (dtype === 'int32') {
    if (data instanceof Int32Array || INT_ARRAYS.some((T) => data instanceof T)) return;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) {
        throw new DataError(`TensorDataset: ${label} is int32, but value ${i} is ${v}, not a 32-bit integer.`);
      }
    }
    return;
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== 0 && v !== 1) throw new DataError(`TensorDataset: ${label} is bool, but value ${i} is ${v}, not 0 or 1.`);
  }
}

function allocateFrom(dtype: ColumnDtype, data: readonly number[]): Float32Array | Int32Array | Uint8Array {
  const out = allocate(dtype, data.length);
  out.set(data);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Arrays of records
// ---------------------------------------------------------------------------------------------

interface FieldSpec {
  name: string;
  /** Shape of one row's value ([] for a scalar). */
  shape: number[];
  size: number;
  dtype: ColumnDtype;
}

function fromRecords(rows: readonly Readonly<Record<string, unknown>>[], dtypes: Dtypes): Built {
  const first = rows[0]!;
  const names = Object.keys(first);
  if (names.length === 0) throw new DataError('TensorDataset: row 0 has no fields; each row needs at least one ({ x: [...], y: 1 }).');
  checkDtypeNames(dtypes, names, 'field');
  const specs = names.map((name): FieldSpec => {
    const value = first[name];
    const shape = valueShape(value, name);
    const natural: ColumnDtype =
      typeof value === 'boolean' ? 'bool' : ArrayBuffer.isView(value) ? defaultDtype(value as TypedArray) : 'float32';
    return { name, shape, size: shape.reduce((a, b) => a * b, 1), dtype: dtypes?.[name] ?? natural };
  });
  const n = rows.length;
  const buffers = specs.map((s) => allocate(s.dtype, n * s.size));
  rows.forEach((row, r) => {
    if (!isPlainObject(row)) throw new DataError(`TensorDataset: row ${r} is ${describeValue(row)}, not a record like row 0.`);
    const keys = Object.keys(row);
    if (keys.length !== names.length || !keys.every((k) => k in first)) {
      const missing = names.filter((k) => !(k in row));
      const extra = keys.filter((k) => !(k in first));
      throw new DataError(
        `TensorDataset: row ${r} has fields ${keys.join(', ') || '(none)'} but row 0 has ${names.join(', ')}` +
          `${missing.length > 0 ? ` (missing: ${missing.join(', ')})` : ''}${extra.length > 0 ? ` (extra: ${extra.join(', ')})` : ''}; every row needs the same fields.`,
      );
    }
    specs.forEach((spec, f) => {
      fill(buffers[f]!, r * spec.size, row[spec.name], spec, 0, r);
    });
  });
  const columns = specs.map((spec, f) => hostColumn(buffers[f]!, [n, ...spec.shape], spec.dtype));
  return { kind: 'record', names, columns };
}

function allocate(dtype: ColumnDtype, size: number): Float32Array | Int32Array | Uint8Array {
  return dtype === 'float32' ? new Float32Array(size) : dtype === 'int32' ? new Int32Array(size) : new Uint8Array(size);
}

/** The shape of one value of row 0: [] for a number or boolean, [len, ...] for (nested) arrays. */
function valueShape(value: unknown, name: string): number[] {
  const shape: number[] = [];
  let v = value;
  while (!(typeof v === 'number' || typeof v === 'boolean')) {
    if (!isNumericArray(v)) {
      throw new DataError(
        `TensorDataset: row 0 field '${name}' is ${describeValue(value)}; a field is a number, a boolean, a (nested) number array or a typed array.`,
      );
    }
    if (v.length === 0) throw new DataError(`TensorDataset: row 0 field '${name}' is an empty array; fields need at least one value.`);
    shape.push(v.length);
    v = v[0];
  }
  if (typeof v === 'boolean' && shape.length > 0) {
    throw new DataError(`TensorDataset: row 0 field '${name}' is an array of booleans; use 0 and 1 with dtypes: { ${name}: 'bool' }.`);
  }
  return shape;
}

function fill(target: Float32Array | Int32Array | Uint8Array, offset: number, value: unknown, spec: FieldSpec, dim: number, row: number): number {
  if (dim === spec.shape.length) {
    let v: number;
    if (typeof value === 'number') v = value;
    else if (typeof value === 'boolean' && spec.shape.length === 0) v = value ? 1 : 0;
    else throw fieldError(spec, row, value);
    if (spec.dtype === 'int32' && (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff)) {
      throw new DataError(`TensorDataset: row ${row} field '${spec.name}' holds ${v}, not a 32-bit integer, but the field is int32.`);
    }
    if (spec.dtype === 'bool' && v !== 0 && v !== 1) {
      throw new DataError(`TensorDataset: row ${row} field '${spec.name}' holds ${v}, not 0 or 1 (or a boolean), but the field is bool.`);
    }
    target[offset] = v;
    return offset + 1;
  }
  if (!isNumericArray(value) || value.length !== spec.shape[dim]) throw fieldError(spec, row, value);
  if (dim === spec.shape.length - 1 && spec.dtype === 'float32') {
    // Fast path for the innermost dimension of float fields: no per-value checks needed.
    if (Array.isArray(value) && !value.every((x) => typeof x === 'number')) throw fieldError(spec, row, value);
    target.set(value as ArrayLike<number>, offset);
    return offset + value.length;
  }
  let o = offset;
  for (let i = 0; i < value.length; i++) o = fill(target, o, value[i], spec, dim + 1, row);
  return o;
}

function fieldError(spec: FieldSpec, row: number, value: unknown): DataError {
  const expected = spec.shape.length === 0 ? 'a number' : `a number array of shape [${spec.shape.join(',')}]`;
  return new DataError(
    `TensorDataset: row ${row} field '${spec.name}' is ${describeValue(value)}, but row 0 makes it ${expected}; every row needs the same shape.`,
  );
}

function describeValue(value: unknown): string {
  if (value instanceof tf.Tensor) return `a ${value.dtype}[${value.shape.join(',')}] tensor`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<number>).length}`;
  if (Array.isArray(value)) {
    if (value.length === 0) return 'an empty array';
    const json = JSON.stringify(value) ?? '';
    return `an array of length ${value.length} (${json.length > 40 ? `${json.slice(0, 37)}...` : json})`;
  }
  if (typeof value === 'string') return `the string ${JSON.stringify(value).slice(0, 40)}`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object' && !isPlainObject(value)) return `a ${value.constructor?.name ?? 'object'}`;
  if (typeof value === 'object') {
    try {
      const s = JSON.stringify(value);
      return s.length > 60 ? `${s.slice(0, 57)}...` : s;
    } catch {
      return String(value);
    }
  }
  return String(value);
}
