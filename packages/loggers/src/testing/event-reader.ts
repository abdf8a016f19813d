// Test-only: a reader of TensorBoard log dirs that behaves as TensorBoard 2.21's Python loader
// (EventFileLoader + data_compat/dataclass_compat migrations + plugin_event_accumulator with every
// point kept + MultiplexerDataProvider + hparams backend). Its output has the shape of the golden
// fixtures' expected.json. Not shipped: excluded from the build.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { maskedCrc32c } from '../internal/tfrecord.js';

// ---------------------------------------------------------------- records

export interface RecordsResult {
  readonly records: Uint8Array[];
  /** Why reading stopped before the end of the file, in the Python loader's words. */
  readonly problem?: 'truncated header' | 'truncated data' | 'failed header crc32 check' | 'failed event crc32 check';
}

/** Splits a TFRecord file as TensorBoard's pure-Python record reader does: it stops at the first bad or incomplete record. */
export function readRecords(buf: Uint8Array): RecordsResult {
  const records: Uint8Array[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) return { records, problem: 'truncated header' };
    const header = buf.subarray(pos, pos + 8);
    if (view.getUint32(pos + 8, true) !== maskedCrc32c(header)) return { records, problem: 'failed header crc32 check' };
    const len = Number(view.getBigUint64(pos, true));
    if (pos + 12 + len + 4 > buf.length) return { records, problem: 'truncated data' };
    const data = buf.subarray(pos + 12, pos + 12 + len);
    if (view.getUint32(pos + 12 + len, true) !== maskedCrc32c(data)) return { records, problem: 'failed event crc32 check' };
    records.push(data);
    pos += 12 + len + 4;
  }
  return { records };
}

// ---------------------------------------------------------------- protos

type Handler = (r: BinaryReader, wt: WireType) => void;

function decode(bytes: Uint8Array, handlers: Record<number, Handler>): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    const h = handlers[no];
    if (h !== undefined) h(r, wt);
    else r.skip(wt, no);
  }
}

function packed(r: BinaryReader, wt: WireType, read: (r: BinaryReader) => number, out: number[]): void {
  if (wt === WireType.LengthDelimited) {
    const sub = new BinaryReader(r.bytes());
    while (sub.pos < sub.len) out.push(read(sub));
  } else out.push(read(r));
}

export interface TensorProto {
  dtype: number;
  shape: number[];
  tensorContent?: Uint8Array;
  floatVal: number[];
  doubleVal: number[];
  intVal: number[];
  stringVal: Uint8Array[];
}

export interface SummaryMetadata {
  pluginName: string;
  content: Uint8Array;
  displayName: string;
  description: string;
  dataClass: number;
  /** Whether the proto had the field at all. */
  present: boolean;
}

export interface SummaryValue {
  tag: string;
  simpleValue?: number;
  image?: { height: number; width: number; colorspace: number; encoded: Uint8Array };
  histo?: { min: number; max: number; num: number; sum: number; sumSquares: number; bucketLimit: number[]; bucket: number[] };
  tensor?: TensorProto;
  metadata?: SummaryMetadata;
}

export interface Event {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values?: SummaryValue[];
  sessionLog?: { status: number; msg: string };
  sourceWriter?: string;
}

function decodeTensor(bytes: Uint8Array): TensorProto {
  const t: TensorProto = { dtype: 0, shape: [], floatVal: [], doubleVal: [], intVal: [], stringVal: [] };
  decode(bytes, {
    1: (r) => (t.dtype = r.int32()),
    2: (r) =>
      decode(r.bytes(), {
        2: (r2) =>
          decode(r2.bytes(), {
            1: (r3) => t.shape.push(Number(r3.int64())),
          }),
      }),
    4: (r) => (t.tensorContent = r.bytes()),
    5: (r, wt) => packed(r, wt, (x) => x.float(), t.floatVal),
    6: (r, wt) => packed(r, wt, (x) => x.double(), t.doubleVal),
    7: (r, wt) => packed(r, wt, (x) => x.int32(), t.intVal),
    8: (r) => t.stringVal.push(r.bytes()),
  });
  return t;
}

