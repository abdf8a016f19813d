/**
 * The JavaScript heap between training epochs (Trainer option `releaseHeap`).
 *
 * An eager training step leaves garbage in V8's old generation: tfjs's gradient code keeps some of
 * a step's objects alive across a young-generation collection, and they die only at a full one. V8
 * runs a full collection late on a machine with plenty of memory, so a process's resident memory
 * rises for many epochs and then falls (on the native backend, MLP-S batch 64: 443 -> 522 MB over 18
 * epochs, back to 407 MB at V8's first full collection; the same in a plain tfjs loop without
 * Flint). Between epochs, when the old generation has grown by 8 MB (or 10%) since the last full
 * collection, the Trainer asks V8 for one, at most 2% of the wall-clock time; a fit whose heap does
 * not grow never pays for it.
 */

/** Growth the old generation must show before a collection: this many bytes, or this share of the heap after the last one, whichever is more. */
export const RELEASE_MIN_GROWTH_BYTES = 8 * 1024 * 1024;
export const RELEASE_MIN_GROWTH_SHARE = 0.1;

/**
 * @internal The most of the wall-clock time the Trainer's collections may take: after a collection
 * of d ms, the next waits until d / maxTimeShare ms have passed (in this process, across fits). A
 * process with a large heap, where a collection is slow, and short epochs collects seldom. Tests
 * that need a collection at every qualifying epoch set it to 1.
 */
export const heapReleaseLimits: { maxTimeShare: number } = { maxTimeShare: 0.02 };

/** The Trainer's last collection in this process: when it ended and how long it took (ms). */
let lastCollection: { endedAt: number; ms: number } | undefined;

interface NodeBuiltins {
  v8: { getHeapSpaceStatistics(): { space_name: string; space_used_size: number }[]; setFlagsFromString(flags: string): void };
  vm: { runInNewContext(code: string): unknown };
}

/** node:v8 and node:vm where the runtime is Node (20.16+), else undefined (a browser: nothing to do). */
function nodeBuiltins(): NodeBuiltins | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof proc?.getBuiltinModule !== 'function') return undefined;
  return { v8: proc.getBuiltinModule('node:v8') as NodeBuiltins['v8'], vm: proc.getBuiltinModule('node:vm') as NodeBuiltins['vm'] };
}

let fullCollection: (() => void) | undefined;

/** V8's full collection: the process's own `gc` when node ran with --expose-gc, else one exposed to a fresh context. */
function collector(node: NodeBuiltins): () => void {
  if (fullCollection !== undefined) return fullCollection;
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') {
    fullCollection = own as () => void;
  } else {
    // The flag makes `gc` a global of contexts created after it; the main context is unchanged.
    node.v8.setFlagsFromString('--expose-gc');
    fullCollection = node.vm.runInNewContext('gc') as () => void;
  }
  return fullCollection;
}

export interface HeapRelease {
  /** Called before each training epoch but the first of a fit; returns whether it ran a full collection. */
  betweenEpochs(): boolean;
}

/** A release for one fit; a no-op when disabled or outside Node. */
export function heapRelease(enabled: boolean): HeapRelease {
  const node = enabled ? nodeBuiltins() : undefined;
  if (node === undefined) return { betweenEpochs: () => false };
  // The old generation only: the young one fills and empties many times an epoch.
  const used = (): number => node.v8.getHeapSpaceStatistics().reduce((sum, s) => (s.space_name.startsWith('new_') ? sum : sum + s.space_used_size), 0);
  let base = used();
  return {
    betweenEpochs() {
      const now = used();
      // V8 collected by itself since: the heap is smaller than after our last collection.
      if (now < base) {
        base = now;
        return false;
      }
      if (now - base < Math.max(RELEASE_MIN_GROWTH_BYTES, base * RELEASE_MIN_GROWTH_SHARE)) return false;
      const started = performance.now();
      if (lastCollection !== undefined && started - lastCollection.endedAt < lastCollection.ms / heapReleaseLimits.maxTimeShare) return false;
      collector(node)();
      const ended = performance.now();
      lastCollection = { endedAt: ended, ms: ended - started };
      base = used();
      return true;
    },
  };
}
