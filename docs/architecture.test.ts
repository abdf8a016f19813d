// The dependency picture of docs/concepts.md ("How the packages depend on each other"), checked
// against the imports of every source file of the workspace, tests included:
//
//   core <- callbacks, loggers, backends, metrics <- trainer <- examples, bench
//
// never: core -> anything; backends -> trainer, callbacks, loggers; callbacks <-> loggers;
// callbacks, loggers -> trainer. An import counts whether it names a package (`@flint/x`, static,
// type-only or dynamic) or reaches into another package's folder by a relative path.
// Inside the trainer: no file of src/internal/ imports trainer.ts (the loops get a RunContext instead).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What each layer may import (besides itself). Examples and bench sit on top of everything. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  core: [],
  backends: ['core'],
  callbacks: ['core'],
  loggers: ['core'],
  metrics: ['core'],
  trainer: ['core', 'backends', 'callbacks', 'loggers', 'metrics'],
  examples: ['core', 'backends', 'callbacks', 'loggers', 'metrics', 'trainer'],
  bench: ['core', 'backends', 'callbacks', 'loggers', 'metrics', 'trainer', 'examples'],
};

/** A workspace package: its folder, its npm name and its layer in the picture. */
interface Unit {
  readonly dir: string;
  readonly name: string;
  readonly layer: string;
}

const units: Unit[] = [
  ...['packages', 'examples'].flatMap((group) =>
    readdirSync(join(root, group)).map((d) => {
      const dir = `${group}/${d}`;
      const name = (JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as { name: string }).name;
      return { dir, name, layer: group === 'examples' ? 'examples' : d };
    }),
  ),
  { dir: 'bench', name: '@flint/bench', layer: 'bench' },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .map((f) => `${dir}/${f.split(sep).join('/')}`)
    .filter((f) => /\.(ts|mts|tsx)$/.test(f) && !f.endsWith('.d.ts') && statSync(join(root, f)).isFile());
}

const unitOfPath = (file: string): Unit | undefined => units.find((u) => file === u.dir || file.startsWith(`${u.dir}/`));
const unitOfName = (name: string): Unit | undefined => units.find((u) => name === u.name || name.startsWith(`${u.name}/`));

/** One import of one file: who imports whom. */
interface Edge {
  readonly file: string;
  readonly specifier: string;
  readonly from: Unit;
  readonly to: Unit;
}

/** A relative import's target file, from the workspace root (`./x.js` is the source `x.ts`). */
const target = (file: string, specifier: string): string =>
  relative(root, resolve(root, dirname(file), specifier)).split(sep).join('/').replace(/\.js$/, '.ts');

/** Every import of every source file (src of packages and examples, bench/src), tests included, that lands in another package. */
function workspaceImports(): Edge[] {
  const edges: Edge[] = [];
  for (const from of units) {
    for (const file of sourceFiles(`${from.dir}/src`)) {
      const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
      for (const { fileName: specifier } of info.importedFiles) {
        const to = specifier.startsWith('.') ? unitOfPath(target(file, specifier)) : unitOfName(specifier);
        if (to !== undefined && to !== from) edges.push({ file, specifier, from, to });
      }
    }
  }
  return edges;
}

/** The imports between files of one package (relative specifiers), type-only imports included. */
function fileImports(unit: Unit): Array<[string, string]> {
  return sourceFiles(`${unit.dir}/src`).flatMap((file) =>
    ts
      .preProcessFile(readFileSync(join(root, file), 'utf8'), true, true)
      .importedFiles.filter((i) => i.fileName.startsWith('.'))
      .map((i): [string, string] => [file, target(file, i.fileName)])
      .filter(([, to]) => unitOfPath(to) === unit),
  );
}

/** The forbidden imports among `edges`, one line each. */
function violations(edges: readonly Edge[]): string[] {
  return edges
    .filter((e) => e.from.layer !== e.to.layer && !ALLOWED[e.from.layer]!.includes(e.to.layer))
    .map((e) => `${e.file} imports '${e.specifier}': ${e.from.layer} -> ${e.to.layer} is not allowed (${e.from.layer} may import ${ALLOWED[e.from.layer]!.join(', ') || 'no other package'})`);
}

