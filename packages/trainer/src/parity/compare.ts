/**
 * Compares what Lightning (scenarios.py) and Flint (scenarios.ts) observed in each scenario and
 * reports every difference with a stable id, `<scenario>/<observation>`, and a line a human reads.
 * Both sides already write hook names in Flint's camelCase and the module logs the same metric names,
 * so the comparison is structural; numbers match within float32 round-off.
 */
import type { Observations } from './scenarios.js';
import type { Observation, ScenarioSpec } from './specs.js';

export interface Difference {
  /** `<scenario>/<observation>`: what known-differences.ts lists. */
  readonly id: string;
  readonly text: string;
}

function closeEnough(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-5 + 1e-4 * Math.max(Math.abs(a), Math.abs(b));
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isInteger(x) ? Number(x.toPrecision(5)) : x));
  return s === undefined ? 'nothing' : s.length > 240 ? `${s.slice(0, 240)}...` : s;
};

/** The first place where `a` (Lightning) and `b` (Flint) differ, as "path: Lightning x, Flint y", or undefined. */
export function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') return closeEnough(a, b) ? undefined : `${path || 'value'}: Lightning ${show(a)}, Flint ${show(b)}`;
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) {
        // Lists of hook calls and logger calls read best with their neighbours.
        const from = Math.max(0, i - 2);
        const context = a.length > 4 ? ` (Lightning ${show(a.slice(from, i + 3))}; Flint ${show(b.slice(from, i + 3))})` : '';
        return `${d}${a.length === b.length ? '' : `; lengths ${a.length} and ${b.length}`}${context}`;
      }
    }
    if (a.length !== b.length) {
      return `${path || 'list'}: Lightning has ${a.length} entries, Flint ${b.length}; the first extra: ${show(a.length > b.length ? a[n] : b[n])} (${a.length > b.length ? 'Lightning' : 'Flint'})`;
    }
    return undefined;
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    if (ka.join(',') !== kb.join(',')) return `${path || 'keys'}: Lightning keys ${show(ka)}, Flint keys ${show(kb)}`;
    for (const k of ka) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${path || 'value'}: Lightning ${show(a)}, Flint ${show(b)}`;
}

function compareObservation(what: Observation, lightning: Observations, flint: Observations): string | undefined {
  if (what === 'error') {
    if ((lightning.error === null) === (flint.error === null)) return undefined;
    return lightning.error === null ? `Flint raised (${flint.error}), Lightning did not` : `Lightning raised (${lightning.error}), Flint did not`;
  }
  return firstDifference(view(lightning, what), view(flint, what));
}

/** The part of the observations that `what` compares. */
function view(o: Observations, what: Exclude<Observation, 'error'>): unknown {
  switch (what) {
    case 'logSteps':
      return o.logs.map((l) => l.step);
    case 'logMetrics':
      return o.logs.map((l) => l.metrics);
    case 'logValues':
      // What the loggers got without the `epoch` key (Flint adds it to every call).
      return o.logs.map((l) => Object.fromEntries(Object.entries(l.metrics).filter(([k]) => k !== 'epoch')));
    case 'ckptFiles':
      return o.checkpoint?.files;
    case 'ckptBest':
      return o.checkpoint === undefined ? undefined : { best: o.checkpoint.best, bestScore: o.checkpoint.bestScore, last: o.checkpoint.last };
    default:
      return o[what];
  }
}

/** Every difference between the two sides, over the observations each scenario compares. */
export function compareRuns(
  specs: readonly ScenarioSpec[],
  lightning: Readonly<Record<string, Observations>>,
  flint: Readonly<Record<string, Observations>>,
): Difference[] {
  const out: Difference[] = [];
  for (const spec of specs) {
    const l = lightning[spec.name];
    const f = flint[spec.name];
    if (l === undefined || f === undefined) {
      out.push({ id: `${spec.name}/missing`, text: `${spec.name}: no result from ${l === undefined ? 'Lightning' : 'Flint'}` });
      continue;
    }
    for (const what of spec.observe) {
      const d = compareObservation(what, l, f);
      if (d !== undefined) out.push({ id: `${spec.name}/${what}`, text: d });
    }
  }
  return out;
}

/**
 * The ratchet: what is wrong with the list, given the differences found. A difference not listed is
 * new (a regression, or a difference to document or file); a listed id that no longer differs was
 * fixed and must leave the list. Empty when the list tells the truth.
 */
export function ratchet(
  differences: readonly Difference[],
  documented: ReadonlyArray<{ readonly topic: string; readonly ids: readonly string[] }>,
  bugs: ReadonlyArray<{ readonly bug: string; readonly ids: readonly string[] }>,
): string[] {
  const listed = new Map<string, string>();
  const problems: string[] = [];
  const add = (id: string, label: string): void => {
    if (listed.has(id)) problems.push(`${id} is listed twice (${listed.get(id)!} and ${label})`);
    listed.set(id, label);
  };
  for (const d of documented) for (const id of d.ids) add(id, `documented difference '${d.topic}'`);
  for (const b of bugs) for (const id of b.ids) add(id, `known bug ${b.bug}`);
  const found = new Set(differences.map((d) => d.id));
  for (const d of differences) {
    if (!listed.has(d.id)) problems.push(`new difference ${d.id}: ${d.text}`);
  }
  for (const [id, label] of listed) {
    if (!found.has(id)) problems.push(`${id} (${label}) no longer differs: fixed, remove it from known-differences.ts`);
  }
  return problems;
}
