#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { buildSite, packageRoot, serveSite } from './index.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string' },
    'train-limit': { type: 'string' },
    port: { type: 'string' },
    'no-train': { type: 'boolean' },
    help: { type: 'boolean' },
  },
});
if (values.help === true) {
  console.log('Usage: pnpm mnist-web [--epochs 5] [--train-limit N] [--port 8080] [--no-train (serve the model exported last time)]');
  process.exit(0);
}
const num = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min} (received '${v}')`);
    process.exit(2);
  }
  return n;
};
const epochs = num('epochs', values.epochs, 1);
const trainLimit = num('train-limit', values['train-limit'], 100);
const port = num('port', values.port, 0);
const siteDir = `${packageRoot}/site`;
if (values['no-train'] !== true) await buildSite({ outDir: siteDir, ...(epochs === undefined ? {} : { maxEpochs: epochs }), ...(trainLimit === undefined ? {} : { trainLimit }) });
const server = await serveSite({ siteDir, ...(port === undefined ? {} : { port }) });
console.log(`Open ${server.url} (Ctrl-C stops the server)`);
