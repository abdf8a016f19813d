#!/usr/bin/env node
// Takes a screenshot of a log dir in TensorBoard, for the examples' READMEs:
//
//   node scripts/tensorboard-screenshot.mjs <logdir> <out.png> [page] [--width 1200] [--height 800]
//
// page is the part after '#' of TensorBoard's URL (default 'timeseries'; e.g.
// 'scalars&_smoothingWeight=0&tagFilter=epoch_loss'). TensorBoard is started with
// `flint tensorboard` (its venv: FLINT_TENSORBOARD_VENV or the default), the page rendered by
// headless Chromium (CHROMIUM or /usr/bin/chromium), then TensorBoard is stopped.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { width: { type: 'string', default: '1200' }, height: { type: 'string', default: '800' } }, allowPositionals: true });
const [logdir, out, page = 'timeseries'] = positionals;
if (logdir === undefined || out === undefined) {
  console.error('Usage: node scripts/tensorboard-screenshot.mjs <logdir> <out.png> [page] [--width 1200] [--height 800]');
  process.exit(2);
}
const cli = fileURLToPath(new URL('../packages/backends/dist/cli.js', import.meta.url));
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
const child = spawn(process.execPath, [cli, 'tensorboard', logdir], { stdio: ['ignore', 'pipe', 'inherit'] });
let text = '';
child.stdout.on('data', (d) => (text += d.toString()));
let url;
while (url === undefined) {
  if (child.exitCode !== null) process.exit(1);
  url = /at (http:\/\/127\.0\.0\.1:\d+\/) \(Ctrl\+C stops it\)/.exec(text)?.[1];
  await new Promise((r) => setTimeout(r, 200));
}
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-shot-'));
const r = spawnSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, `--window-size=${values.width},${values.height}`,
  '--virtual-time-budget=20000', `--screenshot=${path.resolve(out)}`, `${url}#${page}`], { stdio: 'inherit', timeout: 180_000 });
fs.rmSync(profile, { recursive: true, force: true });
child.kill('SIGTERM');
process.exit(r.status ?? 1);
