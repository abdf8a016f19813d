import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BackendError, parseOptions } from '@flint/core';
import { z } from 'zod';
import { addonPath, detectPackageManager, installCommand, locateTfjsNode, TFJS_NODE, type PackageManager, type TfjsNodePackage } from './locate.js';
import { patchBindingSources } from './patch.js';
import { checkTfjsNodeInChild, clearNativeProbeCache, quietTensorFlowEnv } from './probe.js';
import { acquireStaging, diskUsage, moveIntoPlace, rollBack } from './staging.js';
import { checkPlatform, findToolchain, hostEnv, type HostEnv, type Toolchain } from './tools.js';
import {
  LINK_NAMES,
  pipDownloadArgs,
  selectWheelMembers,
  TENSORFLOW_LIBRARIES,
  TENSORFLOW_VERSION,
  TFJS_NODE_VERSION,
  WHEEL_REQUIREMENT,
  type WheelMember,
} from './wheel.js';

const isLogFn = (v: unknown): v is (line: string) => void => typeof v === 'function';

export const setupNativeOptionsSchema = z
  .strictObject({
    /** The Python whose pip fetches the wheel (and that node-gyp's gyp runs on). Default: python3, then python, from PATH. */
    python: z.string().min(1).optional(),
    /** Rebuild even when a working build is found. */
    force: z.boolean().default(false),
    /** Only check the current build (changes nothing); fails when it does not work. */
    check: z.boolean().default(false),
    /** The project whose tfjs-node to build (resolved from here first, then from @flint/trainer). Default: process.cwd(). */
    cwd: z.string().min(1).optional(),
    /** Receives the progress lines. Default: written to stderr. */
    log: z.custom<(line: string) => void>(isLogFn, { message: 'must be a function (line: string) => void' }).optional(),
  })
  .refine((o) => !(o.force && o.check), {
    message: "'check' only checks and 'force' rebuilds: pass one of them, not both",
    path: ['check'],
  });

export type SetupNativeOptions = z.input<typeof setupNativeOptionsSchema>;

export interface SetupNativeReport {
  /** 'built': this run built and checked it; 'working': a working build was there and nothing was changed. */
  readonly status: 'built' | 'working';
  /** tfjs-node's real folder. */
  readonly packageDir: string;
  readonly tfjsNodeVersion: string;
  /** TensorFlow's version as the addon reports it (2.21.0 for a build by setup-native). */
  readonly tfVersion: string;
  readonly addonPath: string;
  /** Bytes on disk of `deps/` and `lib/` in tfjs-node's folder (what setup-native adds). */
  readonly diskBytes: number;
  readonly steps: readonly { readonly name: string; readonly ms: number }[];
  readonly totalMs: number;
}

/** @internal The error for a project without tfjs-node: how to install it with its install script skipped. */
export function notInstalledError(cwd: string, pm: PackageManager): BackendError {
  return new BackendError(
    `setup-native: ${TFJS_NODE} is not installed in ${cwd} (nor resolvable from @flint/trainer). Install it without its install script, ` +
      `which would try to download libtensorflow and fail: ${installCommand(pm)}; then run setup-native again.`,
  );
}

/** Free space needed in tfjs-node's folder while building: the wheel is deleted after extraction, then strip copies the larger library. */
const NEEDED_FREE_BYTES = 1.8e9;
const STATE_FILE = 'flint-native.json';

/**
 * Builds tfjs-node's native addon against the TensorFlow libraries of the `tensorflow-cpu` wheel,
 * where tfjs-node's own install cannot download libtensorflow. Idempotent: a working build is left
 * alone unless `force`. Everything is built in a staging folder inside tfjs-node's folder and moved
 * into place at the end; if the result does not work it is removed again.
 *
 * `host` replaces the machine's tool lookups (for tests).
 */
