import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

// Encoders for the few TensorBoard protos Flint writes, by field number (see docs/loggers/tensorboard-logger.md and
// TensorBoard's event.proto, summary.proto, tensor.proto and plugins/hparams/*.proto).

export const DataType = { DT_FLOAT: 1, DT_DOUBLE: 2, DT_STRING: 7 } as const;

export interface TensorInput {
  readonly dtype: number;
  /** Dimension sizes; empty for a scalar. */
  readonly shape: readonly number[];
  readonly tensorContent?: Uint8Array;
  readonly stringVal?: readonly Uint8Array[];
}

export interface MetadataInput {
  readonly pluginName: string;
  readonly content?: Uint8Array;
  readonly displayName?: string;
  readonly description?: string;
}

export interface ValueInput {
  readonly tag: string;
  /** Legacy scalar (`simple_value`, float32). */
  readonly simpleValue?: number;
  readonly tensor?: TensorInput;
  readonly metadata?: MetadataInput;
}

export type SessionStatus = 'START' | 'STOP' | 'CHECKPOINT';
const SESSION_STATUS: Record<SessionStatus, number> = { START: 1, STOP: 2, CHECKPOINT: 3 };

export interface EventInput {
  readonly wallTime: number;
  readonly step?: number;
  readonly fileVersion?: string;
  readonly sourceWriter?: string;
  readonly values?: readonly ValueInput[];
  readonly sessionLog?: { readonly status: SessionStatus; readonly msg?: string };
}

function writeTensor(w: BinaryWriter, t: TensorInput): void {
  w.tag(1, WireType.Varint).int32(t.dtype);
  w.tag(2, WireType.LengthDelimited).fork();
  for (const size of t.shape) {
    w.tag(2, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Varint).int64(size);
    w.join();
  }
  w.join();
  if (t.tensorContent !== undefined) w.tag(4, WireType.LengthDelimited).bytes(t.tensorContent);
  for (const s of t.stringVal ?? []) w.tag(8, WireType.LengthDelimited).bytes(s);
}

