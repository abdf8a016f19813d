import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { addonPath, locateTfjsNode, TFJS_NODE } from './locate.js';

/**
 * `graphFunctions`: the addon has all of Flint's patch (a build by this version of setup-native):
 * `registerGraphFunction`, `releaseLibraryPages`, and typed arrays copied into tensors (`flintCopiesTypedArrays`).
 */
export type NativeProbeResult = { ok: true; tfVersion: string; path: string; graphFunctions: boolean } | { ok: false; reason: string };

/**
 * The environment of the child that loads TensorFlow: TF_CPP_MIN_LOG_LEVEL=2 hides TensorFlow's
 * informational startup lines (CPU features, oneDNN), TF_ENABLE_ONEDNN_OPTS=0 its oneDNN notice and
 * oneDNN's custom ops. A value the user has set wins.
 */
export function quietTensorFlowEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, TF_CPP_MIN_LOG_LEVEL: env.TF_CPP_MIN_LOG_LEVEL ?? '2', TF_ENABLE_ONEDNN_OPTS: env.TF_ENABLE_ONEDNN_OPTS ?? '0' };
}

const MARK = '@@flint-native-check ';

// CommonJS run with `node -e SCRIPT DIR`: loads tfjs-node from DIR, checks its backend and a matmul,
// prints one marked JSON line. Whatever breaks (missing library, crash) stays in the child.
const CHECK_SCRIPT = `
const out = (o) => process.stdout.write('\\n${MARK}' + JSON.stringify(o) + '\\n');
try {
  const tf = require(process.argv[1]);
  const backend = tf.getBackend();
  if (backend !== 'tensorflow') {
    out({ ok: false, reason: "it loaded, but the active backend is '" + backend + "', not 'tensorflow'" });
  } else {
    const version = tf.backend().binding.TF_Version;
    const c = Array.from(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).dataSync());
    if (c.join() !== '19,22,43,50') out({ ok: false, reason: 'a 2x2 matmul gave [' + c.join(', ') + '] instead of [19, 22, 43, 50]' });
    else out({ ok: true, tfVersion: String(version), graphFunctions: typeof tf.backend().binding.registerGraphFunction === 'function' && typeof tf.backend().binding.releaseLibraryPages === 'function' && tf.backend().binding.flintCopiesTypedArrays === true });
  }
} catch (e) {
  out({ ok: false, reason: String((e && e.message) || e).split('\\n')[0] });
}
`;

/** Loads tfjs-node from `dir` in a child process and checks it; never loads anything in this process. */
export async function checkTfjsNodeInChild(dir: string, timeoutMs = 120_000): Promise<NativeProbeResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', CHECK_SCRIPT, dir], {
      env: quietTensorFlowEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    child.on('error', (error) => resolve({ ok: false, reason: `could not start ${process.execPath} for the check (${error.message})` }));
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(MARK));
      if (line !== undefined) {
        const r = JSON.parse(line.slice(MARK.length)) as { ok: true; tfVersion: string; graphFunctions: boolean } | { ok: false; reason: string };
        resolve(r.ok ? { ok: true, tfVersion: r.tfVersion, path: dir, graphFunctions: r.graphFunctions } : { ok: false, reason: `${TFJS_NODE} at ${dir} does not work: ${r.reason}` });
        return;
      }
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      const how = signal === 'SIGTERM' && child.killed ? `did not finish within ${timeoutMs / 1000} s` : signal !== null ? `crashed (${signal})` : `exited with code ${String(code)}`;
      resolve({ ok: false, reason: `loading ${TFJS_NODE} from ${dir} ${how}${tail === '' ? '' : `: ${tail}`}` });
    });
  });
}

export interface ProbeNativeOptions {
  /** The project to resolve tfjs-node from first (then @flint/trainer itself). Default: process.cwd(). */
  readonly cwd?: string;
  /** Check again even if this process already checked the same build. */
  readonly fresh?: boolean;
}

const cache = new Map<string, Promise<NativeProbeResult>>();

/**
 * Tells whether `@tensorflow/tfjs-node` is installed AND works, for the accelerator selection: it
 * resolves the package, looks for its built addon, then loads it in a child process (TensorFlow's
 * startup noise silenced) and checks `tf.getBackend() === 'tensorflow'` and a 2x2 matmul. This process
 * loads nothing, so a missing or broken build cannot harm it. The answer is remembered per build (the
 * addon's path, size and time), so repeated calls cost a `stat`; a rebuild is noticed.
 */
export async function probeNativeBackend(options: ProbeNativeOptions = {}): Promise<NativeProbeResult> {
  const cwd = options.cwd ?? process.cwd();
  const pkg = locateTfjsNode(cwd);
  if (pkg === undefined) {
    return { ok: false, reason: `${TFJS_NODE} is not installed (not resolvable from ${cwd} nor from @flint/trainer)` };
  }
  let addon: string;
  try {
    addon = addonPath(pkg.dir);
  } catch (error) {
    return { ok: false, reason: `${TFJS_NODE} at ${pkg.dir} has an unreadable package.json (${(error as Error).message})` };
  }
  if (!existsSync(addon)) {
    return {
      ok: false,
      reason: `${TFJS_NODE} ${pkg.version} is installed at ${pkg.dir} but not built: its addon ${addon} is missing (its install script was skipped or failed); run \`npx flint setup-native\``,
    };
  }
  const st = statSync(addon);
  const key = `${addon}|${st.size}|${st.mtimeMs}`;
  let result = options.fresh === true ? undefined : cache.get(key);
  if (result === undefined) {
    result = checkTfjsNodeInChild(pkg.dir);
    cache.set(key, result);
  }
  return result;
}

/** Forgets remembered probe results (setup-native calls it after changing a build). */
export function clearNativeProbeCache(): void {
  cache.clear();
}
