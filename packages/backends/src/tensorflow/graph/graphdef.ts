/**
 * A minimal writer of TensorFlow's `GraphDef` protobuf (tensorflow/core/framework/graph.proto,
 * node_def.proto, attr_value.proto, tensor.proto, tensor_shape.proto): the nodes a traced step
 * needs, with the attribute kinds tfjs-node's `executeOp` passes. Field numbers are those of the
 * .proto files; only what is written here is supported.
 */

/** TensorFlow's `TF_DataType` codes used here. */
export const DT = { float: 1, int32: 3, bool: 10, int64: 9, resource: 20 } as const;

/** An attribute value, by kind (mirrors tfjs-node's `TF_ATTR_*` kinds). */
export type AttrValue =
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'int'; readonly value: number | readonly number[] }
  | { readonly kind: 'float'; readonly value: number | readonly number[] }
  | { readonly kind: 'bool'; readonly value: boolean | readonly boolean[] }
  | { readonly kind: 'type'; readonly value: number | readonly number[] }
  | { readonly kind: 'shape'; readonly value: readonly number[] | undefined }
  | { readonly kind: 'tensor'; readonly value: ConstTensor };

export interface ConstTensor {
  readonly dtype: number;
  readonly shape: readonly number[];
  /** Little-endian bytes of the values (row-major). */
  readonly content: Uint8Array;
}

export interface NodeDef {
  readonly name: string;
  readonly op: string;
  /** "node:index" data inputs, then "^node" control inputs. */
  readonly inputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
}

class Writer {
  private chunks: number[] = [];

  varint(v: number | bigint): this {
    let n = BigInt.asUintN(64, BigInt(v));
    while (n >= 0x80n) {
      this.chunks.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.chunks.push(Number(n));
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  bytesField(field: number, bytes: Uint8Array): this {
    this.tag(field, 2).varint(bytes.length);
    for (const b of bytes) this.chunks.push(b);
    return this;
  }

  stringField(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  varintField(field: number, v: number | bigint): this {
    return this.tag(field, 0).varint(v);
  }

  floatField(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    for (const x of b) this.chunks.push(x);
    return this;
  }

  messageField(field: number, build: (w: Writer) => void): this {
    const w = new Writer();
    build(w);
    return this.bytesField(field, w.finish());
  }

  packedVarints(field: number, values: readonly (number | boolean)[]): this {
    if (values.length === 0) return this;
    const w = new Writer();
    for (const v of values) w.varint(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    return this.bytesField(field, w.finish());
  }

  packedFloats(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    return this.bytesField(field, new Uint8Array(new Float32Array(values).buffer));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

function shapeProto(w: Writer, shape: readonly number[] | undefined): void {
  if (shape === undefined) {
    w.varintField(3, 1); // unknown_rank
    return;
  }
  for (const d of shape) w.messageField(2, (dim) => dim.varintField(1, d));
}

function attrValue(w: Writer, a: AttrValue): void {
  switch (a.kind) {
    case 'string':
      w.stringField(2, a.value);
      return;
    case 'int':
      if (typeof a.value === 'number') w.varintField(3, a.value);
      else w.messageField(1, (l) => l.packedVarints(3, a.value as readonly number[]));
      return;
    case 'float':
      if (typeof a.value === 'number') w.floatField(4, a.value);
      else w.messageField(1, (l) => l.packedFloats(4, a.value as readonly number[]));
      return;
    case 'bool':
      if (typeof a.value === 'boolean') w.varintField(5, a.value ? 1 : 0);
      else w.messageField(1, (l) => l.packedVarints(5, a.value as readonly boolean[]));
      return;
    case 'type':
      if (typeof a.value === 'number') w.varintField(6, a.value);
      else w.messageField(1, (l) => l.packedVarints(6, a.value as readonly number[]));
      return;
    case 'shape':
      w.messageField(7, (s) => shapeProto(s, a.value));
      return;
    case 'tensor': {
      const t = a.value;
      w.messageField(8, (tp) => {
        tp.varintField(1, t.dtype);
        tp.messageField(2, (s) => shapeProto(s, t.shape));
        tp.bytesField(4, t.content);
      });
      return;
    }
  }
}

/** Serializes a GraphDef of `nodes` (with `versions.producer` set, so that current op semantics apply). */
export function encodeGraphDef(nodes: readonly NodeDef[], producer = 1800): Uint8Array {
  const w = new Writer();
  for (const n of nodes) {
    w.messageField(1, (nd) => {
      nd.stringField(1, n.name).stringField(2, n.op);
      for (const i of n.inputs) nd.stringField(3, i);
      for (const [key, value] of Object.entries(n.attrs)) {
        nd.messageField(5, (e) => e.stringField(1, key).messageField(2, (v) => attrValue(v, value)));
      }
    });
  }
  w.messageField(4, (v) => v.varintField(1, producer));
  return w.finish();
}