export async function setupNative(options?: SetupNativeOptions, host: HostEnv = hostEnv()): Promise<SetupNativeReport> {
  const opts = parseOptions('setupNative', setupNativeOptionsSchema, options);
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const cwd = opts.cwd ?? process.cwd();
  const started = performance.now();
  const steps: { name: string; ms: number }[] = [];
  const total = opts.check ? 2 : 9;
  let index = 0;

  async function step<T>(name: string, slow: boolean, fn: () => T | Promise<T>, done: (r: T) => string): Promise<T> {
    const n = ++index;
    const t = performance.now();
    if (slow) log(`setup-native [${n}/${total}] ${name}...`);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      log(`setup-native [${n}/${total}] ${name}: failed (${seconds(performance.now() - t)})`);
      throw error;
    }
    const ms = performance.now() - t;
    steps.push({ name, ms });
    log(`setup-native [${n}/${total}] ${name}: ${done(result)} (${seconds(ms)})`);
    return result;
  }
  const report = (status: SetupNativeReport['status'], pkg: TfjsNodePackage, tfVersion: string): SetupNativeReport => ({
    status,
    packageDir: pkg.dir,
    tfjsNodeVersion: pkg.version,
    tfVersion,
    addonPath: addonPath(pkg.dir),
    diskBytes: diskUsage(join(pkg.dir, 'deps')) + diskUsage(join(pkg.dir, 'lib')),
    steps,
    totalMs: performance.now() - started,
  });

  const pkg = await step(`find ${TFJS_NODE}`, false, () => locateTfjsNode(cwd), (p) => (p === undefined ? 'not installed' : `${p.version} at ${p.dir}`));
  if (pkg === undefined) throw notInstalledError(cwd, detectPackageManager(cwd, host.exists));
  if (pkg.version !== TFJS_NODE_VERSION) log(`setup-native: note: the recipe is verified with ${TFJS_NODE} ${TFJS_NODE_VERSION}; this is ${pkg.version}`);

  const addon = addonPath(pkg.dir);
  const existing = await step(
    'check the current build',
    false,
    async () => {
      if (opts.force) return { skipped: true as const };
      if (!existsSync(addon)) return { skipped: false as const, result: { ok: false as const, reason: `not built (no ${relative(pkg.dir, addon)})` } };
      return { skipped: false as const, result: await checkTfjsNodeInChild(pkg.dir) };
    },
    (r) =>
      r.skipped
        ? 'skipped (force)'
        : r.result.ok
          ? `works, TensorFlow ${r.result.tfVersion}${r.result.graphFunctions ? '' : ", but built without all of Flint's patch (graph functions, library pages, copied arrays): rebuilding"}`
          : r.result.reason,
  );
  if (!existing.skipped && existing.result.ok && (existing.result.graphFunctions || opts.check)) {
    if (!opts.check) log('setup-native: the native backend already works; nothing to do (pass --force to rebuild)');
    return report('working', pkg, existing.result.tfVersion);
  }
  if (opts.check) {
    const reason = !existing.skipped && !existing.result.ok ? existing.result.reason : 'not checked';
    throw new BackendError(`setup-native --check: the native backend does not work: ${reason}. Run setup-native to build it.`);
  }

  const tools = await step(
    'check the platform and tools',
    false,
    () => {
      checkPlatform(host);
      return findToolchain(host, { python: opts.python });
    },
    (t) =>
      `Python ${t.pythonVersion} with pip ${t.pipVersion}, ${t.cxxVersion}, make, ${t.strip === undefined ? 'no strip' : 'strip'}, Node headers in ${t.nodedir}`,
  );

  // With --force a working build may be there: it is put back if the new one fails its check.
  const previousWorked = opts.force && existsSync(addon) && (await checkTfjsNodeInChild(pkg.dir)).ok;
  const staging = acquireStaging(pkg.dir);
  try {
    checkFreeSpace(pkg.dir);
    const wheel = await step(`download the ${WHEEL_REQUIREMENT} wheel with pip`, true, () => downloadWheel(tools, join(staging, 'wheel')), (w) => `${w.name}, ${mb(w.bytes)}`);

    const depsDir = join(staging, 'deps');
    await step(
      'extract the libraries, headers and licences',
      true,
      async () => {
        const members = selectWheelMembers(await listWheel(tools, wheel.path), wheel.name);
        await extractWheel(tools, wheel.path, depsDir, members);
        rmSync(join(staging, 'wheel'), { recursive: true, force: true });
        for (const lib of TENSORFLOW_LIBRARIES) chmodSync(join(depsDir, 'lib', lib), 0o755);
        for (const { link, target } of LINK_NAMES) symlinkSync(target, join(depsDir, 'lib', link));
        writeFileSync(
          join(depsDir, STATE_FILE),
          `${JSON.stringify({ tensorflow: TENSORFLOW_VERSION, wheel: wheel.name, tfjsNode: pkg.version, node: process.version, builtAt: new Date().toISOString(), by: 'flint setup-native' }, null, 2)}\n`,
        );
        return members.length;
      },
      (n) => `${n} files into deps/lib and deps/include, ${mb(diskUsage(depsDir))}`,
    );

    await step(
      'strip the libraries',
      true,
      () => stripLibraries(tools, join(depsDir, 'lib')),
      (r) => r,
    );

    await step("build tfjs-node's addon (node-pre-gyp, node-gyp)", true, () => buildAddon(tools, pkg, staging), (v) => `it loads TensorFlow ${v}`);

    await step(
      'move the build into place',
      false,
      () => {
        try {
          moveIntoPlace(pkg.dir, staging);
        } catch (error) {
          const restored = rollBack(pkg.dir, staging, previousWorked);
          throw new BackendError(
            `setup-native: moving the build into ${pkg.dir} failed (${(error as Error).message}); the partial build was removed${restored ? ' and the previous working build put back' : ''}.`,
            { cause: error },
          );
        }
      },
      () => `deps/ and ${relative(pkg.dir, addon)} in ${pkg.dir}`,
    );

    const check = await step('check the native backend', true, () => checkTfjsNodeInChild(pkg.dir), (r) =>
      r.ok ? `tf.getBackend() is 'tensorflow', TensorFlow ${r.tfVersion}, matmul right` : r.reason,
    );
    if (!check.ok) {
      const restored = rollBack(pkg.dir, staging, previousWorked);
      throw new BackendError(
        `setup-native: the new build does not work: ${check.reason}. It was removed${restored ? ' and the previous working build put back' : ''}, so nothing half-built is left in ${pkg.dir}.`,
      );
    }
    if (check.tfVersion !== TENSORFLOW_VERSION) {
      const restored = rollBack(pkg.dir, staging, previousWorked);
      throw new BackendError(
        `setup-native: the new build loads TensorFlow ${check.tfVersion} instead of ${TENSORFLOW_VERSION} (another libtensorflow on the library path?). It was removed${restored ? ' and the previous working build put back' : ''}.`,
      );
    }
    const result = report('built', pkg, check.tfVersion);
    log(`setup-native: done in ${seconds(result.totalMs)}; ${mb(result.diskBytes)} on disk in ${pkg.dir}`);
    return result;
  } finally {
    rmSync(staging, { recursive: true, force: true });
    clearNativeProbeCache();
  }
}

