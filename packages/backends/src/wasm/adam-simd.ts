/*
 * FlintApplyAdam's loop as a tiny WebAssembly module with 128-bit SIMD (four float32 lanes at a time),
 * its bytes written here by hand: no toolchain at build or run time. The module imports tfjs-wasm's
 * own `WebAssembly.Memory`, so it works on the same heap as the tensors and the moments, addressed by
 * byte offsets (what `_malloc` returns and tfjs keeps as `memoryOffset`). Its one function:
 *
 *   adam(p, g, m, v, out, n, b1, b2, alpha, eps)      i32 byte offsets, n floats, f32 scalars
 *     for each i < n:  m[i] += (g[i] - m[i]) * b1
 *                      v[i] += (g[i] * g[i] - v[i]) * b2
 *                      out[i] = p[i] - alpha * m[i] / (sqrt(v[i]) + eps)
 *
 * float32x4 over the first n - n % 4 floats, then a scalar float32 loop over the rest. Every
 * operation rounds to float32 as tfjs's own kernels do (WebAssembly has no fused multiply-add, and
 * its sqrt and division are correctly rounded), so the numbers do not depend on the machine, and
 * they are those of core's tfjs-ops Adam (the same operations in the same order) bit for bit.
 *
 * To read the bytes as text: write `adamModuleBytes(false)` to a file and run wabt's `wasm2wat` on it.
 */

// ---------------------------------------------------------------------------------------------
// The WebAssembly API of the runtime (our lib settings carry no WebAssembly types).

/** A `WebAssembly.Memory`. */
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
type WasmModuleHandle = { readonly __brand: 'WebAssembly.Module' };
interface WebAssemblyApiShape {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModuleHandle;
  Instance: new (module: WasmModuleHandle, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: abstract new (...args: never[]) => WasmMemory;
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly?: WebAssemblyApiShape }).WebAssembly;

// ---------------------------------------------------------------------------------------------
// Encoding helpers.

/** Unsigned LEB128: 7 bits per byte, low bits first, the high bit set on every byte but the last. */
function u32(value: number): number[] {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    out.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 (the immediate of `i32.const`). */
function s32(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** A UTF-8 name, length first. */
function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...u32(bytes.length), ...bytes];
}

/** A vector: the count, then the items. */
function vec(items: readonly number[][]): number[] {
  return [...u32(items.length), ...items.flat()];
}

/** A section: its id, its size in bytes, its contents. */
function section(id: number, contents: readonly number[]): number[] {
  return [id, ...u32(contents.length), ...contents];
}

// ---------------------------------------------------------------------------------------------
// The opcodes used (WebAssembly core spec 2.0, section 5.4; SIMD instructions are 0xFD then a u32).

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const FUNC_TYPE = 0x60;
const EMPTY_BLOCK = 0x40;

const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  f32Load: 0x2a,
  f32Store: 0x38,
  i32Const: 0x41,
  i32LtU: 0x49,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32And: 0x71,
  i32Shl: 0x74,
  f32Sqrt: 0x91,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
} as const;

const SIMD_PREFIX = 0xfd;
const simd = {
  v128Load: 0x00,
  v128Store: 0x0b,
  f32x4Splat: 0x13,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
} as const;

/** A memory access's immediate: log2 of the alignment promised (a hint only), then the offset. */
function memarg(log2Align: number, offset = 0): number[] {
  return [...u32(log2Align), ...u32(offset)];
}

const get = (local: number) => [op.localGet, ...u32(local)];
const set = (local: number) => [op.localSet, ...u32(local)];
const tee = (local: number) => [op.localTee, ...u32(local)];
const i32Const = (value: number) => [op.i32Const, ...s32(value)];
const simdOp = (code: number) => [SIMD_PREFIX, ...u32(code)];
// Float32Arrays on the heap are 4-byte aligned: promise that much, for both widths.
const v128Load = () => [...simdOp(simd.v128Load), ...memarg(2)];
const v128Store = () => [...simdOp(simd.v128Store), ...memarg(2)];
const f32Load = () => [op.f32Load, ...memarg(2)];
const f32Store = () => [op.f32Store, ...memarg(2)];

