import { PEER_LABELS, isJsPeer, type Backend, type ConfigId, type Peer, type RunResult } from './workload.js';

/** All runs of one peer on one backend for one configuration. */
export interface CellSummary {
  readonly peer: Peer;
  readonly backend: Backend | 'python';
  readonly config: ConfigId;
  /** samples/s of each run, in run order. */
  readonly runs: readonly number[];
  readonly median: number;
  /** (max - min) / 2 / median: the half-spread of the runs, relative. */
  readonly spread: number;
  readonly finalLoss: number;
  readonly detail: string;
  /** Median peak RSS of the runs' processes, MB; NaN when the peer did not report it. */
  readonly peakRssMb: number;
  /** Median seconds from process spawn to the first optimizer step; NaN when not reported. */
  readonly firstStepSec: number;
  /** With 3+ epochs per run: median RSS after epoch 2 and after the last epoch, and the median relative growth between them. */
  readonly growth?: { readonly epochs: number; readonly afterEpoch2Mb: number; readonly afterLastMb: number; readonly relative: number };
}

export interface Ratio {
  readonly name: string;
  readonly backend: Backend;
  readonly config: ConfigId;
  readonly value: number;
}

export interface Skip {
  readonly peer: Peer;
  readonly backend: Backend | 'python';
  readonly reason: string;
}

export interface Failure {
  readonly peer: Peer;
  readonly backend: Backend | 'python';
  readonly config: ConfigId;
  readonly run: number;
  readonly message: string;
}

