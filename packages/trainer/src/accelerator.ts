import * as tf from '@tensorflow/tfjs';
import { BACKEND_NAMES, castOnCpuByValue, cpuLoader, tensorflowLoader, wasmLoader, type BackendLoader, type BackendName, type WasmImprovementsOptions } from '@flint/backends';
import { BackendError, MisconfigurationError } from '@flint/core';
import { z } from 'zod';

export type { BackendName } from '@flint/backends';
export type AcceleratorName = 'auto' | 'cpu' | 'gpu';

/** What the accelerator selection chose and why; printed once at the start. */
export interface BackendChoice {
  readonly accelerator: 'cpu' | 'gpu';
  readonly backend: BackendName;
  /** The package that provides the backend. */
  readonly provider: string;
  /** Why this one: what was asked, and what was skipped on the way with the reason. */
  readonly reason: string;
  /** Extra facts (threads, versions). */
  readonly details: readonly string[];
  /** The candidates tried before this one, with why each was skipped. */
  readonly skipped: readonly { readonly provider: string; readonly reason: string }[];
}

export interface BackendRequest {
  readonly accelerator: AcceleratorName;
  readonly backend?: BackendName | undefined;
  /** Flint's improvements of the wasm backend (fast transposed matmul, threads, missing gradient kernels), or false for stock wasm. Default: all on. */
  readonly wasm?: WasmImprovementsOptions | false | undefined;
}

/** The candidates for a request, in order of preference; @flint/backends loads and probes each. */
function candidatesFor(request: BackendRequest): BackendLoader[] {
  const { accelerator, backend } = request;
  const wasm = wasmLoader(request.wasm ?? {});
  if (accelerator === 'gpu') {
    if (backend !== undefined && backend !== 'tensorflow') {
      throw new MisconfigurationError(
        `Trainer options accelerator 'gpu' and backend '${backend}' do not fit: only backend 'tensorflow' (@tensorflow/tfjs-node-gpu) runs on a GPU.`,
      );
    }
    return [tensorflowLoader('@tensorflow/tfjs-node-gpu')];
  }
  if (backend === 'tensorflow') {
    return accelerator === 'cpu' ? [tensorflowLoader('@tensorflow/tfjs-node')] : [tensorflowLoader('@tensorflow/tfjs-node-gpu'), tensorflowLoader('@tensorflow/tfjs-node')];
  }
  if (backend === 'wasm') return [wasm];
  if (backend === 'cpu') return [cpuLoader];
  // auto backend: the best that is installed and works.
  const list = [tensorflowLoader('@tensorflow/tfjs-node'), wasm, cpuLoader];
  return accelerator === 'auto' ? [tensorflowLoader('@tensorflow/tfjs-node-gpu'), ...list] : list;
}

let current: { key: string; choice: BackendChoice } | undefined;

/**
 * Selects and activates the backend for an accelerator request: 'auto' prefers
 * @tensorflow/tfjs-node-gpu with a visible GPU, then @tensorflow/tfjs-node, then wasm, then the
 * pure-JS cpu backend, each only if installed and working. An explicit request that cannot be met
 * fails with a BackendError that says what to install; it never runs elsewhere silently.
 * The result is cached per process; `fresh` tells whether the caller should print it.
 */