function decodeMetadata(bytes: Uint8Array): SummaryMetadata {
  const m: SummaryMetadata = { pluginName: '', content: new Uint8Array(0), displayName: '', description: '', dataClass: 0, present: true };
  decode(bytes, {
    1: (r) =>
      decode(r.bytes(), {
        1: (r2) => (m.pluginName = r2.string()),
        2: (r2) => (m.content = r2.bytes()),
      }),
    2: (r) => (m.displayName = r.string()),
    3: (r) => (m.description = r.string()),
    4: (r) => (m.dataClass = r.int32()),
  });
  return m;
}

function decodeValue(bytes: Uint8Array): SummaryValue {
  const v: SummaryValue = { tag: '' };
  let nodeName = '';
  decode(bytes, {
    1: (r) => (v.tag = r.string()),
    7: (r) => (nodeName = r.string()),
    2: (r) => (v.simpleValue = r.float()),
    4: (r) => {
      const img: { height: number; width: number; colorspace: number; encoded: Uint8Array } = { height: 0, width: 0, colorspace: 0, encoded: new Uint8Array(0) };
      decode(r.bytes(), {
        1: (r2) => (img.height = r2.int32()),
        2: (r2) => (img.width = r2.int32()),
        3: (r2) => (img.colorspace = r2.int32()),
        4: (r2) => (img.encoded = r2.bytes()),
      });
      v.image = img;
    },
    5: (r) => {
      const h = { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [] as number[], bucket: [] as number[] };
      decode(r.bytes(), {
        1: (r2) => (h.min = r2.double()),
        2: (r2) => (h.max = r2.double()),
        3: (r2) => (h.num = r2.double()),
        4: (r2) => (h.sum = r2.double()),
        5: (r2) => (h.sumSquares = r2.double()),
        6: (r2, wt) => packed(r2, wt, (x) => x.double(), h.bucketLimit),
        7: (r2, wt) => packed(r2, wt, (x) => x.double(), h.bucket),
      });
      v.histo = h;
    },
    8: (r) => (v.tensor = decodeTensor(r.bytes())),
    9: (r) => (v.metadata = decodeMetadata(r.bytes())),
  });
  if (v.tag === '' && nodeName !== '') v.tag = nodeName;
  return v;
}

export function decodeEvent(bytes: Uint8Array): Event {
  const e: Event = { wallTime: 0, step: 0 };
  decode(bytes, {
    1: (r) => (e.wallTime = r.double()),
    2: (r) => (e.step = Number(r.int64())),
    3: (r) => (e.fileVersion = r.string()),
    5: (r) => {
      const values: SummaryValue[] = [];
      decode(r.bytes(), { 1: (r2) => values.push(decodeValue(r2.bytes())) });
      e.values = values;
    },
    7: (r) => {
      const s = { status: 0, msg: '' };
      decode(r.bytes(), {
        1: (r2) => (s.status = r2.int32()),
        3: (r2) => (s.msg = r2.string()),
      });
      e.sessionLog = s;
    },
    10: (r) => decode(r.bytes(), { 1: (r2) => (e.sourceWriter = r2.string()) }),
  });
  return e;
}

// ---------------------------------------------------------------- hparams protos (as MessageToDict)

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function decodeProtobufValue(bytes: Uint8Array): Json {
  let out: Json = null;
  decode(bytes, {
    1: (r) => {
      r.int32();
      out = null;
    },
    2: (r) => (out = r.double()),
    3: (r) => (out = r.string()),
    4: (r) => (out = r.bool()),
    6: (r) => {
      const list: Json[] = [];
      decode(r.bytes(), { 1: (r2) => list.push(decodeProtobufValue(r2.bytes())) });
      out = list;
    },
  });
  return out;
}

const DATA_TYPES = ['DATA_TYPE_UNSET', 'DATA_TYPE_STRING', 'DATA_TYPE_BOOL', 'DATA_TYPE_FLOAT64'];
const STATUSES = ['STATUS_UNKNOWN', 'STATUS_SUCCESS', 'STATUS_FAILURE', 'STATUS_RUNNING'];
const DATASET_TYPES = ['DATASET_UNKNOWN', 'DATASET_TRAINING', 'DATASET_VALIDATION'];

