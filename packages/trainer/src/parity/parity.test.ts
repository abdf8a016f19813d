// The differential test against the real PyTorch Lightning 2.6 (issue 13): the scenarios of specs.ts
// run through Lightning (scenarios.py, all in one Python process, from the venv of
// scripts/lightning-venv.sh) and through Flint (scenarios.ts, in this process, cpu backend); every
// difference must be listed in known-differences.ts, and every listed one must still differ.
//
//   FLINT_LIGHTNING_VENV=/path/to/venv    use (or create) the venv there
//   FLINT_PARITY_DUMP=/tmp/parity.json    write both sides' observations and the differences there
//   FLINT_PARITY_WRITE_DOCS=1             rewrite the table in docs/coming-from-lightning.md
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expectNoLeak } from '@flint/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareRuns, firstDifference, ratchet } from './compare.js';
import { DOCS_TABLE_END, DOCS_TABLE_START, DOCUMENTED, KNOWN_BUGS, renderDocsTable } from './known-differences.js';
import { FLINT_HOOKS, MODULE_ONLY_HOOKS, runFlintScenarios, type Observations } from './scenarios.js';
import { PARITY_DATA, SCENARIOS } from './specs.js';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));
const venvScript = `${repo}scripts/lightning-venv.sh`;
const pyScenarios = fileURLToPath(new URL('./scenarios.py', import.meta.url));
const docsPage = `${repo}docs/coming-from-lightning.md`;

async function lightningPython(): Promise<{ python?: string; reason?: string }> {
  try {
    const { stdout } = await promisify(execFile)('bash', [venvScript], { cwd: repo, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    return { python: stdout.trim().split('\n').at(-1) };
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    return { reason: `parity test skipped: scripts/lightning-venv.sh could not make a venv with lightning 2.6 (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}` };
  }
}

function runLightning(python: string): Promise<{ versions: Record<string, string>; results: Record<string, Observations> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [pyScenarios], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONHASHSEED: '0', OMP_NUM_THREADS: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`scenarios.py exited with ${String(code)}:\n${err.slice(-3000)}`));
      else resolve(JSON.parse(out) as { versions: Record<string, string>; results: Record<string, Observations> });
    });
    child.stdin.end(JSON.stringify({ scenarios: SCENARIOS, data: PARITY_DATA, hooks: FLINT_HOOKS, moduleHooks: MODULE_ONLY_HOOKS }));
  });
}

let venv: { python?: string; reason?: string } = {};
// Creating the venv downloads torch and lightning once (minutes); later runs find it ready.
beforeAll(async () => {
  venv = await lightningPython();
}, 20 * 60_000);

describe('differential test against PyTorch Lightning 2.6', () => {
  it('docs/coming-from-lightning.md shows the deliberate differences of known-differences.ts', () => {
    const page = readFileSync(docsPage, 'utf8');
    const start = page.indexOf(DOCS_TABLE_START);
    const end = page.indexOf(DOCS_TABLE_END);
    expect(start, `docs/coming-from-lightning.md has no ${DOCS_TABLE_START} ... ${DOCS_TABLE_END} block`).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const wanted = `${DOCS_TABLE_START}\n${renderDocsTable(DOCUMENTED)}\n${DOCS_TABLE_END}`;
    const current = page.slice(start, end + DOCS_TABLE_END.length);
    if (current !== wanted && process.env.FLINT_PARITY_WRITE_DOCS === '1') {
      writeFileSync(docsPage, page.slice(0, start) + wanted + page.slice(end + DOCS_TABLE_END.length));
      return;
    }
    expect(current, 'the table is generated: run FLINT_PARITY_WRITE_DOCS=1 npx vitest run packages/trainer/src/parity/parity.test.ts').toBe(wanted);
  });

  it('the comparer tolerates float32 round-off only, and the ratchet fails on new and on fixed differences', () => {
    expect(firstDifference({ loss: 1.3067293167114258 }, { loss: 1.3067291378974915 })).toBeUndefined();
    expect(firstDifference({ loss: 1.3067 }, { loss: 1.3167 })).toBe('loss: Lightning 1.3067, Flint 1.3167');
    expect(firstDifference(['a', 'b'], ['a', 'b', 'c'])).toBe('list: Lightning has 2 entries, Flint 3; the first extra: "c" (Flint)');
    const documented = [{ topic: 'deliberate', ids: ['s1/lrs'] }];
    const bugs = [{ bug: 'b1', ids: ['s2/logSteps'] }];
    const found = [
      { id: 's1/lrs', text: '' },
      { id: 's2/logSteps', text: '' },
    ];
    expect(ratchet(found, documented, bugs)).toEqual([]);
    expect(ratchet([...found, { id: 's3/error', text: 'Flint raised' }], documented, bugs)).toEqual(['new difference s3/error: Flint raised']);
    expect(ratchet(found.slice(0, 1), documented, bugs)).toEqual([
      's2/logSteps (known bug b1) no longer differs: fixed, remove it from known-differences.ts',
    ]);
    expect(ratchet(found, [...documented, { topic: 'again', ids: ['s2/logSteps'] }], bugs)).toEqual([
      "s2/logSteps is listed twice (documented difference 'again' and known bug b1)",
    ]);
  });

  it('Flint differs from Lightning only where known-differences.ts says, and wherever it says', async (ctx) => {
    const { python, reason } = venv;
    if (python === undefined) {
      console.warn(reason);
      ctx.skip(reason);
      return;
    }
    const started = performance.now();
    // Lightning runs in its own process while Flint runs here.
    const lightning = runLightning(python);
    const flint = await expectNoLeak(() => runFlintScenarios(SCENARIOS), 'the Flint scenarios');
    const { versions, results } = await lightning;
    expect(versions.lightning).toMatch(/^2\.6\./);
    const differences = compareRuns(SCENARIOS, results, flint);
    if (process.env.FLINT_PARITY_DUMP) {
      writeFileSync(process.env.FLINT_PARITY_DUMP, JSON.stringify({ versions, differences, lightning: results, flint }, null, 1));
    }
    console.log(
      `parity: ${SCENARIOS.length} scenarios, ${SCENARIOS.reduce((n, s) => n + s.observe.length, 0)} observations compared against lightning ${versions.lightning} / torch ${versions.torch} ` +
        `in ${((performance.now() - started) / 1000).toFixed(1)} s: ${differences.length} differences (${DOCUMENTED.length} documented topics, ${KNOWN_BUGS.length} known bugs)`,
    );
    expect(ratchet(differences, DOCUMENTED, KNOWN_BUGS)).toEqual([]);
    // About 15 s of CPU per side; generous for machines shared with other jobs.
  }, 6 * 60_000);
});
