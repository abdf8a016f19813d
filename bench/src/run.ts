/**
 * `pnpm bench`: runs the shared benchmark workload with every peer, each in its own process, one
 * at a time, and writes bench/results/latest.{json,md}. See docs/benchmarks.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mnistFiles } from '@flint/example-mnist/mnist-data';
import { USAGE, parseBenchArgs, type BenchOptions } from './args.js';
import { type Ceiling, ceilingLines } from './ceiling.js';
import { lastLines, log, pythonFor, runProcess, tagged } from './procs.js';
import { runScale } from './scale.js';
import { ratios, summarize, toMarkdown, type BenchReport, type Failure, type Skip } from './summary.js';
import { CONFIGS, SKIP_EXIT_CODE, isJsPeer, type Backend, type Peer, type RunResult } from './workload.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const benchDir = path.resolve(here, '..');
const rootDir = path.resolve(benchDir, '..');
const runnerJs = path.join(here, 'runner.js');
const peerPy = path.join(benchDir, 'python', 'peer.py');

interface Cell {
  readonly peer: Peer;
  readonly backend: Backend | 'python';
}

function label(cell: Cell): string {
  return isJsPeer(cell.peer) ? `${cell.peer}@${cell.backend}` : cell.peer;
}

function commandArgs(
  cell: Cell,
  python: string | undefined,
  extra: readonly string[],
): { cmd: string; args: string[] } {
  if (isJsPeer(cell.peer)) return { cmd: process.execPath, args: [runnerJs, '--peer', cell.peer, '--backend', cell.backend, ...extra] };
  return { cmd: python ?? 'python3', args: [peerPy, '--peer', cell.peer, ...extra] };
}

async function main(): Promise<void> {
  if (process.argv.includes('--scale')) {
    await runScale(process.argv.slice(2).filter((a) => a !== '--scale'));
    return;
  }
  const loadAtStart = os.loadavg();
  let options: BenchOptions;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    process.exit(2);
  }
  if (options.help) {
    log(USAGE);
    return;
  }

  const skipped: Skip[] = [];
  const failures: Failure[] = [];
  const results: RunResult[] = [];
  const candidates: Cell[] = [];
  for (const peer of options.peers) {
    if (isJsPeer(peer)) {
      for (const backend of options.backends) if (!options.skip.includes(`${peer}@${backend}`)) candidates.push({ peer, backend });
    }
    else candidates.push({ peer, backend: 'python' });
  }

  let python: string | undefined;
  if (candidates.some((c) => c.backend === 'python')) {
    const found = await pythonFor(options.python);
    if ('python' in found) python = found.python;
    else {
      for (const c of candidates.filter((x) => x.backend === 'python')) skipped.push({ ...c, reason: found.reason });
    }
  }

  // Preflight: each peer process once with --check, so that a missing peer is skipped up front.
  const cells: Cell[] = [];
  for (const cell of candidates) {
    if (skipped.some((s) => s.peer === cell.peer && s.backend === cell.backend)) continue;
    const { cmd, args } = commandArgs(cell, python, ['--check']);
    const out = await runProcess(cmd, args, 300);
    const ok = tagged(out.stdout, 'BENCH_OK');
    if (out.code === 0 && ok !== undefined) {
      cells.push(cell);
      log(`bench: ${label(cell)} ready: ${ok}`);
    } else {
      const reason =
        out.code === SKIP_EXIT_CODE
          ? (tagged(out.stdout, 'BENCH_SKIP') ?? 'skipped')
          : `its check failed (exit ${out.code}): ${lastLines(out.stderr) || lastLines(out.stdout)}`;
      skipped.push({ ...cell, reason });
      log(`bench: SKIP ${label(cell)}: ${reason}`);
    }
  }

  const ceilings: Ceiling[] = [];
  const files = mnistFiles('train');
  const total = options.runs * options.configs.length * cells.length;
  let done = 0;
  for (let run = 1; run <= options.runs; run++) {
    for (const config of options.configs) {
      for (const cell of cells) {
        done++;
        const extra = ['--config', config, '--samples', String(options.samples), '--warmup', String(options.warmupSteps), '--epochs', String(options.epochs)];
        if (!isJsPeer(cell.peer)) extra.push('--images', files.images, '--labels', files.labels);
        else if (options.live) extra.push('--live');
        // The start of time-to-first-step: now, as the process is spawned (the same clock for every peer).
        extra.push('--spawned-at', String(Date.now()));
        const { cmd, args } = commandArgs(cell, python, extra);
        const prefix = `[${done}/${total}] run ${run} ${config} ${label(cell)}`;
        // FLINT_VERBOSE: the Trainer's backend line with its details (threads, kernels), kept beside the figures.
        const out = await runProcess(cmd, args, options.timeoutSec, { ...process.env, FLINT_VERBOSE: '1' });
        const json = tagged(out.stdout, 'BENCH_RESULT');
        if (out.code === 0 && json !== undefined) {
          const parsed = JSON.parse(json) as RunResult;
          // The Trainer prints its backend choice once ("Flint: accelerator ..."): keep it beside the figures.
          const choice = out.stdout.split('\n').find((l) => l.startsWith('Flint: '));
          const r: RunResult = choice === undefined ? parsed : { ...parsed, detail: `${parsed.detail}; ${choice.trim()}` };
          results.push(r);
          const memory = [
            r.peakRssMb === undefined ? undefined : `peak RSS ${Math.round(r.peakRssMb)} MB`,
            r.firstStepSec === undefined ? undefined : `first step at ${r.firstStepSec.toFixed(2)} s`,
            (r.rssAfterEpochMb?.length ?? 0) > 1 ? `RSS per epoch ${r.rssAfterEpochMb!.map((m) => Math.round(m)).join(' ')} MB` : undefined,
          ].filter(Boolean);
          log(`${prefix}: ${Math.round(r.samplesPerSec).toLocaleString('en-US')} samples/s (${r.seconds.toFixed(2)} s, loss ${r.finalLoss.toFixed(3)}; ${memory.join(', ')})`);
        } else {
          const message = out.timedOut
            ? `timed out after ${options.timeoutSec} s`
            : `exit ${out.code}: ${lastLines(out.stderr) || lastLines(out.stdout)}`;
          failures.push({ ...cell, config, run, message });
          log(`${prefix}: FAILED ${message}`);
        }
      }
      // wasm's matmul ceiling for this MLP, under the same load as the runs beside it (ceiling.ts).
      if (cells.some((c) => c.backend === 'wasm-flint') && CONFIGS[config].conv === undefined) {
        const out = await runProcess(process.execPath, [path.join(here, 'ceiling.js'), '--config', config], options.timeoutSec);
        const json = tagged(out.stdout, 'BENCH_CEILING');
        if (out.code === 0 && json !== undefined) {
          const c = JSON.parse(json) as Ceiling;
          ceilings.push(c);
          log(`run ${run} ${config} wasm matmul ceiling: ${Math.round(c.samplesPerSec).toLocaleString('en-US')} samples/s (${(c.flopPerSec / 1e9).toFixed(1)} GFLOP/s, ${c.threads} thread(s))`);
        } else log(`run ${run} ${config} wasm matmul ceiling: FAILED exit ${out.code}: ${lastLines(out.stderr)}`);
      }
    }
  }

  const cellSummaries = summarize(results);
  const cpus = os.cpus();
  const report: BenchReport = {
    date: new Date().toISOString(),
    command: ['pnpm bench', ...process.argv.slice(2)].join(' '),
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', node: process.version, loadAverage: loadAtStart, loadAverageEnd: os.loadavg() },
    samples: options.samples,
    warmupSteps: options.warmupSteps,
    epochs: options.epochs,
    ...(options.live ? { live: true } : {}),
    runs: options.runs,
    configs: options.configs,
    cells: cellSummaries,
    ratios: ratios(cellSummaries),
    skipped,
    failures,
  };
  const flintWasm = (config: string) => cellSummaries.find((c) => c.peer === 'flint' && c.backend === 'wasm-flint' && c.config === config)?.median;
  const markdown = [toMarkdown(report).trimEnd(), ...ceilingLines(ceilings, flintWasm), ''].join('\n');
  const outDir = options.outDir ?? path.join(benchDir, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'latest.json'), `${JSON.stringify({ ...report, ceilings }, null, 2)}\n`);
  await writeFile(path.join(outDir, 'latest.md'), markdown);
  log('');
  log(markdown);
  log(`bench: written ${path.relative(rootDir, path.join(outDir, 'latest.json'))} and latest.md`);
  if (options.samples < 60000) log(`bench: ${options.samples} samples per epoch: a check of the harness, not a benchmark figure.`);
  if (failures.length > 0) process.exitCode = 1;
}

await main();