export async function selectBackend(request: BackendRequest): Promise<{ choice: BackendChoice; fresh: boolean }> {
  const key = `${request.accelerator}/${request.backend ?? 'auto'}/${JSON.stringify(request.wasm ?? {})}`;
  castOnCpuByValue();
  if (current !== undefined && current.key === key && tf.getBackend() === current.choice.backend) {
    return { choice: current.choice, fresh: false };
  }
  const skipped: { provider: string; reason: string }[] = [];
  const candidates = candidatesFor(request);
  const explicit = request.backend !== undefined || request.accelerator === 'gpu';
  for (const candidate of candidates) {
    const result = await candidate.load();
    if (result.ok) {
      const asked = explicit ? `asked for accelerator '${request.accelerator}'${request.backend === undefined ? '' : `, backend '${request.backend}'`}` : `accelerator '${request.accelerator}' picked the best available`;
      const choice: BackendChoice = {
        accelerator: candidate.accelerator,
        backend: candidate.backend,
        provider: candidate.provider,
        reason: skipped.length === 0 ? asked : `${asked}; skipped: ${skipped.map((s) => s.reason).join('; ')}`,
        details: result.details,
        skipped,
      };
      current = { key, choice };
      return { choice, fresh: true };
    }
    skipped.push({ provider: candidate.provider, reason: result.reason });
    if (explicit && candidates.length === 1) {
      throw new BackendError(
        `Trainer option ${request.backend !== undefined ? `backend '${request.backend}'` : `accelerator '${request.accelerator}'`} cannot run here: ${result.reason}. To use it, ${candidate.install}.`,
      );
    }
  }
  const last = candidates[candidates.length - 1]!;
  throw new BackendError(
    `No backend for accelerator '${request.accelerator}'${request.backend === undefined ? '' : ` and backend '${request.backend}'`} works here: ${skipped.map((s) => s.reason).join('; ')}. To fix it, ${last.install}.`,
  );
}

/** The environment variable FLINT_BACKEND: unset or empty, or one of the backends' names. */
const envBackendSchema = z.union([z.literal('').transform(() => undefined), z.enum(BACKEND_NAMES)]).optional();

/** The backend FLINT_BACKEND pins (undefined when unset or empty); a MisconfigurationError for another value. */
export function envBackend(value: string | undefined = process.env.FLINT_BACKEND): BackendName | undefined {
  const parsed = envBackendSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new MisconfigurationError(`Environment variable FLINT_BACKEND must be ${BACKEND_NAMES.map((n) => `'${n}'`).join(', ')} or unset (received '${value}').`);
}

/**
 * Selects the backend of a trainer's run: the `backend` option, else FLINT_BACKEND for trainers that
 * do not ask for a GPU, else by `accelerator`. Prints the choice the first time it is made.
 */
export async function setupBackend(
  options: { accelerator: AcceleratorName; backend?: BackendName | undefined; wasm?: WasmImprovementsOptions | false | undefined; verbose?: boolean | undefined },
  print: (line: string) => void,
): Promise<BackendChoice> {
  const fromEnv = options.backend === undefined && options.accelerator !== 'gpu' ? envBackend() : undefined;
  const { choice, fresh } = await selectBackend({ accelerator: options.accelerator, backend: options.backend ?? fromEnv, wasm: options.wasm });
  if (fresh) print(describeChoice(choice, { verbose: options.verbose === true || verboseFromEnv() }));
  return choice;
}


/** A skipped candidate that is installed but does not work: worth a word even when not verbose. */
const isBroken = (skipped: { readonly reason: string }): boolean => !/ is not installed$/.test(skipped.reason);

/**
 * One line describing a choice, as printed at the start of a run. By default a short one: the
 * accelerator, backend and package, plus a note when an installed backend was skipped because it
 * does not work. `verbose` (Trainer option `verbose`, or FLINT_VERBOSE=1) adds the details, the
 * reasons and the paths.
 */
export function describeChoice(choice: BackendChoice, options: { readonly verbose?: boolean } = {}): string {
  const head = `Flint: accelerator ${choice.accelerator}, backend '${choice.backend}' from ${choice.provider}`;
  if (options.verbose === true) {
    const details = choice.details.length > 0 ? ` (${choice.details.join(', ')})` : '';
    return `${head}${details}: ${choice.reason}.`;
  }
  const broken = choice.skipped.filter(isBroken).map((s) => s.provider);
  if (broken.length === 0) return `${head}.`;
  const which = broken.length === 1 ? `${broken[0]} is installed but does not work` : `${broken.join(' and ')} are installed but do not work`;
  return `${head}; ${which} (FLINT_VERBOSE=1 or Trainer option verbose: true says why).`;
}

/** Whether the environment asks for verbose output (FLINT_VERBOSE set to anything but '', '0' or 'false'). */
export function verboseFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.FLINT_VERBOSE;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** @internal for tests: forget the cached choice. */
export function resetBackendChoice(): void {
  current = undefined;
}

