import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expectNoLeak } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSite, serveSite, type BuiltSite } from './index.js';

// The page in a real browser: Debian's chromium, headless, against the example's own server on
// 127.0.0.1. Skipped, with the reason printed, where chromium is not installed (CI installs the
// `chromium` package; FLINT_CHROMIUM points elsewhere).
const chromium = process.env.FLINT_CHROMIUM ?? '/usr/bin/chromium';
const skipReason = existsSync(chromium) ? '' : `mnist-web browser test skipped: ${chromium} does not exist (apt-get install chromium, or set FLINT_CHROMIUM)`;
if (skipReason !== '') console.warn(skipReason);

interface Report {
  backend?: string;
  probabilities?: number[][];
  drawn?: number;
  error?: string;
}

let dir: string;
let site: BuiltSite;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mnist-web-'));
  site = await expectNoLeak(
    () => buildSite({ outDir: path.join(dir, 'site'), epochs: 1, trainLimit: 3000, enableProgressBar: false, print: () => undefined }),
    'training and exporting',
  );
}, 300_000);
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Opens the page in headless chromium (extra flags `flags`), takes a screenshot, returns what the page reported. */
async function openPage(flags: string[], screenshot: string): Promise<Report> {
  const server = await serveSite({ siteDir: site.outDir, port: 0 });
  try {
    const browser = new Promise<string>((resolve, reject) => {
      execFile(
        chromium,
        ['--headless', '--no-sandbox', '--hide-scrollbars', '--window-size=1280,900', '--virtual-time-budget=60000', `--screenshot=${screenshot}`, ...flags, `${server.url}?report=1&demo=1`],
        { timeout: 150_000 },
        (error, _stdout, stderr) => (error === null ? resolve(stderr) : reject(new Error(`chromium failed: ${error.message}\n${stderr.slice(-2000)}`))),
      );
    });
    const report = (await Promise.race([server.report, browser.then(() => new Promise((r) => setTimeout(r, 5000)))])) as Report | undefined;
    await browser;
    if (report === undefined) throw new Error('the page reported nothing');
    return report;
  } finally {
    await server.close();
  }
}

function expectNodePredictions(report: Report): void {
  expect(report.error).toBeUndefined();
  const page = report.probabilities!;
  expect(page.length).toBe(100);
  const argMax = (row: number[]) => row.indexOf(Math.max(...row));
  expect(page.map(argMax)).toEqual(site.probabilities.map(argMax));
  const diff = Math.max(...page.flatMap((row, i) => row.map((p, j) => Math.abs(p - site.probabilities[i]![j]!))));
  expect(diff).toBeLessThanOrEqual(1e-5);
  expect(report.drawn).toBeGreaterThanOrEqual(0); // the digit drawn with mouse events was classified
  expect(report.drawn).toBeLessThanOrEqual(9);
}

describe('examples/mnist-web in headless chromium', () => {
  it('the page classifies 100 test digits as Node does (webgl where the browser has it)', async (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    expect(site.testAccuracy).toBeGreaterThan(0.5);
    const screenshot = path.join(dir, 'page.png');
    const report = await openPage([], screenshot);
    expect(['webgl', 'cpu']).toContain(report.backend);
    expectNodePredictions(report);
    expect((await fs.stat(screenshot)).size).toBeGreaterThan(20_000);
  }, 200_000);

  it('without WebGL the page falls back to the cpu backend, with the same predictions', async (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    const report = await openPage(['--disable-gpu', '--disable-software-rasterizer'], path.join(dir, 'cpu.png'));
    expect(report.backend).toBe('cpu');
    expectNodePredictions(report);
  }, 200_000);
});