function writeMetadata(w: BinaryWriter, m: MetadataInput): void {
  w.tag(1, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string(m.pluginName);
  if (m.content !== undefined && m.content.length > 0) w.tag(2, WireType.LengthDelimited).bytes(m.content);
  w.join();
  if (m.displayName !== undefined) w.tag(2, WireType.LengthDelimited).string(m.displayName);
  if (m.description !== undefined) w.tag(3, WireType.LengthDelimited).string(m.description);
}

/** Serializes a `tensorboard.Event`. */
export function encodeEvent(e: EventInput): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.Bit64).double(e.wallTime);
  if (e.step !== undefined && e.step !== 0) w.tag(2, WireType.Varint).int64(e.step);
  if (e.fileVersion !== undefined) w.tag(3, WireType.LengthDelimited).string(e.fileVersion);
  if (e.values !== undefined) {
    w.tag(5, WireType.LengthDelimited).fork();
    for (const v of e.values) {
      w.tag(1, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(v.tag);
      // float32 as TF stores it; a finite double beyond float32's range becomes ±Infinity.
      if (v.simpleValue !== undefined) w.tag(2, WireType.Bit32).float(Math.fround(v.simpleValue));
      if (v.tensor !== undefined) {
        w.tag(8, WireType.LengthDelimited).fork();
        writeTensor(w, v.tensor);
        w.join();
      }
      if (v.metadata !== undefined) {
        w.tag(9, WireType.LengthDelimited).fork();
        writeMetadata(w, v.metadata);
        w.join();
      }
      w.join();
    }
    w.join();
  }
  if (e.sessionLog !== undefined) {
    w.tag(7, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Varint).int32(SESSION_STATUS[e.sessionLog.status]);
    if (e.sessionLog.msg !== undefined) w.tag(3, WireType.LengthDelimited).string(e.sessionLog.msg);
    w.join();
  }
  if (e.sourceWriter !== undefined) {
    w.tag(10, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(e.sourceWriter);
    w.join();
  }
  return w.finish();
}

// ---- hparams plugin (tensorboard/plugins/hparams/api.proto, plugin_data.proto) ----

/** A hyper-parameter value as google.protobuf.Value: number, string or bool. */
export type HParamValue = number | string | boolean;

export type HParamType = 'STRING' | 'BOOL' | 'FLOAT64';
const HPARAM_TYPE: Record<HParamType, number> = { STRING: 1, BOOL: 2, FLOAT64: 3 };

export interface HParamInfoInput {
  readonly name: string;
  readonly type: HParamType;
  readonly domainDiscrete?: readonly HParamValue[];
  readonly domainInterval?: { readonly min: number; readonly max: number };
}

export interface MetricInfoInput {
  readonly tag: string;
  readonly group?: string;
  readonly displayName?: string;
}

export type SessionEndStatus = 'SUCCESS' | 'FAILURE' | 'RUNNING';
const SESSION_END_STATUS: Record<SessionEndStatus, number> = { SUCCESS: 1, FAILURE: 2, RUNNING: 3 };

function writeProtobufValue(w: BinaryWriter, v: HParamValue): void {
  if (typeof v === 'number') w.tag(2, WireType.Bit64).double(v);
  else if (typeof v === 'string') w.tag(3, WireType.LengthDelimited).string(v);
  else w.tag(4, WireType.Varint).bool(v);
}

function pluginData(field: number, body: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter();
  // version = 0 is the default: not written.
  w.tag(field, WireType.LengthDelimited).fork();
  body(w);
  w.join();
  return w.finish();
}

/** HParamsPluginData{experiment}. */
export function encodeExperiment(hparams: readonly HParamInfoInput[], metrics: readonly MetricInfoInput[], timeCreatedSecs: number): Uint8Array {
  return pluginData(2, (w) => {
    w.tag(3, WireType.Bit64).double(timeCreatedSecs);
    for (const h of hparams) {
      w.tag(4, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(h.name);
      w.tag(4, WireType.Varint).int32(HPARAM_TYPE[h.type]);
      if (h.domainDiscrete !== undefined) {
        w.tag(5, WireType.LengthDelimited).fork();
        for (const v of h.domainDiscrete) {
          w.tag(1, WireType.LengthDelimited).fork();
          writeProtobufValue(w, v);
          w.join();
        }
        w.join();
      } else if (h.domainInterval !== undefined) {
        w.tag(6, WireType.LengthDelimited).fork();
        w.tag(1, WireType.Bit64).double(h.domainInterval.min);
        w.tag(2, WireType.Bit64).double(h.domainInterval.max);
        w.join();
      }
      w.join();
    }
    for (const m of metrics) {
      w.tag(5, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).fork();
      if (m.group !== undefined && m.group !== '') w.tag(1, WireType.LengthDelimited).string(m.group);
      w.tag(2, WireType.LengthDelimited).string(m.tag);
      w.join();
      if (m.displayName !== undefined) w.tag(3, WireType.LengthDelimited).string(m.displayName);
      w.join();
    }
  });
}

/** HParamsPluginData{session_start_info}. */
export function encodeSessionStartInfo(hparams: ReadonlyMap<string, HParamValue>, startTimeSecs: number, groupName?: string): Uint8Array {
  return pluginData(3, (w) => {
    for (const [key, value] of hparams) {
      w.tag(1, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(key);
      w.tag(2, WireType.LengthDelimited).fork();
      writeProtobufValue(w, value);
      w.join();
      w.join();
    }
    if (groupName !== undefined) w.tag(4, WireType.LengthDelimited).string(groupName);
    w.tag(5, WireType.Bit64).double(startTimeSecs);
  });
}

/** HParamsPluginData{session_end_info}. */
export function encodeSessionEndInfo(status: SessionEndStatus, endTimeSecs: number): Uint8Array {
  return pluginData(4, (w) => {
    w.tag(1, WireType.Varint).int32(SESSION_END_STATUS[status]);
    w.tag(2, WireType.Bit64).double(endTimeSecs);
  });
}
