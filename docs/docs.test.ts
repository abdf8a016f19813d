// The docs' promises, checked: every ```ts block in README.md and docs/**/*.md type-checks against the
// workspace sources (one TypeScript program for all of them), and every relative link points to a file
// that exists.
//
// A block is checked as a module of its own. Two HTML comments right above a block say what it may
// assume, so that the assumptions are visible in the Markdown source:
//   <!-- prelude: images, labels -->   free variables, declared from PRELUDE below (a short, named list)
//   <!-- continues -->                 the block goes on from the previous ts block of the same page
// ```ts-skip marks a deliberately partial block (rare; say why in the text). Other languages are ignored.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const docsDir = join(root, 'docs');
const pages = [
  'README.md',
  ...readdirSync(docsDir, { recursive: true, encoding: 'utf8' })
    .map((f) => f.split('\\').join('/'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const packageReadmes = readdirSync(join(root, 'packages'))
  .map((p) => `packages/${p}/README.md`)
  .filter((p) => existsSync(join(root, p)));

const T = (t: string) => `import('@tensorflow/tfjs').${t}`;
const Batch = `[${T('Tensor2D')}, ${T('Tensor1D')}]`;
/** The free variables a block may assume, each with the type a reader would expect. */
const PRELUDE: Record<string, string> = {
  images: `declare const images: ${T('Tensor2D')};`,
  labels: `declare const labels: ${T('Tensor1D')};`,
  pixels: 'declare const pixels: Float32Array;',
  labelData: 'declare const labelData: Int32Array;',
  xs: `declare const xs: ${T('Tensor2D')};`,
  ys: `declare const ys: ${T('Tensor2D')}; // one-hot labels`,
  seed: 'declare const seed: number;',
  source: `declare const source: import('@flint/core').TensorDataset<${Batch}>;`,
  module: `declare const module: import('@flint/core').LightningModule<${Batch}>;`,
  trainLoader: `declare const trainLoader: import('@flint/core').DataLoader<${Batch}>;`,
  valLoader: `declare const valLoader: import('@flint/core').DataLoader<${Batch}>;`,
  testLoader: `declare const testLoader: import('@flint/core').DataLoader<${Batch}>;`,
  train: `declare const train: import('@flint/core').DataLoader<${Batch}>;`,
  val: `declare const val: import('@flint/core').DataLoader<${Batch}>;`,
  model: `declare const model: ${T('LayersModel')};`,
  trainer: `declare const trainer: import('@flint/trainer').Trainer;`,
};

interface Block {
  page: string;
  /** 1-based line of the first code line in the page. */
  line: number;
  code: string;
  prelude: string[];
  continues: boolean;
}

interface Segment {
  page: string;
  line: number;
  /** First line (0-based) of this segment in the generated file, and its length in lines. */
  start: number;
  length: number;
}

interface Unit {
  file: string;
  text: string;
  block: Block;
  segments: Segment[];
}

function extractBlocks(page: string): Block[] {
  const lines = readFileSync(join(root, page), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const lang = open[2]!;
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j]!)) j++;
    if (lang === 'ts' || lang === 'typescript') {
      const comments: string[] = [];
      for (let k = i - 1; k >= 0 && /^\s*<!--.*-->\s*$/.test(lines[k]!); k--) comments.push(lines[k]!);
      const prelude = comments.flatMap((c) => {
        const m = /<!--\s*prelude:\s*(.*?)\s*-->/.exec(c);
        return m ? m[1]!.split(',').map((s) => s.trim()).filter(Boolean) : [];
      });
      blocks.push({
        page,
        line: i + 2,
        code: lines.slice(i + 1, j).join('\n'),
        prelude,
        continues: comments.some((c) => /<!--\s*continues\s*-->/.test(c)),
      });
    }
    i = j;
  }
  return blocks;
}