function decodeExperiment(bytes: Uint8Array): Record<string, Json> {
  const e: Record<string, Json> = {};
  const hparamInfos: Json[] = [];
  const metricInfos: Json[] = [];
  decode(bytes, {
    6: (r) => (e['name'] = r.string()),
    1: (r) => (e['description'] = r.string()),
    2: (r) => (e['user'] = r.string()),
    3: (r) => {
      const t = r.double();
      if (t !== 0) e['time_created_secs'] = t;
    },
    4: (r) => {
      const h: Record<string, Json> = {};
      decode(r.bytes(), {
        1: (r2) => (h['name'] = r2.string()),
        2: (r2) => (h['display_name'] = r2.string()),
        3: (r2) => (h['description'] = r2.string()),
        4: (r2) => {
          const t = r2.int32();
          if (t !== 0) h['type'] = DATA_TYPES[t] ?? t;
        },
        5: (r2) => {
          const list: Json[] = [];
          decode(r2.bytes(), { 1: (r3) => list.push(decodeProtobufValue(r3.bytes())) });
          h['domain_discrete'] = list;
        },
        6: (r2) => {
          const d: Record<string, Json> = {};
          decode(r2.bytes(), {
            1: (r3) => (d['min_value'] = r3.double()),
            2: (r3) => (d['max_value'] = r3.double()),
          });
          h['domain_interval'] = d;
        },
        7: (r2) => {
          if (r2.bool()) h['differs'] = true;
        },
      });
      hparamInfos.push(h);
    },
    5: (r) => {
      const m: Record<string, Json> = {};
      decode(r.bytes(), {
        1: (r2) => {
          const n: Record<string, Json> = {};
          decode(r2.bytes(), {
            1: (r3) => {
              const g = r3.string();
              if (g !== '') n['group'] = g;
            },
            2: (r3) => (n['tag'] = r3.string()),
          });
          m['name'] = n;
        },
        3: (r2) => (m['display_name'] = r2.string()),
        4: (r2) => (m['description'] = r2.string()),
        5: (r2) => {
          const t = r2.int32();
          if (t !== 0) m['dataset_type'] = DATASET_TYPES[t] ?? t;
        },
      });
      metricInfos.push(m);
    },
  });
  if (hparamInfos.length > 0) e['hparam_infos'] = hparamInfos;
  if (metricInfos.length > 0) e['metric_infos'] = metricInfos;
  return e;
}

function decodeSessionStartInfo(bytes: Uint8Array): Record<string, Json> {
  const s: Record<string, Json> = {};
  const hparams: Record<string, Json> = {};
  decode(bytes, {
    1: (r) => {
      let key = '';
      let value: Json = null;
      decode(r.bytes(), {
        1: (r2) => (key = r2.string()),
        2: (r2) => (value = decodeProtobufValue(r2.bytes())),
      });
      hparams[key] = value;
    },
    2: (r) => (s['model_uri'] = r.string()),
    3: (r) => (s['monitor_url'] = r.string()),
    4: (r) => (s['group_name'] = r.string()),
    5: (r) => {
      const t = r.double();
      if (t !== 0) s['start_time_secs'] = t;
    },
  });
  if (Object.keys(hparams).length > 0) s['hparams'] = hparams;
  return s;
}

function decodeSessionEndInfo(bytes: Uint8Array): Record<string, Json> {
  const s: Record<string, Json> = {};
  decode(bytes, {
    1: (r) => {
      const t = r.int32();
      if (t !== 0) s['status'] = STATUSES[t] ?? t;
    },
    2: (r) => {
      const t = r.double();
      if (t !== 0) s['end_time_secs'] = t;
    },
  });
  return s;
}

/** HParamsPluginData as MessageToDict(preserving_proto_field_name=True) gives it. */
export function decodeHparamsPluginData(bytes: Uint8Array): Record<string, Json> {
  const out: Record<string, Json> = {};
  decode(bytes, {
    1: (r) => {
      const v = r.int32();
      if (v !== 0) out['version'] = v;
    },
    2: (r) => (out['experiment'] = decodeExperiment(r.bytes())),
    3: (r) => (out['session_start_info'] = decodeSessionStartInfo(r.bytes())),
    4: (r) => (out['session_end_info'] = decodeSessionEndInfo(r.bytes())),
  });
  return out;
}

