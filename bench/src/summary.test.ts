import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from './args.js';
import { median, ratios, summarize, toMarkdown, type BenchReport } from './summary.js';
import type { Backend, ConfigId, Peer, RunResult } from './workload.js';

function result(peer: Peer, backend: Backend | 'python', config: ConfigId, samplesPerSec: number, memory: Partial<RunResult> = {}): RunResult {
  return { peer, backend, config, samples: 60000, steps: 938, warmupSteps: 20, seconds: 60000 / samplesPerSec, samplesPerSec, finalLoss: 0.1, detail: `${peer} detail`, ...memory };
}

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('summarize and ratios', () => {
  const results = [
    result('tfjs-loop', 'wasm-stock', 'mlp-s-b64', 7000),
    result('tfjs-fit', 'wasm-stock', 'mlp-s-b64', 5000),
    result('flint', 'wasm-stock', 'mlp-s-b64', 6000),
    result('flint', 'wasm-flint', 'mlp-s-b64', 12000),
    result('tfjs-loop', 'wasm-flint', 'mlp-s-b64', 12500),
    result('lightning', 'python', 'mlp-s-b64', 30000),
    // second run
    result('tfjs-loop', 'wasm-stock', 'mlp-s-b64', 7200),
    result('tfjs-fit', 'wasm-stock', 'mlp-s-b64', 5200),
    result('flint', 'wasm-stock', 'mlp-s-b64', 6200),
    result('flint', 'wasm-flint', 'mlp-s-b64', 12400),
    result('tfjs-loop', 'wasm-flint', 'mlp-s-b64', 12500),
    result('lightning', 'python', 'mlp-s-b64', 31000),
  ];
  const cells = summarize(results);

  it('groups runs per peer, backend and configuration with their median and spread', () => {
    expect(cells).toHaveLength(6);
    const loop = cells.find((c) => c.peer === 'tfjs-loop' && c.backend === 'wasm-stock')!;
    expect(loop.runs).toEqual([7000, 7200]);
    expect(loop.median).toBe(7100);
    expect(loop.spread).toBeCloseTo(100 / 7100, 10);
  });

  it('computes Flint against model.fit and the hand loop on the same backend, Lightning, and stock-wasm model.fit', () => {
    const r = ratios(cells);
    const get = (name: string, backend: Backend) => r.find((x) => x.name === name && x.backend === backend)?.value;
    expect(get('Flint / model.fit', 'wasm-stock')).toBeCloseTo(6100 / 5100, 10);
    expect(get('Flint / hand loop', 'wasm-stock')).toBeCloseTo(6100 / 7100, 10);
    expect(get('Flint / Lightning', 'wasm-stock')).toBeCloseTo(6100 / 30500, 10);
    expect(get('Flint / model.fit on wasm-stock', 'wasm-stock')).toBeUndefined();
    expect(get('Flint / hand loop', 'wasm-flint')).toBeCloseTo(12200 / 12500, 10);
    expect(get('Flint / model.fit', 'wasm-flint')).toBeUndefined(); // not measured on that backend
    expect(get('Flint / model.fit on wasm-stock', 'wasm-flint')).toBeCloseTo(12200 / 5100, 10);
  });

  it('puts the compiled Trainer against the same peers, PyTorch included, under its own name', () => {
    const r = ratios(
      summarize([
        result('flint', 'tensorflow', 'mlp-s-b64', 30000),
        result('flint-compiled', 'tensorflow', 'mlp-s-b64', 60000),
        result('tfjs-loop', 'tensorflow', 'mlp-s-b64', 20000),
        result('lightning', 'python', 'mlp-s-b64', 28000),
        result('torch', 'python', 'mlp-s-b64', 66000),
      ]),
    );
    const get = (name: string): number | undefined => r.find((x) => x.name === name)?.value;
    expect(get('Flint compiled / Lightning')).toBeCloseTo(60000 / 28000, 10);
    expect(get('Flint compiled / PyTorch')).toBeCloseTo(60000 / 66000, 10);
    expect(get('Flint compiled / hand loop')).toBeCloseTo(3, 10);
    expect(get('Flint / PyTorch')).toBeCloseTo(30000 / 66000, 10);
  });

  it('renders a markdown table per configuration with the ratios, skips and failures', () => {
    const report: BenchReport = {
      date: '2026-11-27T00:00:00.000Z',
      command: 'pnpm bench --configs mlp-s-b64,mlp-l-b64',
      machine: { cpus: 2, cpuModel: 'AMD EPYC', node: 'v20.20.2', loadAverage: [0.5, 0.4, 0.3] },
      samples: 60000,
      warmupSteps: 20,
      runs: 2,
      configs: ['mlp-s-b64', 'mlp-l-b64'],
      cells,
      ratios: ratios(cells),
      skipped: [{ peer: 'keras', backend: 'python', reason: 'pip could not install keras' }],
      failures: [{ peer: 'torch', backend: 'python', config: 'mlp-l-b64', run: 1, message: 'exit 1: boom' }],
    };
    const md = toMarkdown(report);
    expect(md).toContain('| peer | mlp-s-b64 | mlp-l-b64 |');
    expect(md).toContain('| tfjs hand loop (wasm-stock) | 7,100 ±1% | - |');
    expect(md).toContain('| Lightning, minimal | 30,500 ±2% | - |');
    expect(md).toContain('| Flint / model.fit | wasm-stock | 1.20x | - |');
    expect(md).toContain('- Keras 3 / TF `fit`: pip could not install keras');
    expect(md).toContain('- PyTorch, plain loop, mlp-l-b64, run 1: exit 1: boom');
  });
});