export interface BenchReport {
  readonly date: string;
  readonly command: string;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    /** 1, 5 and 15 minute load averages at the start and at the end: above ~2 on 2 cores, other work competed. */
    readonly loadAverage: readonly number[];
    readonly loadAverageEnd?: readonly number[];
  };
  readonly samples: number;
  readonly warmupSteps: number;
  /** Epochs per timed span (absent: 1). */
  readonly epochs?: number;
  /** `--live`: the JavaScript peers' RSS readings after each epoch followed a full garbage collection. */
  readonly live?: boolean;
  readonly runs: number;
  readonly configs: readonly ConfigId[];
  readonly cells: readonly CellSummary[];
  readonly ratios: readonly Ratio[];
  readonly skipped: readonly Skip[];
  readonly failures: readonly Failure[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Groups run results by (peer, backend, config), keeping the order in which cells first appear. */
export function summarize(results: readonly RunResult[]): CellSummary[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = `${r.peer}|${r.backend}|${r.config}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [r]);
    else list.push(r);
  }
  return [...groups.values()].map((rs) => {
    const first = rs[0]!;
    const runs = rs.map((r) => r.samplesPerSec);
    const m = median(runs);
    const reported = (values: readonly (number | undefined)[]): number[] => values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    const withEpochs = rs.map((r) => r.rssAfterEpochMb ?? []).filter((e) => e.length >= 3);
    const growth =
      withEpochs.length === 0
        ? undefined
        : {
            epochs: median(withEpochs.map((e) => e.length)),
            afterEpoch2Mb: median(withEpochs.map((e) => e[1]!)),
            afterLastMb: median(withEpochs.map((e) => e[e.length - 1]!)),
            relative: median(withEpochs.map((e) => e[e.length - 1]! / e[1]! - 1)),
          };
    return {
      peer: first.peer,
      backend: first.backend,
      config: first.config,
      runs,
      median: m,
      spread: (Math.max(...runs) - Math.min(...runs)) / 2 / m,
      finalLoss: rs[rs.length - 1]!.finalLoss,
      detail: first.detail,
      peakRssMb: median(reported(rs.map((r) => r.peakRssMb))),
      firstStepSec: median(reported(rs.map((r) => r.firstStepSec))),
      ...(growth === undefined ? {} : { growth }),
    };
  });
}

/**
 * Flint against its peers, from the medians of this run: Flint/model.fit and Flint/hand loop on the
 * same backend, Flint/Lightning, and Flint/model.fit on stock wasm (issue 6's goal) for the other
 * backends.
 */
export function ratios(cells: readonly CellSummary[]): Ratio[] {
  const cell = (peer: Peer, backend: Backend | 'python', config: ConfigId): CellSummary | undefined =>
    cells.find((c) => c.peer === peer && c.backend === backend && c.config === config);
  const find = (peer: Peer, backend: Backend | 'python', config: ConfigId): number | undefined => cell(peer, backend, config)?.median;
  const out: Ratio[] = [];
  for (const c of cells) {
    if ((c.peer !== 'flint' && c.peer !== 'flint-compiled') || c.backend === 'python') continue;
    const backend = c.backend;
    const who = c.peer === 'flint' ? 'Flint' : 'Flint compiled';
    const add = (name: string, other: number | undefined): void => {
      if (other !== undefined && other > 0) out.push({ name: `${who} / ${name}`, backend, config: c.config, value: c.median / other });
    };
    add('model.fit', find('tfjs-fit', backend, c.config));
    add('hand loop', find('tfjs-loop', backend, c.config));
    add('Lightning', find('lightning', 'python', c.config));
    add('PyTorch', find('torch', 'python', c.config));
    if (backend !== 'wasm-stock') add('model.fit on wasm-stock', find('tfjs-fit', 'wasm-stock', c.config));
    // Memory: at most 1.00x is the goal (lower is better).
    const lightningRss = cell('lightning', 'python', c.config)?.peakRssMb;
    if (Number.isFinite(c.peakRssMb) && lightningRss !== undefined && lightningRss > 0) {
      out.push({ name: `${who} peak RSS / Lightning (lower is better)`, backend, config: c.config, value: c.peakRssMb / lightningRss });
    }
  }
  return out;
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function rowLabel(peer: Peer, backend: Backend | 'python'): string {
  return isJsPeer(peer) ? `${PEER_LABELS[peer]} (${backend})` : PEER_LABELS[peer];
}

/** The report as markdown: samples/s table, ratios, skipped peers, failures. */
export function toMarkdown(report: BenchReport): string {
  const { configs } = report;
  const lines: string[] = [];
  lines.push('# Flint benchmark results', '');
  lines.push(
    `${report.date}; \`${report.command}\`; ${report.machine.cpus} CPUs (${report.machine.cpuModel}), Node ${report.machine.node}, ` +
      `load average at start ${report.machine.loadAverage.map((l) => l.toFixed(2)).join(' ')}` +
      (report.machine.loadAverageEnd === undefined ? '.' : `, at end ${report.machine.loadAverageEnd.map((l) => l.toFixed(2)).join(' ')}.`),
  );
  lines.push(
    `Workload: real MNIST, ${int.format(report.samples)} samples per timed epoch, no shuffle, last partial batch kept, ` +
      `${report.warmupSteps} warm-up steps; ${(report.epochs ?? 1) > 1 ? `${report.epochs} epochs timed; samples/s = samples x epochs / seconds` : 'samples/s = samples / seconds of the epoch'}; median of ${report.runs} run(s), ` +
      `± half the spread between runs.`,
    '',
  );
  lines.push('## samples/s', '');
  lines.push(`| peer | ${configs.join(' | ')} |`, `|---|${configs.map(() => '---:').join('|')}|`);
  const rows = new Map<string, { peer: Peer; backend: Backend | 'python' }>();
  for (const c of report.cells) rows.set(`${c.peer}|${c.backend}`, { peer: c.peer, backend: c.backend });
  for (const { peer, backend } of rows.values()) {
    const cols = configs.map((config) => {
      const c = report.cells.find((x) => x.peer === peer && x.backend === backend && x.config === config);
      if (c === undefined) return '-';
      return c.runs.length > 1 ? `${int.format(c.median)} ±${(c.spread * 100).toFixed(0)}%` : int.format(c.median);
    });
    lines.push(`| ${rowLabel(peer, backend)} | ${cols.join(' | ')} |`);
  }
  lines.push('');
  const table = (title: string, note: string, value: (c: CellSummary) => string | undefined): void => {
    const shown = [...rows.values()].filter(({ peer, backend }) =>
      report.cells.some((c) => c.peer === peer && c.backend === backend && value(c) !== undefined),
    );
    if (shown.length === 0) return;
    lines.push(`## ${title}`, '', note, '');
    lines.push(`| peer | ${configs.join(' | ')} |`, `|---|${configs.map(() => '---:').join('|')}|`);
    for (const { peer, backend } of shown) {
      const cols = configs.map((config) => {
        const c = report.cells.find((x) => x.peer === peer && x.backend === backend && x.config === config);
        return (c === undefined ? undefined : value(c)) ?? '-';
      });
      lines.push(`| ${rowLabel(peer, backend)} | ${cols.join(' | ')} |`);
    }
    lines.push('');
  };
  table(
    'Peak RSS, MB',
    "The whole peer process's high-water mark (getrusage maxrss), median of the runs: runtime, data set, model, everything.",
    (c) => (Number.isFinite(c.peakRssMb) ? int.format(c.peakRssMb) : undefined),
  );
  table(
    'Time to first step, s',
    'From the moment the harness spawns the process to the end of its first optimizer step (imports, backend, data loading, set-up, one step), median.',
    (c) => (Number.isFinite(c.firstStepSec) ? c.firstStepSec.toFixed(2) : undefined),
  );
  table(
    'RSS growth',
    `RSS after epoch 2 -> after the last epoch of the timed span (goal: within 5%), median of the runs.${
      report.live === true ? ' `--live`: each reading of a JavaScript peer follows a full garbage collection (live memory; the Python peers as always).' : ''
    }`,
    (c) =>
      c.growth === undefined
        ? undefined
        : `${int.format(c.growth.afterEpoch2Mb)} -> ${int.format(c.growth.afterLastMb)} MB after ${c.growth.epochs} (${c.growth.relative >= 0 ? '+' : ''}${(c.growth.relative * 100).toFixed(1)}%)`,
  );
  if (report.ratios.length > 0) {
    lines.push('## Ratios (same run)', '');
    lines.push(`| ratio | backend | ${configs.join(' | ')} |`, `|---|---|${configs.map(() => '---:').join('|')}|`);
    const keys = new Map<string, { name: string; backend: Backend }>();
    for (const r of report.ratios) keys.set(`${r.name}|${r.backend}`, { name: r.name, backend: r.backend });
    for (const { name, backend } of keys.values()) {
      const cols = configs.map((config) => {
        const r = report.ratios.find((x) => x.name === name && x.backend === backend && x.config === config);
        return r === undefined ? '-' : `${r.value.toFixed(2)}x`;
      });
      lines.push(`| ${name} | ${backend} | ${cols.join(' | ')} |`);
    }
    lines.push('');
  } else {
    lines.push('No ratios: the Flint Trainer was not measured in this run.', '');
  }
  if (report.skipped.length > 0) {
    lines.push('## Skipped', '');
    const byReason = new Map<string, string[]>();
    for (const s of report.skipped) {
      const labels = byReason.get(s.reason) ?? [];
      labels.push(rowLabel(s.peer, s.backend));
      byReason.set(s.reason, labels);
    }
    for (const [reason, labels] of byReason) lines.push(`- ${labels.join(', ')}: ${reason}`);
    lines.push('');
  }
  if (report.failures.length > 0) {
    lines.push('## Failed runs', '');
    for (const f of report.failures) lines.push(`- ${rowLabel(f.peer, f.backend)}, ${f.config}, run ${f.run}: ${f.message}`);
    lines.push('');
  }
  lines.push('## Versions', '');
  const details = new Map<string, string>();
  for (const c of report.cells) details.set(rowLabel(c.peer, c.backend), c.detail);
  for (const [label, detail] of details) lines.push(`- ${label}: ${detail}`);
  lines.push('');
  return lines.join('\n');
}
