/** The backends Flint knows, by their tfjs names. */
export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What loading a backend gave: the facts to print, or why it is not available here. */
export type LoadResult = { readonly ok: true; readonly details: string[] } | { readonly ok: false; readonly reason: string };

/**
 * One way to get a backend: the package that provides it, how to install it, and `load()`, which
 * checks that it is installed and works, loads it with Flint's kernels and makes it the active tfjs
 * backend. Which one to load is the Trainer's choice (its accelerator selection).
 */
export interface BackendLoader {
  readonly backend: BackendName;
  readonly accelerator: 'cpu' | 'gpu';
  /** The package that provides the backend. */
  readonly provider: string;
  /** What to do to get it, for error messages. */
  readonly install: string;
  load(): Promise<LoadResult>;
}