// ---------------------------------------------------------------- migrations (data_compat, dataclass_compat)

const DT_FLOAT = 1;
const DT_DOUBLE = 2;
const DT_STRING = 7;
const DATA_CLASS_SCALAR = 1;
const DATA_CLASS_TENSOR = 2;
const DATA_CLASS_BLOB_SEQUENCE = 3;

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function newMetadata(plugin: string, old: SummaryMetadata | undefined, tag: string): SummaryMetadata {
  return {
    pluginName: plugin,
    content: new Uint8Array(0),
    displayName: old?.displayName || tag,
    description: old?.description ?? '',
    dataClass: 0,
    present: true,
  };
}

/** data_compat.migrate_value: legacy simple_value / histo / image to tensors. */
function migrateLegacy(v: SummaryValue): SummaryValue {
  if (v.simpleValue !== undefined) {
    return { tag: v.tag, tensor: { dtype: DT_FLOAT, shape: [], floatVal: [v.simpleValue], doubleVal: [], intVal: [], stringVal: [] }, metadata: newMetadata('scalars', v.metadata, v.tag) };
  }
  if (v.histo !== undefined) {
    const h = v.histo;
    const n = h.bucket.length;
    let start = h.bucket.findIndex((c) => c > 0);
    if (start < 0) start = n;
    let end = -1;
    for (let i = n - 1; i >= 0; i--) if (h.bucket[i]! > 0) {
      end = i;
      break;
    }
    const rows: number[] = [];
    if (start <= end) {
      const counts = h.bucket.slice(start, end + 1);
      const inner = h.bucketLimit.slice(start, end);
      const lefts = [h.min, ...inner];
      const rights = [...inner, h.max];
      for (let i = 0; i < counts.length; i++) rows.push(lefts[i]!, rights[i]!, counts[i]!);
    }
    return {
      tag: v.tag,
      tensor: { dtype: DT_FLOAT, shape: [rows.length / 3, 3], tensorContent: f32(rows), floatVal: [], doubleVal: [], intVal: [], stringVal: [] },
      metadata: newMetadata('histograms', v.metadata, v.tag),
    };
  }
  if (v.image !== undefined) {
    const enc = new TextEncoder();
    return {
      tag: v.tag,
      tensor: { dtype: DT_STRING, shape: [3], floatVal: [], doubleVal: [], intVal: [], stringVal: [enc.encode(String(v.image.width)), enc.encode(String(v.image.height)), v.image.encoded] },
      metadata: newMetadata('images', v.metadata, v.tag),
    };
  }
  return v;
}

// ---------------------------------------------------------------- accumulator

export interface TensorPoint {
  step: number;
  wallTime: number;
  tensor: TensorProto;
}

class RunAccumulator {
  firstEventTimestamp: number | undefined;
  fileVersion: number | undefined;
  sourceWriter: string | undefined;
  private seenSessionStart = false;
  private mostRecentStep = -1;
  /** dataclass_compat's initial metadata per tag. */
  private readonly initialMetadata = new Map<string, SummaryMetadata>();
  readonly summaryMetadata = new Map<string, SummaryMetadata>();
  readonly tensorsByTag = new Map<string, TensorPoint[]>();
  readonly warnings: string[] = [];

  process(event: Event): void {
    if (this.firstEventTimestamp === undefined) this.firstEventTimestamp = event.wallTime;
    if (event.sourceWriter !== undefined) this.sourceWriter = event.sourceWriter;
    if (event.fileVersion !== undefined) {
      const m = /^brain\.Event:(.*)$/.exec(event.fileVersion);
      this.fileVersion = m ? Number(m[1]) : -1;
    }
    // Migrations happen in the loader, before the accumulator sees the event.
    let values = event.values?.map(migrateLegacy);
    if (values !== undefined) values = values.map((v) => this.dataclassCompat(v));
    this.maybePurge(event);
    if (values === undefined) return;
    for (const v of values) {
      if (v.metadata !== undefined && !this.summaryMetadata.has(v.tag)) this.summaryMetadata.set(v.tag, v.metadata);
      if (v.tensor !== undefined) {
        let list = this.tensorsByTag.get(v.tag);
        if (list === undefined) this.tensorsByTag.set(v.tag, (list = []));
        list.push({ step: event.step, wallTime: event.wallTime, tensor: v.tensor });
      }
    }
  }

