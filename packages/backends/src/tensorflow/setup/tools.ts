import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { BackendError } from '@flint/core';
import { TENSORFLOW_VERSION } from './wheel.js';

/**
 * What setup-native asks of the machine. `hostEnv()` is the real one; tests pass a fake to pin the
 * messages for missing tools without touching the machine.
 */
export interface HostEnv {
  readonly platform: string;
  readonly arch: string;
  /** glibc's version, or undefined on a libc without it (musl). */
  readonly glibc: string | undefined;
  /** Node's executable (`process.execPath`). */
  readonly execPath: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** An executable by name on PATH, or by path; undefined when there is none. */
  which(name: string): string | undefined;
  exists(path: string): boolean;
  realpath(path: string): string;
  /** Runs a short command; `status` is null when it could not start. */
  run(cmd: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string };
}

export function hostEnv(): HostEnv {
  const env = process.env;
  return {
    platform: process.platform,
    arch: process.arch,
    glibc: glibcVersion(),
    execPath: process.execPath,
    env,
    which: (name) => which(name, env.PATH ?? ''),
    exists: (p) => existsSync(p),
    realpath: (p) => {
      try {
        return realpathSync(p);
      } catch {
        return p;
      }
    },
    run: (cmd, args) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      return { status: r.error === undefined ? r.status : null, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    },
  };
}

function glibcVersion(): string | undefined {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime;
}

