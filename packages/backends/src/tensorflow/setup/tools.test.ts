import { BackendError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { checkPlatform, findToolchain, type HostEnv } from './tools.js';

type RunResult = { status: number | null; stdout: string; stderr: string };

/** A machine described by what is on PATH, which files exist and what commands print. */
function fakeHost(over: {
  path?: Record<string, string | undefined>;
  files?: string[];
  run?: Record<string, RunResult>;
  env?: Record<string, string>;
  platform?: string;
  arch?: string;
  glibc?: string | undefined;
  execPath?: string;
} = {}): HostEnv {
  const path: Record<string, string | undefined> = {
    python3: '/usr/bin/python3',
    'g++': '/usr/bin/g++',
    make: '/usr/bin/make',
    strip: '/usr/bin/strip',
    ...over.path,
  };
  const files = new Set(
    over.files ?? ['/usr/include/node/node_api.h', '/usr/include/node/common.gypi', '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'],
  );
  const runs: Record<string, RunResult> = {
    '/usr/bin/python3 --version': { status: 0, stdout: 'Python 3.11.7\n', stderr: '' },
    '/usr/bin/python3 -m pip --version': { status: 0, stdout: 'pip 23.2.1 from /usr/lib/python3/dist-packages/pip (python 3.11)\n', stderr: '' },
    '/usr/bin/g++ --version': { status: 0, stdout: 'g++ (Debian 12.2.0-14) 12.2.0\nCopyright\n', stderr: '' },
    ...over.run,
  };
  return {
    platform: over.platform ?? 'linux',
    arch: over.arch ?? 'x64',
    glibc: 'glibc' in over ? over.glibc : '2.36',
    execPath: over.execPath ?? '/usr/bin/node',
    env: over.env ?? {},
    which: (name) => (name.includes('/') ? (files.has(name) || Object.values(path).includes(name) ? name : undefined) : path[name]),
    exists: (p) => files.has(p),
    realpath: (p) => p,
    run: (cmd, args) => runs[`${cmd} ${args.join(' ')}`] ?? { status: null, stdout: '', stderr: '' },
  };
}

const header = 'setup-native cannot build the native backend on this machine:\n';

describe('checkPlatform', () => {
  it('accepts Linux x64 with glibc 2.27 or newer: 2.27 passes, 2.26 is refused', () => {
    expect(checkPlatform(fakeHost())).toBeUndefined();
    expect(checkPlatform(fakeHost({ glibc: '2.27' }))).toBeUndefined();
    expect(() => checkPlatform(fakeHost({ glibc: '2.26' }))).toThrow(/^setup-native: this Linux has glibc 2\.26; /);
  });

  it('refuses other platforms, pointing at the normal install and at wasm', () => {
    expect(() => checkPlatform(fakeHost({ platform: 'darwin', arch: 'arm64' }))).toThrow(BackendError);
    expect(() => checkPlatform(fakeHost({ platform: 'darwin', arch: 'arm64' }))).toThrow(
      "setup-native: this is darwin arm64; building the native backend from the tensorflow-cpu wheel works on Linux x64 only. Here, install @tensorflow/tfjs-node the normal way (npm install @tensorflow/tfjs-node), which downloads its own libtensorflow where it can reach its download, or train on the wasm backend (accelerator: 'cpu').",
    );
    expect(() => checkPlatform(fakeHost({ arch: 'arm64' }))).toThrow(/^setup-native: this is linux arm64; /);
  });

  it('refuses musl and an old glibc', () => {
    expect(() => checkPlatform(fakeHost({ glibc: undefined }))).toThrow(
      "setup-native: this Linux has no glibc (musl, as on Alpine); the tensorflow-cpu wheel's libraries need glibc 2.27 or newer. Use a glibc-based image (Debian, Ubuntu), or train on the wasm backend (accelerator: 'cpu').",
    );
    expect(() => checkPlatform(fakeHost({ glibc: '2.17' }))).toThrow(
      "setup-native: this Linux has glibc 2.17; the tensorflow-cpu 2.21.0 wheel's libraries need glibc 2.27 or newer. Use a newer distribution, or train on the wasm backend (accelerator: 'cpu').",
    );
  });
});

describe('findToolchain', () => {
  it('finds python3 with pip, g++, make, strip, node-gyp beside npm and Node headers beside node', () => {
    expect(findToolchain(fakeHost())).toEqual({
      python: '/usr/bin/python3',
      pythonVersion: '3.11.7',
      pipVersion: '23.2.1',
      cxx: '/usr/bin/g++',
      cxxVersion: 'g++ (Debian 12.2.0-14) 12.2.0',
      make: '/usr/bin/make',
      strip: '/usr/bin/strip',
      nodeGyp: '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
      nodedir: '/usr',
    });
  });

  it('works without strip (the libraries just stay larger)', () => {
    expect(findToolchain(fakeHost({ path: { strip: undefined } })).strip).toBeUndefined();
  });

  it('finds Node headers and node-gyp under an nvm-style prefix', () => {
    const prefix = '/home/u/.nvm/versions/node/v20.19.0';
    const host = fakeHost({
      execPath: `${prefix}/bin/node`,
      files: [`${prefix}/include/node/node_api.h`, `${prefix}/include/node/common.gypi`, `${prefix}/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js`],
    });
    expect(findToolchain(host)).toMatchObject({ nodedir: prefix, nodeGyp: `${prefix}/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js` });
  });

  it('says how to get Python when there is none', () => {
    expect(() => findToolchain(fakeHost({ path: { python3: undefined } }))).toThrow(
      `${header}  - Python 3 was not found on PATH (looked for python3 and python); setup-native runs \`python3 -m pip download\` to fetch the tensorflow-cpu wheel. Install Python 3 with pip (Debian/Ubuntu: apt-get install python3 python3-pip), or pass --python /path/to/python3.`,
    );
  });

  it('says how to get pip when Python has none', () => {
    const host = fakeHost({ run: { '/usr/bin/python3 -m pip --version': { status: 1, stdout: '', stderr: '/usr/bin/python3: No module named pip\n' } } });
    expect(() => findToolchain(host)).toThrow(
      `${header}  - /usr/bin/python3 has no pip (\`/usr/bin/python3 -m pip --version\` failed: /usr/bin/python3: No module named pip). Install pip (Debian/Ubuntu: apt-get install python3-pip; otherwise /usr/bin/python3 -m ensurepip --upgrade), or pass --python with a Python that has pip.`,
    );
  });

  it('uses --python when given, and names it when it does not exist', () => {
    const host = fakeHost({
      path: { 'py-custom': '/opt/py/bin/python3' },
      run: {
        '/opt/py/bin/python3 --version': { status: 0, stdout: 'Python 3.12.1\n', stderr: '' },
        '/opt/py/bin/python3 -m pip --version': { status: 0, stdout: 'pip 24.0 from x\n', stderr: '' },
      },
    });
    expect(findToolchain(host, { python: '/opt/py/bin/python3' })).toMatchObject({ python: '/opt/py/bin/python3', pythonVersion: '3.12.1', pipVersion: '24.0' });
    expect(() => findToolchain(host, { python: '/nope/python3' })).toThrow(
      `${header}  - --python /nope/python3: no such executable; pass the path of a Python 3 that has pip.`,
    );
  });

  it('says how to get a compiler and make', () => {
    expect(() => findToolchain(fakeHost({ path: { 'g++': undefined, make: undefined } }))).toThrow(
      `${header}  - no C++ compiler: none of g++, c++, clang++ is on PATH (node-gyp compiles the two .cc files of tfjs-node's binding). Install one (Debian/Ubuntu: apt-get install g++ make; Fedora: dnf install gcc-c++ make), or set CXX to a compiler.\n` +
        '  - make is not on PATH (node-gyp drives the compiler with make). Install it (Debian/Ubuntu: apt-get install make).',
    );
  });

  it('honours CXX, and names a CXX that is not an executable', () => {
    const host = fakeHost({ path: { 'clang++-16': '/usr/bin/clang++-16' }, env: { CXX: 'clang++-16' }, run: { '/usr/bin/clang++-16 --version': { status: 0, stdout: 'clang 16\n', stderr: '' } } });
    expect(findToolchain(host)).toMatchObject({ cxx: '/usr/bin/clang++-16', cxxVersion: 'clang 16' });
    expect(() => findToolchain(fakeHost({ env: { CXX: 'nocc' } }))).toThrow(`${header}  - CXX is set to 'nocc', which is not an executable; unset it or point it at a C++ compiler.`);
  });

  it('says where Node headers were looked for and how to get them', () => {
    const host = fakeHost({ files: ['/usr/include/node/common.gypi', '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'] });
    expect(() => findToolchain(host)).toThrow(
      `${header}  - Node's headers were not found: /usr/include/node/node_api.h is missing (the Node installation of /usr/bin/node is /usr). node-gyp would try to download them, which fails offline. Install them (Debian's own nodejs package: apt-get install libnode-dev; Node from nodejs.org, NodeSource or nvm has them in <prefix>/include/node), or set npm_config_nodedir to a folder that has include/node.`,
    );
    const viaEnv = fakeHost({ env: { npm_config_nodedir: '/opt/node-src' } });
    expect(() => findToolchain(viaEnv)).toThrow(/\/opt\/node-src\/include\/node\/node_api\.h and \/opt\/node-src\/include\/node\/common\.gypi are missing \(npm_config_nodedir is \/opt\/node-src\)/);
  });

  it('says how to get node-gyp', () => {
    const host = fakeHost({ files: ['/usr/include/node/node_api.h', '/usr/include/node/common.gypi'] });
    expect(() => findToolchain(host)).toThrow(
      `${header}  - node-gyp was not found (looked for /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js, and on PATH); it ships with npm. Install it with npm install -g node-gyp, or set npm_config_node_gyp to its bin/node-gyp.js.`,
    );
  });

  it('lists every missing tool in one message', () => {
    const host = fakeHost({ path: { python3: undefined, 'g++': undefined, make: undefined }, files: [] });
    let message = '';
    try {
      findToolchain(host);
    } catch (error) {
      expect(error).toBeInstanceOf(BackendError);
      message = (error as Error).message;
    }
    expect(message.split('\n').slice(1).map((l) => l.slice(0, 25))).toEqual([
      '  - Python 3 was not foun',
      '  - no C++ compiler: none',
      '  - make is not on PATH (',
      '  - node-gyp was not foun',
      "  - Node's headers were n",
    ]);
  });
});
