#!/usr/bin/env node
// The `flint` command's entry: a committed file, so that package managers can link the bin before
// the TypeScript is built (in the repository); it loads the built command only when it runs.
let cli;
try {
  cli = await import('../dist/cli.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    process.stderr.write('flint: @flint/backends is not built (dist/cli.js is missing); in the Flint repository run `pnpm build` first.\n');
    process.exit(1);
  }
  throw error;
}
process.exitCode = await cli.main(process.argv.slice(2));