function which(name: string, path: string): string | undefined {
  const isExecutable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The wheel route exists for Linux x64 with glibc 2.27 or newer (the wheel is manylinux_2_27_x86_64). */
export function checkPlatform(host: HostEnv): void {
  const normal = 'install @tensorflow/tfjs-node the normal way (npm install @tensorflow/tfjs-node), which downloads its own libtensorflow';
  if (host.platform !== 'linux' || host.arch !== 'x64') {
    throw new BackendError(
      `setup-native: this is ${host.platform} ${host.arch}; building the native backend from the tensorflow-cpu wheel works on Linux x64 only. ` +
        `Here, ${normal} where it can reach its download, or train on the wasm backend (accelerator: 'cpu').`,
    );
  }
  if (host.glibc === undefined) {
    throw new BackendError(
      `setup-native: this Linux has no glibc (musl, as on Alpine); the tensorflow-cpu wheel's libraries need glibc 2.27 or newer. ` +
        `Use a glibc-based image (Debian, Ubuntu), or train on the wasm backend (accelerator: 'cpu').`,
    );
  }
  if (compareVersions(host.glibc, '2.27') < 0) {
    throw new BackendError(
      `setup-native: this Linux has glibc ${host.glibc}; the tensorflow-cpu ${TENSORFLOW_VERSION} wheel's libraries need glibc 2.27 or newer. ` +
        `Use a newer distribution, or train on the wasm backend (accelerator: 'cpu').`,
    );
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The tools found for the build. */
export interface Toolchain {
  /** The Python that runs pip (also given to node-gyp, whose gyp is Python). */
  readonly python: string;
  readonly pythonVersion: string;
  readonly pipVersion: string;
  /** The C++ compiler, passed to the build as CXX. */
  readonly cxx: string;
  readonly cxxVersion: string;
  readonly make: string;
  /** `strip`, when there is one: the libraries shrink from 853 MB to 634 MB. */
  readonly strip: string | undefined;
  /** node-gyp's script (node-pre-gyp runs it with Node). */
  readonly nodeGyp: string;
  /** A folder with `include/node/node_api.h` and `include/node/common.gypi`: Node's own headers. */
  readonly nodedir: string;
}

export interface ToolchainRequest {
  /** The Python to run pip with; default python3, then python, from PATH. */
  readonly python?: string | undefined;
}

const firstLine = (s: string): string => s.trim().split('\n')[0]?.trim() ?? '';

/** The folder of Node's installation (`<prefix>` in `<prefix>/bin/node`). */
export function nodePrefix(host: HostEnv): string {
  return dirname(dirname(host.realpath(host.execPath)));
}

/**
 * Finds Python with pip, a C++ compiler, make, node-gyp and Node's headers. Throws one BackendError
 * that lists every missing tool and how to get it.
 */
export function findToolchain(host: HostEnv, request: ToolchainRequest = {}): Toolchain {
  const problems: string[] = [];

  // Python and pip.
  let python: string | undefined;
  let pythonVersion = '';
  let pipVersion = '';
  if (request.python !== undefined) {
    python = host.which(request.python);
    if (python === undefined) {
      problems.push(`--python ${request.python}: no such executable${isAbsolute(request.python) ? '' : ' on PATH'}; pass the path of a Python 3 that has pip.`);
    }
  } else {
    for (const name of ['python3', 'python']) {
      const found = host.which(name);
      const version = found === undefined ? '' : firstLine(runOut(host, found, ['--version']));
      if (found !== undefined && /^Python 3\./.test(version)) {
        python = found;
        pythonVersion = version.replace(/^Python /, '');
        break;
      }
    }
    if (python === undefined) {
      problems.push(
        'Python 3 was not found on PATH (looked for python3 and python); setup-native runs `python3 -m pip download` to fetch the tensorflow-cpu wheel. ' +
          'Install Python 3 with pip (Debian/Ubuntu: apt-get install python3 python3-pip), or pass --python /path/to/python3.',
      );
    }
  }
  if (python !== undefined) {
    if (pythonVersion === '') pythonVersion = firstLine(runOut(host, python, ['--version'])).replace(/^Python /, '');
    const pip = host.run(python, ['-m', 'pip', '--version']);
    if (pip.status !== 0) {
      const why = firstLine(pip.stderr) || firstLine(pip.stdout) || `exit status ${String(pip.status)}`;
      problems.push(
        `${python} has no pip (\`${python} -m pip --version\` failed: ${why}). ` +
          `Install pip (Debian/Ubuntu: apt-get install python3-pip; otherwise ${python} -m ensurepip --upgrade), or pass --python with a Python that has pip.`,
      );
    } else {
      pipVersion = /^pip (\S+)/.exec(firstLine(pip.stdout))?.[1] ?? firstLine(pip.stdout);
    }
  }

  // Compiler and make.
  const cxxWanted = host.env.CXX?.trim().split(/\s+/)[0];
  let cxx: string | undefined;
  if (cxxWanted !== undefined && cxxWanted !== '') {
    cxx = host.which(cxxWanted);
    if (cxx === undefined) problems.push(`CXX is set to '${host.env.CXX ?? ''}', which is not an executable; unset it or point it at a C++ compiler.`);
  } else {
    cxx = host.which('g++') ?? host.which('c++') ?? host.which('clang++');
    if (cxx === undefined) {
      problems.push(
        'no C++ compiler: none of g++, c++, clang++ is on PATH (node-gyp compiles the two .cc files of tfjs-node\'s binding). ' +
          'Install one (Debian/Ubuntu: apt-get install g++ make; Fedora: dnf install gcc-c++ make), or set CXX to a compiler.',
      );
    }
  }
  const makeName = host.env.MAKE ?? 'make';
  const make = host.which(makeName);
  if (make === undefined) {
    problems.push(`${makeName} is not on PATH (node-gyp drives the compiler with make). Install it (Debian/Ubuntu: apt-get install make).`);
  }

  // node-gyp: the one npm ships beside Node, unless npm_config_node_gyp names one.
  const prefix = nodePrefix(host);
  const gypCandidates = [
    host.env.npm_config_node_gyp,
    join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ].filter((p): p is string => p !== undefined && p !== '');
  let nodeGyp = gypCandidates.find((p) => host.exists(p));
  if (nodeGyp === undefined) {
    const onPath = host.which('node-gyp');
    if (onPath !== undefined) nodeGyp = host.realpath(onPath);
  }
  if (nodeGyp === undefined) {
    problems.push(
      `node-gyp was not found (looked for ${gypCandidates.join(' and ')}, and on PATH); it ships with npm. ` +
        'Install it with npm install -g node-gyp, or set npm_config_node_gyp to its bin/node-gyp.js.',
    );
  }

  // Node's own headers, so that node-gyp does not try to download them.
  const nodedirWanted = host.env.npm_config_nodedir;
  const nodedir = nodedirWanted !== undefined && nodedirWanted !== '' ? nodedirWanted : prefix;
  const headers = ['include/node/node_api.h', 'include/node/common.gypi'].map((h) => join(nodedir, h));
  const missingHeaders = headers.filter((h) => !host.exists(h));
  if (missingHeaders.length > 0) {
    const where = nodedirWanted ? `npm_config_nodedir is ${nodedirWanted}` : `the Node installation of ${host.execPath} is ${prefix}`;
    problems.push(
      `Node's headers were not found: ${missingHeaders.join(' and ')} ${missingHeaders.length > 1 ? 'are' : 'is'} missing (${where}). ` +
        'node-gyp would try to download them, which fails offline. Install them (Debian\'s own nodejs package: apt-get install libnode-dev; ' +
        'Node from nodejs.org, NodeSource or nvm has them in <prefix>/include/node), or set npm_config_nodedir to a folder that has include/node.',
    );
  }

  if (problems.length > 0 || python === undefined || cxx === undefined || make === undefined || nodeGyp === undefined) {
    const lines = problems.map((p) => `  - ${p}`).join('\n');
    throw new BackendError(`setup-native cannot build the native backend on this machine:\n${lines}`);
  }
  return {
    python,
    pythonVersion,
    pipVersion,
    cxx,
    cxxVersion: firstLine(runOut(host, cxx, ['--version'])),
    make,
    strip: host.which('strip'),
    nodeGyp,
    nodedir,
  };
}

function runOut(host: HostEnv, cmd: string, args: readonly string[]): string {
  const r = host.run(cmd, args);
  return r.status === 0 ? `${r.stdout}${r.stderr}` : '';
}
