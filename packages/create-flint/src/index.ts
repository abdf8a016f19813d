/**
 * `npm create flint@latest my-app`: writes a new Flint project into `my-app` (a LightningModule, a
 * DataModule over a small CSV, a train script writing a TensorBoard run, a vitest test, a README).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, cpSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
/** The template's files, copied as they are (`gitignore` becomes `.gitignore`: npm drops dot-gitignores from tarballs). */
export const TEMPLATE_DIR = path.join(packageRoot, 'template');

/** This package's version; the @flint/* packages are released together with it (changesets `fixed`). */
export function ownVersion(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

export interface CreateOptions {
  /** The folder to create (must not exist, or be empty). */
  dir: string;
  /** The package name; default: the folder's name. */
  name?: string;
  /** The version range of the @flint/* packages; default `^<this package's version>`. */
  flintVersion?: string;
}

/** Thrown for bad input: the message says what was wrong and what would do. */
export class CreateFlintError extends Error {
  override readonly name = 'CreateFlintError';
}

// npm's rules for a package name, the ones a folder name can break.
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

/** The project's package.json. */
export function projectPackageJson(name: string, flintVersion: string): Record<string, unknown> {
  return {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: {
      build: 'tsc',
      train: 'tsc && node dist/src/train.js',
      test: 'vitest run',
      typecheck: 'tsc --noEmit',
    },
    dependencies: {
      '@flint/callbacks': flintVersion,
      '@flint/core': flintVersion,
      '@flint/loggers': flintVersion,
      '@flint/metrics': flintVersion,
      '@flint/trainer': flintVersion,
      '@tensorflow/tfjs': '^4.22.0',
    },
    devDependencies: {
      '@types/node': '^20.19.0',
      typescript: '~5.9.3',
      vitest: '^4.1.12',
    },
    engines: { node: '>=20.19' },
  };
}

/** Writes the project; returns the absolute folder. */
export function createProject(options: CreateOptions): string {
  const dir = path.resolve(options.dir);
  const name = options.name ?? path.basename(dir).toLowerCase();
  if (!NAME.test(name) || name.length > 214) {
    throw new CreateFlintError(
      `create-flint: '${name}' is not a valid npm package name (lower-case letters, digits, '-', '.', '_' and '~', not starting with '.' or '_'); pass --name, e.g. --name my-app.`,
    );
  }
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new CreateFlintError(`create-flint: ${dir} exists and is not a folder; choose another name.`);
    const entries = readdirSync(dir);
    if (entries.length > 0) {
      throw new CreateFlintError(`create-flint: ${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose a new folder name.`);
    }
  }
  // Written next to the target, then renamed: an interrupted run leaves no half project under the name.
  const parent = path.dirname(dir);
  mkdirSync(parent, { recursive: true });
  const staging = path.join(parent, `.${path.basename(dir)}.create-flint-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    cpSync(TEMPLATE_DIR, staging, { recursive: true });
    renameSync(path.join(staging, 'gitignore'), path.join(staging, '.gitignore'));
    const readme = path.join(staging, 'README.md');
    writeFileSync(readme, readFileSync(readme, 'utf8').replaceAll('{{name}}', name));
    const pkg = projectPackageJson(name, options.flintVersion ?? `^${ownVersion()}`);
    writeFileSync(path.join(staging, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
    if (existsSync(dir)) rmSync(dir, { recursive: true }); // empty, checked above
    renameSync(staging, dir);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  return dir;
}

const USAGE = `Usage: npm create flint@latest <folder> [-- --name <package-name>]

Creates a Flint project in <folder>: a LightningModule, a DataModule over a CSV, a train script
that writes a TensorBoard run, a vitest test and a README.

  --name NAME   the package name (default: the folder's name)
  -h, --help    show this text
`;

/** The command: returns the exit code (0 done, 1 failed, 2 usage). */
export function main(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): number {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    err(`create-flint: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help === true) {
    out(USAGE);
    return 0;
  }
  const [folder, ...extra] = parsed.positionals;
  if (folder === undefined || extra.length > 0) {
    err(`create-flint: ${folder === undefined ? 'give the folder to create' : `one folder only (received ${parsed.positionals.join(', ')})`}.\n\n${USAGE}`);
    return 2;
  }
  let dir: string;
  try {
    dir = createProject({ dir: folder, ...(parsed.values.name === undefined ? {} : { name: parsed.values.name }) });
  } catch (error) {
    if (error instanceof CreateFlintError) {
      err(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const rel = path.relative(process.cwd(), dir) || '.';
  out(`Created ${rel}: a Flint project (an Iris classifier).

Next:
  cd ${rel}
  npm install
  npm run train    # trains; writes a TensorBoard run under logs/
  npm test
`);
  return 0;
}