/** Cycles in a graph given by its arrows, each as `a -> b -> a`. */
function cycles(arrows: ReadonlyArray<readonly [string, string]>): string[] {
  const next = new Map<string, Set<string>>();
  for (const [from, to] of arrows) next.set(from, (next.get(from) ?? new Set()).add(to));
  const found = new Set<string>();
  const walk = (path: string[]): void => {
    for (const n of next.get(path[path.length - 1]!) ?? []) {
      const at = path.indexOf(n);
      if (at >= 0) {
        const loop = path.slice(at);
        const start = loop.indexOf([...loop].sort()[0]!);
        found.add([...loop.slice(start), ...loop.slice(0, start), loop[start]!].join(' -> '));
      } else walk([...path, n]);
    }
  };
  for (const n of next.keys()) walk([n]);
  return [...found].sort();
}

const edges = workspaceImports();

describe('package architecture', () => {
  it('sees the imports it checks (a sanity check of the reader itself)', () => {
    const pairs = new Set(edges.map((e) => `${e.from.layer} -> ${e.to.layer}`));
    for (const pair of ['callbacks -> core', 'loggers -> core', 'backends -> core', 'trainer -> backends', 'trainer -> callbacks', 'trainer -> loggers', 'examples -> trainer', 'bench -> trainer']) {
      expect(pairs, pair).toContain(pair);
    }
  });

  it('every import follows the arrows: core <- callbacks, loggers, backends <- trainer <- examples, bench', () => {
    expect(violations(edges)).toEqual([]);
  });

  it('the packages import each other without cycles', () => {
    expect(cycles(edges.map((e) => [e.from.name, e.to.name] as const))).toEqual([]);
  });

  it("no package's files import each other in a cycle (type-only imports included)", () => {
    expect(units.flatMap((u) => cycles(fileImports(u)))).toEqual([]);
  });

  it("the trainer's loops do not import the Trainer: no file of packages/trainer/src/internal imports trainer.ts", () => {
    const trainer = units.find((u) => u.layer === 'trainer')!;
    const back = fileImports(trainer)
      .filter(([from, to]) => from.startsWith(`${trainer.dir}/src/internal/`) && to === `${trainer.dir}/src/trainer.ts`)
      .map(([from]) => `${from} imports trainer.ts`);
    expect(fileImports(trainer).some(([from]) => from.startsWith(`${trainer.dir}/src/internal/`)), 'reads the internal files').toBe(true);
    expect(back).toEqual([]);
  });

  it('core/src/hooks.ts reaches core/src/lightning-module.ts through no import, type-only ones included (no hooks <-> module cycle)', () => {
    const core = units.find((u) => u.layer === 'core')!;
    const arrows = fileImports(core);
    const seen = new Set([`${core.dir}/src/hooks.ts`]);
    for (const file of seen) for (const [from, to] of arrows) if (from === file) seen.add(to);
    expect(seen.size, 'follows the imports of hooks.ts').toBeGreaterThan(1);
    expect(seen.has(`${core.dir}/src/lightning-module.ts`)).toBe(false);
    expect(arrows.some(([from, to]) => from === `${core.dir}/src/lightning-module.ts` && to === `${core.dir}/src/hooks.ts`), 'the module imports the hooks').toBe(true);
  });

  it('every package declares the workspace packages it imports by name (devDependencies for tests)', () => {
    const undeclared = edges
      .filter((e) => !e.specifier.startsWith('.'))
      .filter((e) => {
        const manifest = JSON.parse(readFileSync(join(root, e.from.dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
        return manifest.dependencies?.[e.to.name] === undefined && manifest.devDependencies?.[e.to.name] === undefined;
      })
      .map((e) => `${e.file} imports '${e.specifier}', which ${e.from.dir}/package.json does not declare`);
    expect([...new Set(undeclared)]).toEqual([]);
  });

  it('only @flint/backends registers kernels, runs TensorFlow ops directly or loads a backend package', () => {
    const backendCode = /\bregisterKernel\(|\.executeOp\(|(\bfrom\s+|\bimport\(\s*)['"]@tensorflow\/tfjs-(backend-wasm|node|node-gpu)['"]/;
    const outside = units
      .filter((u) => u.dir.startsWith('packages/') && u.layer !== 'backends')
      .flatMap((u) => sourceFiles(`${u.dir}/src`))
      .filter((f) => !/\.test(-d)?\.ts$/.test(f) && backendCode.test(readFileSync(join(root, f), 'utf8')));
    expect(outside).toEqual([]);
  });
});