  private dataclassCompat(v: SummaryValue): SummaryValue {
    let meta = this.initialMetadata.get(v.tag);
    if (meta === undefined) {
      meta = v.metadata === undefined ? { pluginName: '', content: new Uint8Array(0), displayName: '', description: '', dataClass: 0, present: false } : { ...v.metadata };
      this.initialMetadata.set(v.tag, meta);
    }
    if (meta.dataClass !== 0) return v;
    const dataClass: Record<string, number> = {
      scalars: DATA_CLASS_SCALAR,
      histograms: DATA_CLASS_TENSOR,
      text: DATA_CLASS_TENSOR,
      hparams: DATA_CLASS_TENSOR,
      images: DATA_CLASS_BLOB_SEQUENCE,
    };
    const dc = dataClass[meta.pluginName];
    if (dc === undefined) return v;
    const out: SummaryValue = { ...v };
    if (v.metadata !== undefined) out.metadata = { ...v.metadata, dataClass: dc };
    if (meta.pluginName === 'hparams' && v.tensor === undefined) {
      out.tensor = { dtype: DT_FLOAT, shape: [0], floatVal: [], doubleVal: [], intVal: [], stringVal: [] };
    }
    return out;
  }

  private maybePurge(event: Event): void {
    if (this.fileVersion !== undefined && this.fileVersion >= 2) {
      if (event.sessionLog?.status === 1) {
        if (!this.seenSessionStart) this.seenSessionStart = true;
        else this.purge(event, false);
      }
    } else if (event.step < this.mostRecentStep && event.values !== undefined) {
      this.purge(event, true);
    }
    if (event.values !== undefined) this.mostRecentStep = event.step;
  }

  private purge(event: Event, byTags: boolean): void {
    const tags = byTags ? (event.values ?? []).map((v) => v.tag) : [...this.tensorsByTag.keys()];
    let expired = 0;
    for (const tag of tags) {
      const list = this.tensorsByTag.get(tag);
      if (list === undefined) continue;
      const kept = list.filter((p) => p.step < event.step);
      expired += list.length - kept.length;
      this.tensorsByTag.set(tag, kept);
    }
    if (expired > 0) this.warnings.push(`purged ${expired} events at step ${event.step}`);
  }
}

// ---------------------------------------------------------------- log dir

export interface FileInfo {
  name: string;
  bytes: number;
  records_read: number;
  read_problems: string[];
}

export interface RunData {
  files: FileInfo[];
  file_version: number | null;
  source_writer: string | null;
  plugins: Record<string, string[]>;
  scalars: Record<string, { points: Array<[number, number, number]>; tensor_dtype_after_compat: string }>;
  histograms: Record<string, Array<{ buckets: number[][]; step: number; total_count: number; wall_time: number }>>;
  text: Record<string, Array<{ shape: number[]; step: number; value: Json; wall_time: number }>>;
  images: Record<string, Array<{ width: string; height: string; images: Array<{ bytes: number; png_wh: [number, number]; sha256: string }>; step: number; wall_time: number }>>;
  hparams_plugin_data: Record<string, Record<string, Json>>;
}

export interface LogDirData {
  runs: Record<string, RunData>;
  hparams_dashboard: HparamsDashboard | null;
}

const DTYPE_NAMES: Record<number, string> = { 1: 'DT_FLOAT', 2: 'DT_DOUBLE', 3: 'DT_INT32', 7: 'DT_STRING', 9: 'DT_INT64', 10: 'DT_BOOL' };

function isEventFile(name: string): boolean {
  return name.includes('tfevents') && !name.endsWith('.profile-empty');
}