function buildUnits(): Unit[] {
  const units: Unit[] = [];
  for (const page of [...pages, ...packageReadmes]) {
    const blocks = extractBlocks(page);
    const chain: Block[] = [];
    blocks.forEach((block, n) => {
      if (!block.continues) chain.length = 0;
      else if (chain.length === 0) throw new Error(`${page}:${block.line}: <!-- continues --> but no ts block before it`);
      chain.push(block);
      const names = [...new Set(chain.flatMap((b) => b.prelude))];
      for (const name of names) {
        if (!(name in PRELUDE)) throw new Error(`${page}:${block.line}: unknown prelude name '${name}' (known: ${Object.keys(PRELUDE).join(', ')})`);
      }
      const header = ['export {};', ...names.map((name) => PRELUDE[name]!)];
      const segments: Segment[] = [];
      const body: string[] = [];
      let at = header.length;
      for (const b of chain) {
        const length = b.code.split('\n').length;
        segments.push({ page: b.page, line: b.line, start: at, length });
        body.push(b.code);
        at += length;
      }
      const file = join(docsDir, '__blocks__', `${page.replace(/[/.]/g, '_')}_${n}_L${block.line}.ts`);
      units.push({ file, text: [...header, ...body].join('\n') + '\n', block, segments });
    });
  }
  return units;
}

function where(unit: Unit, line0: number): string {
  for (const s of unit.segments) {
    if (line0 >= s.start && line0 < s.start + s.length) return `${s.page}:${s.line + line0 - s.start}`;
  }
  return `${unit.block.page}:${unit.block.line} (prelude line ${line0 + 1})`;
}

const units = buildUnits();
const failures = new Map<string, string[]>();

describe('docs code blocks', () => {
  beforeAll(() => {
    const config = ts.readConfigFile(join(root, 'tsconfig.test.json'), ts.sys.readFile);
    const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
    const virtual = new Map(units.map((u) => [u.file, u.text]));
    const host = ts.createCompilerHost(parsed.options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, onError, create) => {
      const text = virtual.get(resolve(name));
      return text !== undefined ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, onError, create);
    };
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => virtual.has(resolve(name)) || fileExists(name);
    const readFile = host.readFile.bind(host);
    host.readFile = (name) => virtual.get(resolve(name)) ?? readFile(name);
    const program = ts.createProgram({ rootNames: [...virtual.keys()], options: { ...parsed.options, noEmit: true }, host });
    for (const unit of units) {
      const sf = program.getSourceFile(unit.file)!;
      const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
      failures.set(
        unit.file,
        diags.map((d) => {
          const { line } = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : { line: -1 };
          return `${where(unit, line)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
        }),
      );
    }
  }, 60_000);

  it('finds the blocks', () => {
    expect(units.length).toBeGreaterThan(20);
  });

  it.each(units.map((u) => [`${u.block.page}:${u.block.line}`, u] as const))('%s type-checks', (_, unit) => {
    expect(failures.get(unit.file)).toEqual([]);
  });
});

describe('docs links', () => {
  const linkPages = [...pages, ...packageReadmes];
  it.each(linkPages)('every relative link in %s points to an existing file', (page) => {
    const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
      const path = target.split('#')[0]!;
      if (!existsSync(resolve(root, dirname(page), path))) broken.push(target);
    }
    expect(broken).toEqual([]);
  });

  // Package READMEs are read on the npm registry, where ../../docs does not exist: their links are absolute,
  // and those into this repository name files that exist.
  it.each(packageReadmes)('every link in %s is absolute and its repository file exists', (page) => {
    const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
    const bad: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      const inRepo = /^https:\/\/github\.com\/flint-ts\/flint\/(?:blob|tree)\/main\/([^#]*)/.exec(target);
      if (inRepo !== null ? !existsSync(join(root, inRepo[1]!)) : !/^https:\/\//.test(target)) bad.push(target);
    }
    expect(bad).toEqual([]);
  });

  it('docs/README.md links every page of docs/', () => {
    const index = readFileSync(join(docsDir, 'README.md'), 'utf8');
    const missing = pages
      .filter((p) => p.startsWith('docs/') && p !== 'docs/README.md')
      .map((p) => p.slice('docs/'.length))
      .filter((f) => !index.includes(`](${f})`) && !index.includes(`](./${f})`));
    expect(missing).toEqual([]);
  });
});
