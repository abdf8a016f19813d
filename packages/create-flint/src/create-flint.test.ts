import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createProject, main, ownVersion } from './index.js';

// The scaffold itself, fast and offline; packing, installing, training and testing the project it
// writes is published.test.ts.

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'create-flint-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(argv, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('create-flint', () => {
  it('writes the project: package.json on the published packages, tsconfig, module, data module, train script, test, README, .gitignore', () => {
    const dir = path.join(root, 'My-App');
    const r = run([dir, '--name', 'my-app']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('npm install');
    expect(r.out).toContain('npm run train');
    const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => f.split(path.sep).join('/')).sort();
    expect(files).toEqual(
      ['.gitignore', 'README.md', 'data', 'data/iris.csv', 'package.json', 'src', 'src/data.ts', 'src/model.ts', 'src/train.ts', 'test', 'test/model.test.ts', 'tsconfig.json', 'vitest.config.ts'].sort(),
    );
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name: string; dependencies: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.name).toBe('my-app');
    for (const p of ['@flint/core', '@flint/trainer', '@flint/loggers', '@flint/callbacks', '@flint/metrics']) expect(pkg.dependencies[p]).toBe(`^${ownVersion()}`);
    expect(Object.values(pkg.dependencies).join(' ')).not.toMatch(/workspace:|file:|link:/);
    expect(pkg.scripts).toMatchObject({ train: expect.stringContaining('node dist/src/train.js'), test: 'vitest run' });
    expect(fs.readFileSync(path.join(dir, 'README.md'), 'utf8')).toMatch(/^# my-app\n/);
    expect(fs.readFileSync(path.join(dir, 'data/iris.csv'), 'utf8').trim().split('\n')).toHaveLength(151);
    // nothing left beside it
    expect(fs.readdirSync(root)).toEqual(['My-App']);
  });

  it('refuses a folder that is not empty, and a name npm would refuse, saying what to do', () => {
    const dir = path.join(root, 'taken');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const r = run([dir]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`create-flint: ${dir} is not empty (notes.txt); choose a new folder name.\n`);
    expect(fs.readdirSync(dir)).toEqual(['notes.txt']);
    expect(() => createProject({ dir: path.join(root, 'x'), name: 'Bad Name' })).toThrow(
      "create-flint: 'Bad Name' is not a valid npm package name (lower-case letters, digits, '-', '.', '_' and '~', not starting with '.' or '_'); pass --name, e.g. --name my-app.",
    );
    expect(fs.existsSync(path.join(root, 'x'))).toBe(false);
  });

  it('an empty folder is fine; no folder or an unknown option is a usage error', () => {
    const dir = path.join(root, 'empty');
    fs.mkdirSync(dir);
    expect(run([dir]).code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'src/model.ts'))).toBe(true);
    expect(run([])).toMatchObject({ code: 2, err: expect.stringContaining('give the folder to create') });
    expect(run(['a', '--epochs', '3'])).toMatchObject({ code: 2, err: expect.stringContaining("Unknown option '--epochs'") });
  });
});