/** Folders under `dir` (itself included) that directly hold an event file, as run names ('.' for dir). */
export function listRuns(dir: string): string[] {
  const runs: string[] = [];
  const walk = (d: string): void => {
    const entries = fs.readdirSync(d, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && isEventFile(e.name))) {
      const rel = path.relative(dir, d);
      runs.push(rel === '' ? '.' : rel.split(path.sep).join('/'));
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(dir);
  return runs.sort();
}

/** Numbers of a tensor, row-major. */
export function tensorNumbers(t: TensorProto): number[] {
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (t.tensorContent !== undefined) {
    const c = t.tensorContent;
    const view = new DataView(c.buffer, c.byteOffset, c.byteLength);
    const out: number[] = [];
    if (t.dtype === DT_FLOAT) for (let i = 0; i < c.byteLength; i += 4) out.push(view.getFloat32(i, true));
    else if (t.dtype === DT_DOUBLE) for (let i = 0; i < c.byteLength; i += 8) out.push(view.getFloat64(i, true));
    else throw new Error(`tensor_content of dtype ${t.dtype} not supported`);
    return out;
  }
  const vals = t.dtype === DT_DOUBLE ? t.doubleVal : t.dtype === DT_FLOAT ? t.floatVal : t.intVal;
  // A single value fills the whole shape (TensorProto's convention).
  if (vals.length === 1 && size > 1) return new Array<number>(size).fill(vals[0]!);
  return vals;
}

function pngSize(png: Uint8Array): [number, number] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return [view.getUint32(16), view.getUint32(20)];
}

function reshapeStrings(strings: string[], shape: number[]): Json {
  if (shape.length === 0) return strings[0] ?? '';
  if (shape.length === 1) return strings;
  const [rows, cols] = [shape[0]!, shape.slice(1).reduce((a, b) => a * b, 1)];
  const out: Json[] = [];
  for (let r = 0; r < rows; r++) out.push(strings.slice(r * cols, (r + 1) * cols));
  return out;
}

/** Reads a log dir the way TensorBoard's Python loader and data provider do, keeping every point. */
export function readLogDir(dir: string): LogDirData {
  const runs: Record<string, RunData> = {};
  const decoder = new TextDecoder();
  for (const run of listRuns(dir)) {
    const runDir = run === '.' ? dir : path.join(dir, run);
    const acc = new RunAccumulator();
    const files: FileInfo[] = [];
    for (const name of fs.readdirSync(runDir).filter(isEventFile).sort()) {
      const buf = fs.readFileSync(path.join(runDir, name));
      const { records, problem } = readRecords(buf);
      for (const rec of records) acc.process(decodeEvent(rec));
      files.push({ name, bytes: buf.length, records_read: records.length, read_problems: problem === undefined ? [] : [problem] });
    }
    const data: RunData = {
      files,
      file_version: acc.fileVersion ?? null,
      source_writer: acc.sourceWriter ?? null,
      plugins: {},
      scalars: {},
      histograms: {},
      text: {},
      images: {},
      hparams_plugin_data: {},
    };
    for (const [tag, meta] of [...acc.summaryMetadata].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (meta.pluginName === '') continue;
      (data.plugins[meta.pluginName] ??= []).push(tag);
      const points = acc.tensorsByTag.get(tag) ?? [];
      switch (meta.pluginName) {
        case 'scalars':
          data.scalars[tag] = {
            points: points.map((p) => [p.step, tensorNumbers(p.tensor)[0]!, p.wallTime]),
            tensor_dtype_after_compat: DTYPE_NAMES[points[0]?.tensor.dtype ?? 0] ?? 'unknown',
          };
          break;
        case 'histograms':
          data.histograms[tag] = points.map((p) => {
            const nums = tensorNumbers(p.tensor);
            const buckets: number[][] = [];
            for (let i = 0; i + 2 < nums.length; i += 3) buckets.push([nums[i]!, nums[i + 1]!, nums[i + 2]!]);
            return { buckets, step: p.step, total_count: buckets.reduce((s, b) => s + b[2]!, 0), wall_time: p.wallTime };
          });
          break;
        case 'text':
          data.text[tag] = points.map((p) => ({
            shape: p.tensor.shape,
            step: p.step,
            value: reshapeStrings(p.tensor.stringVal.map((s) => decoder.decode(s)), p.tensor.shape),
            wall_time: p.wallTime,
          }));
          break;
        case 'images':
          data.images[tag] = points.map((p) => ({
            width: decoder.decode(p.tensor.stringVal[0]),
            height: decoder.decode(p.tensor.stringVal[1]),
            images: p.tensor.stringVal.slice(2).map((png) => ({ bytes: png.length, png_wh: pngSize(png), sha256: createHash('sha256').update(png).digest('hex') })),
            step: p.step,
            wall_time: p.wallTime,
          }));
          break;
        case 'hparams':
          data.hparams_plugin_data[tag] = decodeHparamsPluginData(meta.content);
          break;
        default:
          break;
      }
    }
    runs[run] = data;
  }
  return { runs, hparams_dashboard: hparamsDashboard(runs) };
}