// ---------------------------------------------------------------------------------------------
// The function.

// Parameters (local indices 0-9), then the locals declared below.
const P = 0; // byte offsets: parameter, gradient, moments, output
const G = 1;
const M = 2;
const V = 3;
const OUT = 4;
const N = 5; // floats
const B1 = 6; // 1 - beta1
const B2 = 7; // 1 - beta2
const ALPHA = 8;
const EPS = 9;
const I = 10; // i32: the byte index into every array
const END4 = 11; // i32: bytes covered by whole vectors
const END = 12; // i32: bytes of the arrays
const VB1 = 13; // v128: the scalars splatted to four lanes
const VB2 = 14;
const VALPHA = 15;
const VEPS = 16;
const GI = 17; // v128, then f32 in the tail: g[i], m[i], v[i]
const MI = 18;
const VI = 19;
const GS = 20;
const MS = 21;
const VS = 22;
const LOCALS: number[][] = [
  [...u32(3), I32],
  [...u32(7), V128],
  [...u32(3), F32],
];

/** `base + i`: the address of element i of the array at byte offset `base`. */
const at = (base: number) => [...get(base), ...get(I), op.i32Add];

/**
 * One step of the update over the element(s) at byte index i, with the loads, stores and arithmetic
 * of one width: the same expression for 4 lanes and for 1.
 */
function update(w: {
  load: () => number[];
  store: () => number[];
  add: number[];
  sub: number[];
  mul: number[];
  div: number[];
  sqrt: number[];
  g: number;
  m: number;
  v: number;
  b1: number;
  b2: number;
  alpha: number;
  eps: number;
}): number[] {
  return [
    // g = G[i]
    ...at(G), ...w.load(), ...set(w.g),
    // m = M[i] + (g - M[i]) * b1; M[i] = m
    ...at(M), ...w.load(), ...tee(w.m),
    ...get(w.g), ...get(w.m), ...w.sub, ...get(w.b1), ...w.mul, ...w.add, ...set(w.m),
    ...at(M), ...get(w.m), ...w.store(),
    // v = V[i] + (g * g - V[i]) * b2; V[i] = v
    ...at(V), ...w.load(), ...tee(w.v),
    ...get(w.g), ...get(w.g), ...w.mul, ...get(w.v), ...w.sub, ...get(w.b2), ...w.mul, ...w.add, ...set(w.v),
    ...at(V), ...get(w.v), ...w.store(),
    // OUT[i] = P[i] - alpha * m / (sqrt(v) + eps)
    ...at(OUT),
    ...at(P), ...w.load(),
    ...get(w.alpha), ...get(w.m), ...w.mul, ...get(w.v), ...w.sqrt, ...get(w.eps), ...w.add, ...w.div,
    ...w.sub, ...w.store(),
  ];
}

/** `while (i < end) { body; i += stride }`, as `block (br_if out when i >= end) loop body ... br_if loop end end`. */
function loopTo(end: number, stride: number, body: number[]): number[] {
  return [
    op.block, EMPTY_BLOCK,
    ...get(I), ...get(end), op.i32GeU, op.brIf, ...u32(0),
    op.loop, EMPTY_BLOCK,
    ...body,
    ...get(I), ...i32Const(stride), op.i32Add, ...tee(I),
    ...get(end), op.i32LtU, op.brIf, ...u32(0),
    op.end,
    op.end,
  ];
}

