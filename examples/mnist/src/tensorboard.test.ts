import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type MnistRunResult } from './index.js';

// The main job's run opened in the real TensorBoard (installed by `flint tensorboard` into a venv),
// once with each of its loaders, read through the HTTP API its web page uses and shown in headless
// Chromium. Skips with a printed reason where Chromium or TensorBoard (Python, pip) is missing.
// FLINT_TB_SCREENSHOTS=<dir> keeps the screenshots there.

const cli = fileURLToPath(new URL('../../../packages/backends/dist/cli.js', import.meta.url));
const venv = process.env.FLINT_TENSORBOARD_VENV ?? path.join(os.tmpdir(), 'flint-tensorboard-venv-test');
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((c) => fs.existsSync(c));

let tmp: string;
let logDir: string;
let results: MnistRunResult[];
let leaked = 0;
const shots = process.env.FLINT_TB_SCREENSHOTS;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-mnist-tb-'));
  logDir = path.join(tmp, 'logs');
  const before = tf.memory().numTensors;
  results = await main({ epochs: 2, trainLimit: 3000, testLimit: 1000, enableProgressBar: false, logDir, print: () => undefined });
  leaked = tf.memory().numTensors - before;
}, 300_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Served {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `flint tensorboard <dir> --venv ... -- --load_fast=...` as a child process; undefined (with the reason) where it cannot run. */
async function serve(dir: string, loadFast: 'true' | 'false'): Promise<Served | string> {
  const child = spawn(process.execPath, [cli, 'tensorboard', dir, '--venv', venv, '--', `--load_fast=${loadFast}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  while (child.exitCode === null && child.signalCode === null) {
    const m = /at (http:\/\/127\.0\.0\.1:\d+\/) \(Ctrl\+C stops it\)/.exec(out);
    if (m !== null) {
      return {
        url: m[1]!,
        child,
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (/Python|pip|venv/.test(err)) return err.trim();
  throw new Error(`flint tensorboard exited without serving:\n${out}\n${err}`);
}

async function getJson<T>(url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.ok, `${url}: HTTP ${res.status}`).toBe(true);
  return (await res.json()) as T;
}

/** The page as headless Chromium renders it (after `budgetMs` of virtual time): its DOM, and a screenshot. */
function render(url: string, screenshot: string, budgetMs = 20_000): string {
  const args = (profile: string) => [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    '--window-size=1400,1000',
    `--virtual-time-budget=${budgetMs}`,
  ];
  const shot = spawnSync(chromium!, [...args(fs.mkdtempSync(path.join(tmp, 'chr-'))), `--screenshot=${screenshot}`, url], { timeout: 120_000 });
  expect(shot.status, `chromium --screenshot ${url}: ${shot.stderr?.toString().slice(-500)}`).toBe(0);
  const dom = spawnSync(chromium!, [...args(fs.mkdtempSync(path.join(tmp, 'chr-'))), '--dump-dom', url], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  expect(dom.status, `chromium --dump-dom ${url}`).toBe(0);
  return dom.stdout.toString();
}

const nets = ['single-layer', 'multi-layer-256'];

describe.each([
  ['Rust data server', 'true'],
  ['Python loader', 'false'],
] as const)('the MNIST run in TensorBoard 2.21 (%s)', (_name, loadFast) => {
  it('shows train, validation and test on one chart per quantity, the HParams columns, weight histograms, the test images and the text at step 0', async (ctx) => {
    if (chromium === undefined) {
      console.log('mnist tensorboard test skipped: no Chromium (install the Debian package chromium)');
      ctx.skip();
    }
    expect(leaked).toBe(0);
    const served = await serve(path.join(logDir, 'mnist'), loadFast);
    if (typeof served === 'string') {
      console.log(`mnist tensorboard test skipped: TensorBoard cannot be installed here: ${served}`);
      ctx.skip();
      return;
    }
    const { url } = served;
    try {
      // Scalars: the train, validation and test sub-runs of each net share the tags epoch_loss and
      // epoch_acc (one chart each), and end at the figures the job printed.
      // The runs list: the nets and their sub-runs, and no empty run `.` (each net's run holds the
      // experiment summary of the HParams tab).
      const runs = await getJson<string[]>(`${url}data/runs`);
      expect([...runs].sort()).toEqual(nets.flatMap((n) => [n, `${n}/test`, `${n}/train`, `${n}/validation`]).sort());
      const tags = await getJson<Record<string, Record<string, unknown>>>(`${url}data/plugin/scalars/tags`);
      expect(Object.keys(tags).sort()).toEqual([...runs].sort());
      for (const net of nets) {
        expect(Object.keys(tags[`${net}/train`]!)).toEqual(['epoch_loss']);
        expect(Object.keys(tags[`${net}/validation`]!).sort()).toEqual(['epoch_acc', 'epoch_loss']);
        expect(Object.keys(tags[`${net}/test`]!).sort()).toEqual(['epoch_acc', 'epoch_loss']);
        expect(Object.keys(tags[net]!).sort()).toEqual(['train_loss_step', 'trainer/epoch']);
      }
      for (const [i, net] of nets.entries()) {
        const series = async (run: string, tag: string) =>
          getJson<Array<[number, number, number]>>(`${url}data/plugin/scalars/scalars?run=${encodeURIComponent(run)}&tag=${encodeURIComponent(tag)}`);
        const val = await series(`${net}/validation`, 'epoch_acc');
        const train = await series(`${net}/train`, 'epoch_loss');
        expect(val.map((p) => p[1])).toEqual(train.map((p) => p[1])); // same steps: one x axis
        expect(val).toHaveLength(2);
        expect(val.at(-1)![2]).toBe(Math.fround(results[i]!.val.val_acc!));
        expect((await series(`${net}/test`, 'epoch_acc'))[0]![2]).toBe(Math.fround(results[i]!.test.test_acc!));
      }

      // HParams: the nets' hparams, the validation and test metrics in the first columns (by the
      // names the module logged), final values per run.
      const experiment = await getJson<{ hparamInfos: Array<{ name: string }>; metricInfos: Array<{ name: { group: string; tag: string }; displayName: string }> }>(
        `${url}data/plugin/hparams/experiment`,
        { experimentName: '' },
      );
      expect(experiment.hparamInfos.map((h) => h.name).sort()).toEqual(['dropout', 'hidden', 'learningRate']);
      expect(experiment.metricInfos.map((m) => m.displayName || m.name.tag)).toEqual(['val_loss', 'val_acc', 'test_loss', 'test_acc', 'train_loss_epoch', 'train_loss_step']);
      const groups = await getJson<{ sessionGroups: Array<{ name: string; metricValues: Array<{ name: { group: string; tag: string }; value: number }> }> }>(
        `${url}data/plugin/hparams/session_groups`,
        {
          experimentName: '',
          allowedStatuses: ['STATUS_UNKNOWN', 'STATUS_SUCCESS', 'STATUS_FAILURE', 'STATUS_RUNNING'],
          colParams: [],
          startIndex: 0,
          sliceSize: 100,
        },
      );
      expect(groups.sessionGroups.map((g) => g.name).sort()).toEqual([...nets].sort());
      for (const [i, net] of nets.entries()) {
        const g = groups.sessionGroups.find((s) => s.name === net)!;
        const testAcc = g.metricValues.find((m) => m.name.group === 'test' && m.name.tag === 'epoch_acc')!;
        expect(testAcc.value).toBeCloseTo(results[i]!.test.test_acc!, 6);
      }

      // Histograms: every weight of each net, one per epoch.
      const histTags = await getJson<Record<string, Record<string, unknown>>>(`${url}data/plugin/histograms/tags`);
      expect(Object.keys(histTags['single-layer']!).sort()).toEqual(['weights/net.layers.0.bias', 'weights/net.layers.0.weight']);
      expect(Object.keys(histTags['multi-layer-256']!)).toHaveLength(4);
      const hist = await getJson<unknown[]>(`${url}data/plugin/histograms/histograms?run=single-layer&tag=${encodeURIComponent('weights/net.layers.0.weight')}`);
      expect(hist).toHaveLength(2);

      // Images: the misclassified digits and the confusion matrix, as PNGs TensorBoard serves.
      const imageTags = await getJson<Record<string, Record<string, unknown>>>(`${url}data/plugin/images/tags`);
      for (const net of nets) expect(Object.keys(imageTags[net]!).sort()).toEqual(['test/confusion_matrix', 'test/misclassified']);
      const [cm] = await getJson<Array<{ query: string }>>(`${url}data/plugin/images/images?run=single-layer&tag=${encodeURIComponent('test/confusion_matrix')}`);
      const png = Buffer.from(await (await fetch(`${url}data/plugin/images/individualImage?${cm!.query}`)).arrayBuffer());
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20), png[25]]).toEqual([604, 604, 2]); // width, height, colour type 2 (RGB)

      // Text: the hparams table and the model summary at step 0.
      for (const tag of ['hparams']) {
        const text = await getJson<Array<{ step: number; text: string }>>(`${url}data/plugin/text/text?run=single-layer&tag=${tag}`);
        expect(text.map((t) => t.step)).toEqual([0]);
      }

      // The pages a learner opens: Time Series (its DOM) shows the accuracy and loss charts with the
      // sub-runs. The HParams, Images and Histograms dashboards draw inside their own documents,
      // which --dump-dom does not reach: their content is checked through the API above, and the
      // screenshots are for a person to look at.
      const dir = shots ?? fs.mkdtempSync(path.join(tmp, 'shots-'));
      fs.mkdirSync(dir, { recursive: true });
      const pages: Array<[string, RegExp[]]> = [
        ['timeseries', [/epoch_loss/, /epoch_acc/, /single-layer\/validation/, /multi-layer-256\/train/]],
        ['hparams', []],
        ['images', []],
        ['histograms', []],
      ];
      for (const [page, expected] of pages) {
        const file = path.join(dir, `mnist-${page}-${loadFast === 'true' ? 'rust' : 'python'}.png`);
        const dom = render(`${url}#${page}`, file);
        if (shots !== undefined) fs.writeFileSync(file.replace(/\.png$/, '.html'), dom);
        for (const re of expected) expect(dom, `${page}: ${re}`).toMatch(re);
        // The runs table of Time Series: one colour swatch per run of /data/runs (a run `.` would add one).
        if (page === 'timeseries') expect(dom.match(/class="run-color-swatch"/g)).toHaveLength(runs.length);
        expect(fs.statSync(file).size).toBeGreaterThan(20_000);
      }
    } finally {
      await served.stop();
    }
  }, 900_000);
});
