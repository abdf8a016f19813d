import { writeFileAtomicSync } from '@flint/core';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HParamType, HParamValue } from './proto.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function toHParamValue(value: unknown): HParamValue {
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return value.name === '' ? '[function]' : value.name;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Hyper-parameters as TensorBoard can show them, as Lightning's `_flatten_dict` + `_sanitize_params`:
 * nested plain objects become `a/b` keys; numbers, strings and booleans stay; anything else (arrays,
 * null, class instances) becomes its JSON text.
 */
export function flattenHParams(params: Readonly<Record<string, unknown>>, prefix = ''): Map<string, HParamValue> {
  const out = new Map<string, HParamValue>();
  for (const [key, value] of Object.entries(params)) {
    const name = prefix === '' ? key : `${prefix}/${key}`;
    if (isPlainObject(value) && Object.keys(value).length > 0) {
      for (const [k, v] of flattenHParams(value, name)) out.set(k, v);
    } else {
      out.set(name, toHParamValue(value));
    }
  }
  return out;
}

export function hparamType(value: HParamValue): HParamType {
  return typeof value === 'number' ? 'FLOAT64' : typeof value === 'boolean' ? 'BOOL' : 'STRING';
}

/**
 * A metric of the HParams tab: a scalar `tag` in the session's run, or in its sub-run `group`
 * (`train`, `validation`), shown as `name` (what the module logged). `rank` orders the columns:
 * lower first (TensorBoard shows the first five).
 */
export interface MetricRef {
  readonly group: string;
  readonly tag: string;
  readonly name: string;
  readonly rank: number;
}

/** The hparams and metrics of every run under one log-dir root: what the one experiment summary lists. */
export interface ExperimentIndex {
  readonly hparams: Record<string, HParamType>;
  readonly metrics: MetricRef[];
}

export const EXPERIMENT_INDEX_FILE = '.flint-hparams-experiment.json';

function toMetricRef(m: unknown, i: number): MetricRef | undefined {
  if (typeof m === 'string') return { group: '', tag: m, name: m, rank: 100 + i };
  if (m === null || typeof m !== 'object') return undefined;
  const r = m as Partial<MetricRef>;
  if (typeof r.tag !== 'string') return undefined;
  const group = typeof r.group === 'string' ? r.group : '';
  return { group, tag: r.tag, name: typeof r.name === 'string' ? r.name : r.tag, rank: typeof r.rank === 'number' ? r.rank : 100 + i };
}

export function readExperimentIndex(root: string): ExperimentIndex {
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(root, EXPERIMENT_INDEX_FILE), 'utf8')) as { hparams?: unknown; metrics?: unknown };
    const hparams: Record<string, HParamType> = {};
    for (const [k, v] of Object.entries((raw.hparams ?? {}) as Record<string, unknown>)) {
      if (v === 'FLOAT64' || v === 'STRING' || v === 'BOOL') hparams[k] = v;
    }
    const metrics = Array.isArray(raw.metrics) ? raw.metrics.map(toMetricRef).filter((m): m is MetricRef => m !== undefined) : [];
    return { hparams, metrics };
  } catch {
    return { hparams: {}, metrics: [] };
  }
}

const refKey = (m: { group: string; tag: string }): string => `${m.group}\u0000${m.tag}`;

/**
 * Merges one run into the index; a name seen with two types becomes STRING (as TensorBoard infers).
 * Metrics are ordered by rank (this run's rank wins for a metric both list), then first seen.
 */
export function mergeExperimentIndex(
  index: ExperimentIndex,
  hparams: ReadonlyMap<string, HParamValue>,
  metrics: readonly MetricRef[],
): ExperimentIndex {
  const merged: Record<string, HParamType> = { ...index.hparams };
  for (const [name, value] of hparams) {
    const t = hparamType(value);
    const before = merged[name];
    merged[name] = before === undefined || before === t ? t : 'STRING';
  }
  const byKey = new Map<string, MetricRef>();
  for (const m of index.metrics) byKey.set(refKey(m), m);
  for (const m of metrics) byKey.set(refKey(m), m);
  const order = [...index.metrics.map(refKey), ...metrics.map(refKey)];
  const all = [...byKey.values()].sort((a, b) => a.rank - b.rank || order.indexOf(refKey(a)) - order.indexOf(refKey(b)));
  return { hparams: merged, metrics: all };
}

export function sameExperimentIndex(a: ExperimentIndex, b: ExperimentIndex): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function writeExperimentIndex(root: string, index: ExperimentIndex): void {
  writeFileAtomicSync(path.join(root, EXPERIMENT_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
}

function escapeCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A Markdown table of the hparams, for TensorBoard's Text tab. */
export function hparamsMarkdownTable(hparams: ReadonlyMap<string, HParamValue>): string {
  const lines = ['| hparam | value |', '|---|---|'];
  for (const [k, v] of hparams) lines.push(`| ${escapeCell(k)} | ${escapeCell(String(v))} |`);
  return lines.join('\n');
}