// ---------------------------------------------------------------- hparams backend

export interface HparamsDashboard {
  experiment: Record<string, Json>;
  session_groups: { session_groups: Array<Record<string, Json>>; total_size: number };
}

function metricName(m: Json): { group: string; tag: string } {
  const n = (m as Record<string, Json>)['name'] as Record<string, Json>;
  return { group: (n['group'] as string | undefined) ?? '', tag: n['tag'] as string };
}

/** What the hparams plugin's get_experiment and list_session_groups answer (all statuses allowed). */
export function hparamsDashboard(runs: Record<string, RunData>): HparamsDashboard | null {
  const runNames = Object.keys(runs);
  let experiment: Record<string, Json> | undefined;
  for (const run of runNames) {
    const e = runs[run]!.hparams_plugin_data['_hparams_/experiment']?.['experiment'];
    if (e !== undefined) {
      experiment = structuredClone(e) as Record<string, Json>;
      break;
    }
  }
  const sessions = runNames.filter((r) => runs[r]!.hparams_plugin_data['_hparams_/session_start_info'] !== undefined);
  if (experiment === undefined) {
    if (sessions.length === 0) return null;
    experiment = inferExperiment(runs, sessions);
  }
  if (Array.isArray(experiment['hparam_infos'])) {
    experiment['hparam_infos'] = [...experiment['hparam_infos']].sort((a, b) => {
      const ha = a as Record<string, Json>;
      const hb = b as Record<string, Json>;
      const ka = `${ha['differs'] === true ? 0 : 1}${ha['name'] as string}`;
      const kb = `${hb['differs'] === true ? 0 : 1}${hb['name'] as string}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }
  const metricInfos = (experiment['metric_infos'] as Json[] | undefined) ?? [];
  const groups = new Map<string, Record<string, Json>>();
  for (const session of sessions) {
    const start = runs[session]!.hparams_plugin_data['_hparams_/session_start_info']!['session_start_info'] as Record<string, Json>;
    const end = runs[session]!.hparams_plugin_data['_hparams_/session_end_info']?.['session_end_info'] as Record<string, Json> | undefined;
    const metricValues: Json[] = [];
    for (const m of metricInfos) {
      const { group, tag } = metricName(m);
      const run = group === '' ? session : `${session}/${group}`;
      const pts = runs[run]?.scalars[tag]?.points;
      const last = pts?.at(-1);
      if (last === undefined) continue;
      metricValues.push({ name: (m as Record<string, Json>)['name']!, training_step: last[0], value: last[1], wall_time_secs: last[2] });
    }
    const s: Record<string, Json> = { name: session, metric_values: metricValues };
    if (start['start_time_secs'] !== undefined) s['start_time_secs'] = start['start_time_secs'];
    if (end?.['status'] !== undefined) s['status'] = end['status'];
    if (end?.['end_time_secs'] !== undefined) s['end_time_secs'] = end['end_time_secs'];
    if (metricValues.length === 0) delete s['metric_values'];
    const groupName = (start['group_name'] as string | undefined) || session;
    const g = groups.get(groupName);
    if (g === undefined) {
      const hparams: Record<string, Json> = {};
      for (const [k, v] of Object.entries((start['hparams'] as Record<string, Json> | undefined) ?? {})) {
        if (typeof v === 'number' && !Number.isFinite(v)) continue;
        hparams[k] = v;
      }
      groups.set(groupName, { name: groupName, hparams, sessions: [s] });
    } else (g['sessions'] as Json[]).push(s);
  }
  for (const g of groups.values()) {
    const ss = g['sessions'] as Array<Record<string, Json>>;
    ss.sort((a, b) => ((a['name'] as string) < (b['name'] as string) ? -1 : 1));
    const agg = new Map<string, { name: Json; total: number; count: number; step: number; wall: number }>();
    for (const s of ss) {
      for (const mv of (s['metric_values'] as Array<Record<string, Json>> | undefined) ?? []) {
        const key = JSON.stringify(mv['name']);
        const a = agg.get(key) ?? { name: mv['name']!, total: 0, count: 0, step: 0, wall: 0 };
        a.total += mv['value'] as number;
        a.count++;
        a.step += mv['training_step'] as number;
        a.wall += mv['wall_time_secs'] as number;
        agg.set(key, a);
      }
    }
    const values = [...agg.values()].map((a) => ({ name: a.name, training_step: Math.floor(a.step / a.count), value: a.total / a.count, wall_time_secs: a.wall / a.count }));
    if (values.length > 0) g['metric_values'] = values;
  }
  return { experiment, session_groups: { session_groups: [...groups.values()], total_size: groups.size } };
}

function inferExperiment(runs: Record<string, RunData>, sessions: string[]): Record<string, Json> {
  const values = new Map<string, Json[]>();
  for (const s of sessions) {
    const start = runs[s]!.hparams_plugin_data['_hparams_/session_start_info']!['session_start_info'] as Record<string, Json>;
    for (const [k, v] of Object.entries((start['hparams'] as Record<string, Json> | undefined) ?? {})) {
      const list = values.get(k) ?? [];
      list.push(v);
      values.set(k, list);
    }
  }
  const typeOf = (v: Json): string | undefined =>
    typeof v === 'number' ? 'DATA_TYPE_FLOAT64' : typeof v === 'string' ? 'DATA_TYPE_STRING' : typeof v === 'boolean' ? 'DATA_TYPE_BOOL' : undefined;
  const hparamInfos: Json[] = [];
  for (const [name, vs] of values) {
    let type: string | undefined;
    for (const v of vs) {
      const t = typeOf(v);
      if (t === undefined) continue;
      type = type === undefined || type === t ? t : 'DATA_TYPE_STRING';
    }
    if (type === undefined) continue;
    const info: Record<string, Json> = { name, type };
    if (type === 'DATA_TYPE_FLOAT64') {
      const nums = (vs.filter((v) => typeof v === 'number') as number[]).sort((a, b) => a - b);
      info['domain_interval'] = { min_value: nums[0]!, max_value: nums.at(-1)! };
      if (new Set(nums).size > 1) info['differs'] = true;
    } else {
      const distinct = [...new Set(vs.map((v) => (type === 'DATA_TYPE_STRING' ? String(v) : v)))];
      info['domain_discrete'] = distinct;
      if (distinct.length > 1) info['differs'] = true;
    }
    hparamInfos.push(info);
  }
  const metricNames = new Set<string>();
  for (const [run, data] of Object.entries(runs)) {
    let p: string = run;
    let session: string | undefined;
    for (;;) {
      if (sessions.includes(p)) {
        session = p;
        break;
      }
      if (p === '' || p === '.') break;
      const parent = path.posix.dirname(p);
      p = parent === '.' ? '' : parent;
    }
    if (session === undefined) continue;
    const group = run === session ? '' : path.posix.relative(session, run);
    for (const tag of Object.keys(data.scalars)) metricNames.add(JSON.stringify([tag, group]));
  }
  const metricInfos = [...metricNames].sort().map((s): Json => {
    const [tag, group] = JSON.parse(s) as [string, string];
    return { name: group === '' ? { tag } : { group, tag } };
  });
  const e: Record<string, Json> = {};
  if (hparamInfos.length > 0) e['hparam_infos'] = hparamInfos;
  if (metricInfos.length > 0) e['metric_infos'] = metricInfos;
  return e;
}
