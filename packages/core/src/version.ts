import { createRequire } from 'node:module';

/** The version of @flint/core, read from its package.json (recorded in checkpoints). */
export const FLINT_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