function checkFreeSpace(dir: string): void {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  if (free < NEEDED_FREE_BYTES) {
    throw new BackendError(
      `setup-native: ${mb(free)} free on the disk of ${dir}; the build needs about ${mb(NEEDED_FREE_BYTES)} while it runs (${mb(0.65e9)} stays). Free some space and run it again.`,
    );
  }
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly stdout: string;
}

function run(cmd: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const input = options.input;
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let output = '';
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      output += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', (error) => resolve({ code: null, signal: null, output: `${output}\ncould not start ${cmd}: ${error.message}`, stdout }));
    child.on('close', (code, signal) => resolve({ code, signal, output, stdout }));
    if (input !== undefined && child.stdin !== null) {
      // A child that exits without reading its input (a crash) must not take this process down with EPIPE.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

const tail = (text: string, lines: number): string =>
  text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((l) => `    ${l}`)
    .join('\n');

async function downloadWheel(tools: Toolchain, dir: string): Promise<{ path: string; name: string; bytes: number }> {
  mkdirSync(dir, { recursive: true });
  const attempt = (fallback: boolean) => run(tools.python, ['-m', 'pip', ...pipDownloadArgs(dir, fallback)]);
  let result = await attempt(false);
  const nothingAtAll = (r: RunResult) => /\(from versions: none\)/.test(r.output);
  const noMatch = (r: RunResult) => /No matching distribution|Could not find a version that satisfies/i.test(r.output);
  if (result.code !== 0 && noMatch(result) && !nothingAtAll(result) && !tools.pythonVersion.startsWith('3.11.')) {
    // The index has the release, but maybe not for this Python; the libraries do not depend on the Python.
    result = await attempt(true);
  }
  if (result.code !== 0) {
    const cmd = `${tools.python} -m pip ${pipDownloadArgs(dir).join(' ')}`;
    const reach = 'pip needs to reach the Python package index or a mirror set in its configuration (see `pip config list`, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL).';
    const hint = nothingAtAll(result)
      ? `pip found no tensorflow-cpu at all: its index cannot be reached from here, or does not carry the package. ${reach}`
      : noMatch(result)
        ? `The index pip uses has tensorflow-cpu, but no ${TENSORFLOW_VERSION} wheel for this machine (Linux x64, glibc 2.27+).`
        : reach;
    throw new BackendError(
      `setup-native: pip could not get the ${WHEEL_REQUIREMENT} wheel (\`${cmd}\` exited ${String(result.code)}):\n${tail(result.output, 6)}\n` +
        `${hint} Without the wheel the native backend cannot be set up here: install ${TFJS_NODE} the normal way where its own download works, or train on the wasm backend (accelerator: 'cpu').`,
    );
  }
  const name = readdirSync(dir).find((f) => f.startsWith(`tensorflow_cpu-${TENSORFLOW_VERSION}-`) && f.endsWith('.whl'));
  if (name === undefined) {
    throw new BackendError(`setup-native: pip reported success but left no tensorflow_cpu-${TENSORFLOW_VERSION}-*.whl in ${dir} (found: ${readdirSync(dir).join(', ') || 'nothing'}).`);
  }
  const path = join(dir, name);
  return { path, name, bytes: lstatSync(path).size };
}

const LIST_SCRIPT = 'import json, sys, zipfile\nprint(json.dumps(zipfile.ZipFile(sys.argv[1]).namelist()))';
const EXTRACT_SCRIPT = [
  'import json, os, shutil, sys, zipfile',
  'wheel, root = sys.argv[1], sys.argv[2]',
  'with zipfile.ZipFile(wheel) as z:',
  '    for member, dest in json.load(sys.stdin):',
  '        target = os.path.join(root, dest)',
  '        os.makedirs(os.path.dirname(target), exist_ok=True)',
  "        with z.open(member) as src, open(target, 'wb') as out:",
  '            shutil.copyfileobj(src, out, 1 << 20)',
].join('\n');

async function listWheel(tools: Toolchain, wheel: string): Promise<string[]> {
  const r = await run(tools.python, ['-c', LIST_SCRIPT, wheel]);
  if (r.code !== 0) throw new BackendError(`setup-native: ${tools.python} could not read the wheel ${wheel} as a zip file:\n${tail(r.output, 6)}`);
  return JSON.parse(r.stdout) as string[];
}

async function extractWheel(tools: Toolchain, wheel: string, root: string, members: readonly WheelMember[]): Promise<void> {
  const plan = JSON.stringify(members.map((m) => [m.member, m.dest]));
  const r = await run(tools.python, ['-c', EXTRACT_SCRIPT, wheel, root], { input: plan });
  if (r.code !== 0) {
    throw new BackendError(`setup-native: extracting ${members.length} files from ${wheel} into ${root} failed (is the disk full?):\n${tail(r.output, 6)}`);
  }
}

async function stripLibraries(tools: Toolchain, libDir: string): Promise<string> {
  if (tools.strip === undefined) return 'skipped: no strip on PATH (the libraries keep their symbols, about 220 MB more)';
  const before = TENSORFLOW_LIBRARIES.reduce((s, lib) => s + lstatSync(join(libDir, lib)).size, 0);
  for (const lib of TENSORFLOW_LIBRARIES) {
    const r = await run(tools.strip, ['--strip-unneeded', join(libDir, lib)]);
    // strip replaces the file only on success; a failure leaves the library whole, just larger.
    if (r.code !== 0) return `strip failed on ${lib}, keeping the libraries unstripped: ${r.output.trim().split('\n')[0] ?? ''}`;
  }
  const after = TENSORFLOW_LIBRARIES.reduce((s, lib) => s + lstatSync(join(libDir, lib)).size, 0);
  return `${mb(before)} -> ${mb(after)}`;
}

/** Builds the addon in the staging folder (a copy of binding.gyp, binding/ and package.json beside the staged deps/); returns TF_Version. */
async function buildAddon(tools: Toolchain, pkg: TfjsNodePackage, staging: string): Promise<string> {
  for (const entry of ['binding.gyp', 'binding', 'package.json']) cpSync(join(pkg.dir, entry), join(staging, entry), { recursive: true });
  patchBindingSources(join(staging, 'binding'));
  let nodePreGyp: string;
  try {
    nodePreGyp = createRequire(join(pkg.dir, 'package.json')).resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp');
  } catch (error) {
    throw new BackendError(
      `setup-native: ${TFJS_NODE}'s dependency @mapbox/node-pre-gyp is not installed beside it (${pkg.dir}); reinstall ${TFJS_NODE} (with its install script skipped).`,
      { cause: error },
    );
  }
  const args = [nodePreGyp, 'install', '--build-from-source', `--nodedir=${tools.nodedir}`, `--python=${tools.python}`];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    npm_config_nodedir: tools.nodedir,
    npm_config_node_gyp: tools.nodeGyp,
    npm_config_python: tools.python,
    CXX: tools.cxx,
    JOBS: String(Math.min(2, availableParallelism())),
  };
  const r = await run(process.execPath, args, { cwd: staging, env });
  const logFile = join(staging, 'build.log');
  writeFileSync(logFile, `$ node ${args.join(' ')}\n${r.output}`);
  const staged = addonPath(staging);
  if (r.code !== 0 || !existsSync(staged)) {
    const kept = join(tmpdir(), 'flint-setup-native-build.log');
    copyFileSync(logFile, kept);
    throw new BackendError(
      `setup-native: building ${TFJS_NODE}'s addon failed (node-pre-gyp install --build-from-source ${r.code === 0 ? 'made no addon' : `exited ${String(r.code ?? r.signal)}`}). ` +
        `Last lines of the build log (whole log: ${kept}):\n${tail(r.output, 25)}\nNothing was changed in ${pkg.dir}.`,
    );
  }
  // Load the staged addon alone in a child: it must find the staged libraries through its rpath.
  const probe = await run(process.execPath, ['-e', 'process.stdout.write(String(require(process.argv[1]).TF_Version))', staged], { env: quietTensorFlowEnv() });
  if (probe.code !== 0 || probe.stdout !== TENSORFLOW_VERSION) {
    throw new BackendError(
      `setup-native: the addon built but does not load with TensorFlow ${TENSORFLOW_VERSION} (got ${JSON.stringify(probe.stdout)}):\n${tail(probe.output, 6)}\nNothing was changed in ${pkg.dir}.`,
    );
  }
  return probe.stdout;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes: number): string => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${Math.round(bytes / 1e6)} MB`);