function adamBody(): number[] {
  const vector = update({
    load: v128Load,
    store: v128Store,
    add: simdOp(simd.f32x4Add),
    sub: simdOp(simd.f32x4Sub),
    mul: simdOp(simd.f32x4Mul),
    div: simdOp(simd.f32x4Div),
    sqrt: simdOp(simd.f32x4Sqrt),
    g: GI, m: MI, v: VI, b1: VB1, b2: VB2, alpha: VALPHA, eps: VEPS,
  });
  const scalar = update({
    load: f32Load,
    store: f32Store,
    add: [op.f32Add],
    sub: [op.f32Sub],
    mul: [op.f32Mul],
    div: [op.f32Div],
    sqrt: [op.f32Sqrt],
    g: GS, m: MS, v: VS, b1: B1, b2: B2, alpha: ALPHA, eps: EPS,
  });
  const splat = (from: number, to: number) => [...get(from), ...simdOp(simd.f32x4Splat), ...set(to)];
  return [
    ...splat(B1, VB1), ...splat(B2, VB2), ...splat(ALPHA, VALPHA), ...splat(EPS, VEPS),
    // end4 = (n & ~3) * 4; end = n * 4; i = 0 (locals start at zero)
    ...get(N), ...i32Const(-4), op.i32And, ...i32Const(2), op.i32Shl, ...set(END4),
    ...get(N), ...i32Const(2), op.i32Shl, ...set(END),
    ...loopTo(END4, 16, vector),
    ...loopTo(END, 4, scalar),
    op.end,
  ];
}

/**
 * The module's bytes. `shared`: import a shared memory (the threaded build's, which emscripten creates
 * with `shared: true` and a maximum of 65536 pages; an import must declare shared and a maximum to
 * accept it, and 65536 pages accepts any), else an unshared one of any size.
 */
export function adamModuleBytes(shared: boolean): Uint8Array {
  const params = [I32, I32, I32, I32, I32, I32, F32, F32, F32, F32];
  const memoryLimits = shared ? [0x03, ...u32(0), ...u32(65536)] : [0x00, ...u32(0)];
  const body = [...vec(LOCALS), ...adamBody()];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, // "\0asm"
    0x01, 0x00, 0x00, 0x00, // version 1
    ...section(1, vec([[FUNC_TYPE, ...u32(params.length), ...params, ...u32(0)]])), // types: (params) -> ()
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...memoryLimits]])), // import env.memory
    ...section(3, vec([u32(0)])), // function 0 has type 0
    ...section(7, vec([[...name('adam'), 0x00, ...u32(0)]])), // export function 0 as "adam"
    ...section(10, vec([[...u32(body.length), ...body]])), // its code
  ];
  return Uint8Array.from(bytes);
}

// ---------------------------------------------------------------------------------------------
// Instances, one per tfjs-wasm memory.

/** The exported function: byte offsets, the float count, the step's scalars. */
export type AdamSimdLoop = (
  p: number,
  g: number,
  m: number,
  v: number,
  out: number,
  n: number,
  b1: number,
  b2: number,
  alpha: number,
  eps: number,
) => void;

/** The compiled module per kind of memory; null where this runtime rejects it (no SIMD, or no shared memories). */
const compiled = new Map<boolean, WasmModuleHandle | null>();
/** The loop per memory; null where instantiating failed (the memory's limits did not fit the import). */
const instances = new WeakMap<WasmMemory, AdamSimdLoop | null>();

function compiledFor(shared: boolean): WasmModuleHandle | null {
  let module = compiled.get(shared);
  if (module === undefined) {
    const bytes = adamModuleBytes(shared);
    module = WebAssemblyApi !== undefined && WebAssemblyApi.validate(bytes) ? new WebAssemblyApi.Module(bytes) : null;
    compiled.set(shared, module);
  }
  return module;
}

/**
 * The SIMD loop working on `memory`, or undefined where it cannot run: `memory` is not a
 * `WebAssembly.Memory`, or this runtime rejects the module (no WebAssembly SIMD; no shared memories,
 * for a shared one). The module is compiled once per kind of memory (about 400 bytes,
 * synchronously) and instantiated once per memory.
 */
export function adamSimdLoop(memory: unknown): AdamSimdLoop | undefined {
  if (WebAssemblyApi === undefined || !(memory instanceof WebAssemblyApi.Memory)) return undefined;
  const known = instances.get(memory);
  if (known !== undefined) return known ?? undefined;
  const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
  const module = compiledFor(shared);
  let loop: AdamSimdLoop | null = null;
  if (module !== null) {
    try {
      loop = new WebAssemblyApi.Instance(module, { env: { memory } }).exports['adam'] as AdamSimdLoop;
    } catch {
      // A LinkError: this memory does not fit the import. The JavaScript loop runs instead.
    }
  }
  instances.set(memory, loop);
  return loop ?? undefined;
}
