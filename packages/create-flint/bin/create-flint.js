#!/usr/bin/env node
// The `create-flint` command (`npm create flint@latest my-app`). A committed file, so that package
// managers can link the bin before the TypeScript is built; it loads the built command when it runs.
let cli;
try {
  cli = await import('../dist/index.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/index.js')) {
    process.stderr.write('create-flint: the package is not built (dist/index.js is missing); in the Flint repository run `pnpm build` first.\n');
    process.exit(1);
  }
  throw error;
}
process.exitCode = cli.main(process.argv.slice(2));
