import { MisconfigurationError } from './errors.js';

/**
 * Seeding. `seedEverything(seed)` replaces `Math.random` with a seeded sfc32 generator: tfjs draws
 * the seeds of its weight initializers, `randomNormal`/`randomUniform` and dropout masks from
 * `Math.random` when none is given, so one call makes a run reproducible on the same backend.
 * Data shuffling uses its own generators (`createRng`, `permutation`, `deriveSeed`), so the order
 * of the data never depends on how many random numbers the model drew.
 */

const UINT32 = 0x1_0000_0000;
const MAX_UINT32 = 0xffff_ffff;

/** Plain-JSON state of a generator: store it in a checkpoint, give it back to `setRngState`. */
export interface RngState {
  readonly algorithm: 'sfc32';
  /** The four 32-bit words of the sfc32 state, as unsigned integers. */
  readonly state: readonly [number, number, number, number];
}

/** A seeded pseudo-random generator (sfc32), independent of `Math.random`. */
export interface Rng {
  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** An unsigned 32-bit integer in [0, 2^32 - 1]. */
  nextUint32(): number;
  /** The generator's current state; `createRngFromState(state)` continues the same sequence. */
  state(): RngState;
}

/** Throws a MisconfigurationError unless `value` is an integer in [0, 2^32 - 1]. */
function checkUint32(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
    throw new MisconfigurationError(
      `${what} must be an integer in [0, ${MAX_UINT32}] (received ${describeValue(value)}).`,
    );
  }
  return value;
}

function describeValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === undefined) return 'undefined';
  try {
    const s = JSON.stringify(value) ?? String(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(value);
  }
}

/** splitmix32: spreads one 32-bit seed over the four words of the sfc32 state. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

class Sfc32 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(words: readonly [number, number, number, number]) {
    [this.a, this.b, this.c, this.d] = words;
  }

  static fromSeed(seed: number): Sfc32 {
    const mix = splitmix32(seed);
    const rng = new Sfc32([mix(), mix(), mix(), mix()]);
    // Discard the first outputs, as the sfc32 author recommends, so close seeds diverge at once.
    for (let i = 0; i < 12; i++) rng.nextUint32();
    return rng;
  }

  nextUint32(): number {
    this.d = (this.d + 1) | 0;
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.nextUint32() / UINT32;
  }

  state(): RngState {
    return { algorithm: 'sfc32', state: [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0] };
  }
}

/** Creates a seeded generator, independent of the global one. `seed` is an integer in [0, 2^32 - 1]. */
export function createRng(seed: number): Rng {
  return Sfc32.fromSeed(checkUint32('createRng: seed', seed));
}

/** Recreates a generator from `rng.state()`: it continues exactly where that generator was. */
export function createRngFromState(state: RngState): Rng {
  return new Sfc32(checkRngState('createRngFromState: state', state));
}

function checkRngState(what: string, state: unknown): [number, number, number, number] {
  const valid = `{ algorithm: 'sfc32', state: [four integers in [0, ${MAX_UINT32}]] } as returned by getRngState()`;
  if (state === null || typeof state !== 'object') {
    throw new MisconfigurationError(`${what} must be ${valid} (received ${describeValue(state)}).`);
  }
  const { algorithm, state: words } = state as { algorithm?: unknown; state?: unknown };
  const keys = Object.keys(state).filter((k) => k !== 'algorithm' && k !== 'state');
  if (
    algorithm !== 'sfc32' ||
    keys.length > 0 ||
    !Array.isArray(words) ||
    words.length !== 4 ||
    !words.every((w) => typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= MAX_UINT32)
  ) {
    throw new MisconfigurationError(`${what} must be ${valid} (received ${describeValue(state)}).`);
  }
  return [words[0], words[1], words[2], words[3]] as [number, number, number, number];
}

let globalSeed: number | undefined;
let globalRng: Sfc32 | undefined;

function installGlobal(rng: Sfc32): void {
  globalRng = rng;
  Math.random = () => rng.next();
}

/**
 * Seeds every source of randomness a Flint run uses: replaces `Math.random` with a seeded
 * generator (tfjs initializers, random ops and dropout draw their seeds from it), and becomes the
 * default seed of `DataLoader` shuffling and `randomSplit`. The same seed gives the same run on the
 * same backend. Returns the seed.
 */
export function seedEverything(seed: number): number {
  checkUint32('seedEverything: seed', seed);
  globalSeed = seed;
  installGlobal(Sfc32.fromSeed(seed));
  return seed;
}

/** The seed given to `seedEverything`, or undefined when it was never called. */
export function getGlobalSeed(): number | undefined {
  return globalSeed;
}

/**
 * The state of the global generator behind `Math.random` (plain JSON, for checkpoints), or
 * undefined when neither `seedEverything` nor `setRngState` was called.
 */
export function getRngState(): RngState | undefined {
  return globalRng?.state();
}

/**
 * Restores the global generator from `getRngState()`: the following `Math.random()` values are
 * those that followed when the state was taken. Installs the seeded `Math.random` if needed.
 */
export function setRngState(state: RngState): void {
  installGlobal(new Sfc32(checkRngState('setRngState: state', state)));
}

/**
 * A random permutation of 0..n-1 (Fisher–Yates driven by `createRng(seed)`): the same `n` and
 * `seed` always give the same order.
 */
export function permutation(n: number, seed: number): Int32Array {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0x7fff_ffff) {
    throw new MisconfigurationError(`permutation: n must be an integer in [0, ${0x7fff_ffff}] (received ${describeValue(n)}).`);
  }
  const rng = Sfc32.fromSeed(checkUint32('permutation: seed', seed));
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}

/**
 * Mixes integers (a seed, an epoch, ...) into one 32-bit seed (MurmurHash3 over their 32-bit
 * words). `deriveSeed(seed, epoch)` gives each epoch its own shuffle without any state to keep.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x2545f491;
  let words = 0;
  const mixWord = (word: number): void => {
    let k = Math.imul(word, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    words++;
  };
  parts.forEach((part, i) => {
    if (typeof part !== 'number' || !Number.isSafeInteger(part)) {
      throw new MisconfigurationError(
        `deriveSeed: part ${i} must be a safe integer (received ${describeValue(part)}); parts were [${parts.map(describeValue).join(', ')}].`,
      );
    }
    mixWord(part >>> 0);
    mixWord(Math.floor(part / UINT32) >>> 0);
  });
  h ^= words * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
