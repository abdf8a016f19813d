// Test-only Node module hooks: lets a child process run this package's TypeScript sources (and
// @flint/core's) without a build, by transpiling each .ts file with the `typescript` package.
// Use: node --import <this folder>/register-ts.mjs child.ts
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// The loggers need only errors and parseOptions from core at run time: skip loading tfjs.
const coreIndex = new URL('./core-shim.ts', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@flint/core') return { url: coreIndex, shortCircuit: true };
  if ((specifier.startsWith('.') || specifier.startsWith('/')) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const candidate = new URL(specifier.replace(/\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(candidate))) return { url: candidate.href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  const source = await readFile(fileURLToPath(url), 'utf8');
  const out = ts.transpileModule(source, {
    fileName: fileURLToPath(url),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true, sourceMap: false },
  });
  return { format: 'module', source: out.outputText, shortCircuit: true };
}