describe('memory figures', () => {
  const results = [
    result('flint', 'tensorflow', 'mlp-l-b256', 20000, { peakRssMb: 700, firstStepSec: 3.1, rssAfterEpochMb: [650, 660, 661, 662] }),
    result('lightning', 'python', 'mlp-l-b256', 25000, { peakRssMb: 560, firstStepSec: 4.0, rssAfterEpochMb: [500, 510, 530, 540] }),
    result('flint', 'tensorflow', 'mlp-l-b256', 22000, { peakRssMb: 720, firstStepSec: 2.9, rssAfterEpochMb: [650, 662, 662, 663] }),
    result('lightning', 'python', 'mlp-l-b256', 26000, { peakRssMb: 540, firstStepSec: 4.4, rssAfterEpochMb: [500, 500, 505, 510] }),
    result('flint', 'tensorflow', 'mlp-l-b256', 21000, { peakRssMb: 710, firstStepSec: 3.0, rssAfterEpochMb: [651, 661, 661, 661] }),
    // an older result without memory figures: ignored in the medians, not a NaN
    result('torch', 'python', 'mlp-l-b256', 24000),
  ];
  const cells = summarize(results);
  const flint = cells.find((c) => c.peer === 'flint')!;
  const lightning = cells.find((c) => c.peer === 'lightning')!;

  it('takes the median peak RSS and time to first step per cell, and the RSS growth from epoch 2 to the last', () => {
    expect(flint.peakRssMb).toBe(710);
    expect(flint.firstStepSec).toBe(3.0);
    expect(flint.growth).toMatchObject({ epochs: 4, afterEpoch2Mb: 661, afterLastMb: 662 });
    expect(flint.growth!.relative).toBeCloseTo(median([662 / 660 - 1, 663 / 662 - 1, 661 / 661 - 1]), 12);
    expect(lightning.peakRssMb).toBe(550);
    expect(lightning.growth!.relative).toBeCloseTo(median([540 / 510 - 1, 510 / 500 - 1]), 12);
    const torch = cells.find((c) => c.peer === 'torch')!;
    expect(torch.peakRssMb).toBeNaN();
    expect(torch.growth).toBeUndefined();
  });

  it('puts peak RSS against Lightning in the ratios and renders the memory tables', () => {
    const r = ratios(cells).find((x) => x.name === 'Flint peak RSS / Lightning (lower is better)');
    expect(r?.value).toBeCloseTo(710 / 550, 10);
    const report = {
      date: '2026-12-05T00:00:00.000Z',
      command: 'pnpm bench --growth',
      machine: { cpus: 2, cpuModel: 'AMD EPYC', node: 'v22', loadAverage: [1, 1, 1] },
      samples: 60000,
      warmupSteps: 20,
      epochs: 4,
      runs: 3,
      configs: ['mlp-l-b256' as const],
      cells,
      ratios: ratios(cells),
      skipped: [],
      failures: [],
    };
    const md = toMarkdown(report);
    expect(md).toContain('4 epochs timed; samples/s = samples x epochs / seconds');
    expect(md).not.toContain('full garbage collection');
    const live = toMarkdown({ ...report, command: 'pnpm bench --growth --live', live: true });
    expect(live).toContain('`--live`: each reading of a JavaScript peer follows a full garbage collection');
    expect(md).toContain('## Peak RSS, MB');
    expect(md).toContain('| Flint Trainer (tensorflow) | 710 |');
    expect(md).toContain('| Lightning, minimal | 550 |');
    // a peer that reported no memory figures has no row there (it still has its samples/s row)
    expect(md.slice(md.indexOf('## Peak RSS'), md.indexOf('## Time to first step'))).not.toContain('PyTorch');
    expect(md).toContain('| PyTorch, plain loop | 24,000 |');
    expect(md).toContain('## Time to first step, s');
    expect(md).toContain('| Flint Trainer (tensorflow) | 3.00 |');
    expect(md).toContain('## RSS growth');
    expect(md).toContain('| Flint Trainer (tensorflow) | 661 -> 662 MB after 4 (+0.2%) |');
    expect(md).toContain('| Flint peak RSS / Lightning (lower is better) | tensorflow | 1.29x |');
  });
});

