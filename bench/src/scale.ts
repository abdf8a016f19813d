/**
 * `pnpm bench --scale`: cost as the work grows, Flint beside plain PyTorch, each measurement in its
 * own process, one at a time. Three parts (docs/benchmarks.md):
 *
 * - samples: epoch time of MLP-S for 1k, 10k, 60k and 600k samples (linear is the goal);
 * - widths: epoch time of a 784-W-10 MLP for W = 128 .. 2048 (the matmul-bound regime);
 * - stream: N MNIST-shaped samples generated on disk as a record file (default 2 million, 6.3 GB),
 *   one epoch of MLP-S streamed from it, with peak RSS and throughput against in memory, beside
 *   PyTorch's IterableDataset + DataLoader reading the same file.
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RecordDataset } from '@flint/core';
import { mnistFiles } from '@flint/example-mnist/mnist-data';
import { benchDir, lastLines, log, pythonFor, runProcess, tagged } from './procs.js';
import { BACKENDS, type Backend } from './workload.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const scaleRunner = path.join(here, 'scale-runner.js');
const scalePy = path.join(benchDir, 'python', 'scale_peer.py');

export const SCALE_USAGE = `pnpm bench --scale [options]

  --parts LIST           samples,widths,stream (default: all)
  --sizes LIST           samples per epoch for the samples part (default 1000,10000,60000,600000)
  --widths LIST          hidden widths for the widths part (default 128,256,512,1024,2048)
  --width-samples N      samples per epoch in the widths part (default 60000)
  --batch N              batch size (default 64)
  --backend NAME         Flint's backend: ${BACKENDS.join(', ')} (default wasm-flint)
  --stream-samples N     records generated for the stream part (default 2000000 = 6.3 GB)
  --stream-dir DIR       where the record file goes (default .cache/bench-stream); kept and reused
  --memory-samples N     samples of the in-memory reference run beside the stream part (default 60000)
  --workers N            PyTorch DataLoader workers in the stream part (default 1)
  --python PATH          Python with torch (default: bench/python/setup-venv.sh's venv)
  --out DIR              where scale.json and scale.md go (default bench/results)
  --timeout SEC          limit for one process (default 3600)`;

interface Measure {
  seconds: number;
  samples: number;
  samplesPerSec: number;
  peakRss: number;
  peakRssWorkers?: number;
  peakRecordsHeld?: number;
  finalLoss?: number;
  detail?: string;
}

type Outcome = Measure | { error: string };

function ints(name: string, raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const items = raw.split(',').map(Number);
  if (items.length === 0 || !items.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--${name}: whole numbers >= 1, comma-separated (received ${raw})`);
  return items;
}

async function measure(cmd: string, args: string[], timeoutSec: number): Promise<Outcome> {
  const out = await runProcess(cmd, args, timeoutSec);
  const json = tagged(out.stdout, 'SCALE_RESULT');
  if (out.code === 0 && json !== undefined) return JSON.parse(json) as Measure;
  return { error: out.timedOut ? `timed out after ${timeoutSec} s` : `exit ${out.code}: ${lastLines(out.stderr) || lastLines(out.stdout)}` };
}

const fmt = (o: Outcome | undefined, f: (m: Measure) => string): string => (o === undefined ? '-' : 'error' in o ? `failed (${o.error.slice(0, 80)})` : f(o));
const secs = (m: Measure): string => m.seconds.toFixed(2);
const rate = (m: Measure): string => Math.round(m.samplesPerSec).toLocaleString('en-US');
const mb = (bytes: number): string => `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MB`;
const ratio = (a: Outcome | undefined, b: Outcome | undefined): string =>
  a === undefined || b === undefined || 'error' in a || 'error' in b ? '-' : `${(a.samplesPerSec / b.samplesPerSec).toFixed(2)}x`;

export async function runScale(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      parts: { type: 'string' },
      sizes: { type: 'string' },
      widths: { type: 'string' },
      'width-samples': { type: 'string' },
      batch: { type: 'string' },
      backend: { type: 'string', default: 'wasm-flint' },
      'stream-samples': { type: 'string' },
      'stream-dir': { type: 'string' },
      workers: { type: 'string' },
      'memory-samples': { type: 'string' },
      python: { type: 'string' },
      out: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    log(SCALE_USAGE);
    return;
  }
  const parts = (values.parts ?? 'samples,widths,stream').split(',');
  const bad = parts.filter((p) => !['samples', 'widths', 'stream'].includes(p));
  if (bad.length > 0) throw new Error(`--parts: unknown ${bad.join(', ')}; valid: samples, widths, stream\n\n${SCALE_USAGE}`);
  const sizes = ints('sizes', values.sizes, [1000, 10_000, 60_000, 600_000]);
  const widths = ints('widths', values.widths, [128, 256, 512, 1024, 2048]);
  const one = (name: string, raw: string | undefined, fallback: number): number => ints(name, raw, [fallback])[0]!;
  const widthSamples = one('width-samples', values['width-samples'], 60_000);
  const batch = one('batch', values.batch, 64);
  const streamSamples = one('stream-samples', values['stream-samples'], 2_000_000);
  const workers = one('workers', values.workers, 1);
  const memorySamples = one('memory-samples', values['memory-samples'], 60_000);
  const timeout = one('timeout', values.timeout, 3600);
  const backend = values.backend as Backend;
  if (!BACKENDS.includes(backend)) throw new Error(`--backend: one of ${BACKENDS.join(', ')} (received ${values.backend})`);
  const loadAtStart = os.loadavg();

  const found = await pythonFor(values.python);
  const python = 'python' in found ? found.python : undefined;
  if (python === undefined) log(`bench --scale: PyTorch skipped: ${'reason' in found ? found.reason : ''}`);
  const mnist = mnistFiles('train');
  const flint = (mode: string, extra: string[]) => measure(process.execPath, [scaleRunner, mode, '--backend', backend, '--batch', String(batch), ...extra], timeout);
  const torch = (mode: string, extra: string[]) =>
    python === undefined ? Promise.resolve(undefined) : measure(python, [scalePy, mode, '--batch', String(batch), '--images', mnist.images, '--labels', mnist.labels, ...extra], timeout);

  const md: string[] = [];
  const json: Record<string, unknown> = {};
  const inMemory: { flint?: Outcome; torch?: Outcome } = {};

  if (parts.includes('samples')) {
    const rows: { samples: number; flint?: Outcome; torch?: Outcome }[] = [];
    for (const n of sizes) {
      const f = await flint('memory', ['--samples', String(n), '--hidden', '128']);
      const t = await torch('memory', ['--samples', String(n), '--hidden', '128']);
      rows.push({ samples: n, flint: f, ...(t === undefined ? {} : { torch: t }) });
      log(`scale samples ${n}: Flint ${fmt(f, secs)} s, PyTorch ${fmt(t, secs)} s`);
      if (n === memorySamples) Object.assign(inMemory, { flint: f, torch: t });
    }
    json.samples = rows;
    const perK = (o: Outcome | undefined, n: number) => fmt(o, (m) => `${((m.seconds / n) * 1000 * 1000).toFixed(1)} ms`);
    md.push(`### Epoch time vs samples (MLP-S, batch ${batch}, Flint on ${backend})`, '', '| samples | Flint s/epoch | per 1k samples | PyTorch s/epoch | per 1k samples | Flint / PyTorch (samples/s) |', '|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) md.push(`| ${r.samples.toLocaleString('en-US')} | ${fmt(r.flint, secs)} | ${perK(r.flint, r.samples)} | ${fmt(r.torch, secs)} | ${perK(r.torch, r.samples)} | ${ratio(r.flint, r.torch)} |`);
    md.push('');
  }

  if (parts.includes('widths')) {
    const rows: { width: number; flint?: Outcome; torch?: Outcome }[] = [];
    for (const w of widths) {
      const f = await flint('memory', ['--samples', String(widthSamples), '--hidden', String(w)]);
      const t = await torch('memory', ['--samples', String(widthSamples), '--hidden', String(w)]);
      rows.push({ width: w, flint: f, ...(t === undefined ? {} : { torch: t }) });
      log(`scale width ${w}: Flint ${fmt(f, secs)} s, PyTorch ${fmt(t, secs)} s`);
    }
    json.widths = rows;
    md.push(`### Epoch time vs width (784-W-10, ${widthSamples.toLocaleString('en-US')} samples, batch ${batch}, Flint on ${backend})`, '', '| width | Flint s/epoch | PyTorch s/epoch | Flint / PyTorch (samples/s) |', '|---:|---:|---:|---:|');
    for (const r of rows) md.push(`| ${r.width} | ${fmt(r.flint, secs)} | ${fmt(r.torch, secs)} | ${ratio(r.flint, r.torch)} |`);
    md.push('');
  }

  if (parts.includes('stream')) {
    const dir = path.resolve(values['stream-dir'] ?? path.join(benchDir, '..', '.cache', 'bench-stream'));
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `mnist-${streamSamples}.rec`);
    let reuse = false;
    try {
      reuse = existsSync(file) && new RecordDataset(file).length === streamSamples;
    } catch {
      rmSync(file, { force: true });
    }
    if (!reuse) {
      log(`bench --scale: writing ${streamSamples.toLocaleString('en-US')} records (${mb(streamSamples * 3140)}) to ${file} ...`);
      const g = await measure(process.execPath, [scaleRunner, 'generate', '--file', file, '--samples', String(streamSamples)], timeout);
      if ('error' in g) throw new Error(`bench --scale: generating ${file} failed: ${g.error}`);
      log(`bench --scale: written in ${g.seconds.toFixed(1)} s`);
    }
    log(`bench --scale: in-memory reference, ${memorySamples.toLocaleString('en-US')} samples ...`);
    inMemory.flint ??= await flint('memory', ['--samples', String(memorySamples), '--hidden', '128']);
    if (python !== undefined) inMemory.torch ??= await torch('memory', ['--samples', String(memorySamples), '--hidden', '128']);
    log(`bench --scale: in memory: Flint ${fmt(inMemory.flint, rate)} samples/s, PyTorch ${fmt(inMemory.torch, rate)} samples/s; streaming ...`);
    const f = await flint('stream', ['--file', file, '--hidden', '128']);
    log(`bench --scale: Flint streamed ${fmt(f, rate)} samples/s, peak RSS ${fmt(f, (m) => mb(m.peakRss))}`);
    const t = await torch('stream', ['--file', file, '--hidden', '128', '--workers', String(workers)]);
    log(`scale stream ${streamSamples}: Flint ${fmt(f, rate)} samples/s, PyTorch ${fmt(t, rate)} samples/s`);
    json.stream = { file, samples: streamSamples, flint: f, torch: t, inMemory };
    const rss = (m: Measure) => (m.peakRssWorkers ? `${mb(m.peakRss)} + workers ${mb(m.peakRssWorkers)}` : mb(m.peakRss));
    md.push(
      `### Streaming ${streamSamples.toLocaleString('en-US')} MNIST-shaped samples from disk (${mb(streamSamples * 3140)}), MLP-S, batch ${batch}`,
      '',
      '| peer | seconds | samples/s | peak RSS | vs its in-memory samples/s |',
      '|---|---:|---:|---:|---:|',
      `| Flint Trainer, RecordDataset (${backend}) | ${fmt(f, secs)} | ${fmt(f, rate)} | ${fmt(f, rss)} | ${ratio(f, inMemory.flint)} |`,
      `| PyTorch, IterableDataset + DataLoader (${workers} worker${workers === 1 ? '' : 's'}) | ${fmt(t, secs)} | ${fmt(t, rate)} | ${fmt(t, rss)} | ${ratio(t, inMemory.torch)} |`,
      `| Flint Trainer, in memory (${memorySamples.toLocaleString('en-US')}) | ${fmt(inMemory.flint, secs)} | ${fmt(inMemory.flint, rate)} | ${fmt(inMemory.flint, rss)} | |`,
      `| PyTorch, in memory (${memorySamples.toLocaleString('en-US')}) | ${fmt(inMemory.torch, secs)} | ${fmt(inMemory.torch, rate)} | ${fmt(inMemory.torch, rss)} | |`,
      '',
    );
  }

  const cpus = os.cpus();
  const header = `Machine: ${cpus.length} x ${cpus[0]?.model ?? 'unknown'}, Node ${process.version}; load average ${loadAtStart.map((l) => l.toFixed(1)).join(' ')} at start, ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at end; ${new Date().toISOString()}. One run each.`;
  const text = [`## pnpm bench --scale`, '', header, '', ...md].join('\n');
  const outDir = values.out ?? path.join(benchDir, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'scale.json'), `${JSON.stringify({ date: new Date().toISOString(), argv, loadAverage: loadAtStart, loadAverageEnd: os.loadavg(), ...json }, null, 2)}\n`);
  await writeFile(path.join(outDir, 'scale.md'), `${text}\n`);
  log('');
  log(text);
}
