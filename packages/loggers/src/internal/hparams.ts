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

/** The hparams and metrics of every run under one log-dir root: what the one experiment summary lists. */
export interface ExperimentIndex {
  readonly hparams: Record<string, HParamType>;
  readonly metrics: string[];
}

export const EXPERIMENT_INDEX_FILE = '.flint-hparams-experiment.json';

export function readExperimentIndex(root: string): ExperimentIndex {
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(root, EXPERIMENT_INDEX_FILE), 'utf8')) as Partial<ExperimentIndex>;
    const hparams: Record<string, HParamType> = {};
    for (const [k, v] of Object.entries(raw.hparams ?? {})) {
      if (v === 'FLOAT64' || v === 'STRING' || v === 'BOOL') hparams[k] = v;
    }
    const metrics = Array.isArray(raw.metrics) ? raw.metrics.filter((m): m is string => typeof m === 'string') : [];
    return { hparams, metrics };
  } catch {
    return { hparams: {}, metrics: [] };
  }
}

/** Merges one run into the index; a name seen with two types becomes STRING (as TensorBoard infers). */
export function mergeExperimentIndex(
  index: ExperimentIndex,
  hparams: ReadonlyMap<string, HParamValue>,
  metrics: readonly string[],
): ExperimentIndex {
  const merged: Record<string, HParamType> = { ...index.hparams };
  for (const [name, value] of hparams) {
    const t = hparamType(value);
    const before = merged[name];
    merged[name] = before === undefined || before === t ? t : 'STRING';
  }
  const allMetrics = [...index.metrics];
  for (const m of metrics) if (!allMetrics.includes(m)) allMetrics.push(m);
  return { hparams: merged, metrics: allMetrics };
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