describe('parseBenchArgs', () => {
  it('has the workload defaults', () => {
    const o = parseBenchArgs([]);
    expect(o.configs).toEqual(['mlp-s-b64', 'mlp-s-b256', 'mlp-l-b64', 'mlp-l-b256', 'cnn-b128']);
    expect(o.peers).toEqual(['torch', 'lightning', 'keras', 'tfjs-loop', 'tfjs-fit', 'flint', 'flint-compiled']);
    expect(o.backends).toEqual(['wasm-stock', 'wasm-flint', 'tensorflow']);
    expect(o.runs).toBe(2);
    expect(o.samples).toBe(60000);
    expect(o.warmupSteps).toBe(20);
    expect(o.epochs).toBe(1);
  });

  it('--growth runs 10 epochs; --epochs sets them', () => {
    expect(parseBenchArgs(['--growth']).epochs).toBe(10);
    expect(parseBenchArgs(['--epochs', '3']).epochs).toBe(3);
    expect(() => parseBenchArgs(['--growth', '--epochs', '3'])).toThrow('--growth and --epochs exclude each other (--growth runs 10 epochs)');
    expect(() => parseBenchArgs(['--epochs', '0'])).toThrow('--epochs must be an integer >= 1 (received 0)');
  });

  it('--live goes with --growth only', () => {
    expect(parseBenchArgs(['--growth', '--live']).live).toBe(true);
    expect(parseBenchArgs(['--growth']).live).toBe(false);
    expect(() => parseBenchArgs(['--live'])).toThrow('--live goes with --growth (it changes the RSS readings of the growth check)');
  });

  it('takes lists and --quick', () => {
    const o = parseBenchArgs(['--configs', 'mlp-s-b64,mlp-l-b256', '--peers', 'tfjs-loop,torch', '--backends', 'cpu', '--runs', '3', '--quick']);
    expect(o.configs).toEqual(['mlp-s-b64', 'mlp-l-b256']);
    expect(o.peers).toEqual(['tfjs-loop', 'torch']);
    expect(o.backends).toEqual(['cpu']);
    expect(o.runs).toBe(3);
    expect(o.samples).toBe(2000);
  });

  it('rejects unknown values, naming them and the valid ones', () => {
    expect(() => parseBenchArgs(['--configs', 'mlp-xl-b64'])).toThrow(
      '--configs: unknown value(s) mlp-xl-b64; valid: mlp-s-b64, mlp-s-b256, mlp-l-b64, mlp-l-b256',
    );
    expect(() => parseBenchArgs(['--runs', '0'])).toThrow('--runs must be an integer >= 1 (received 0)');
    expect(() => parseBenchArgs(['--quick', '--samples', '100'])).toThrow('--quick and --samples exclude each other');
    expect(() => parseBenchArgs(['--bogus'])).toThrow();
  });
});
