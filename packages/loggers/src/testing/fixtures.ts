// Test-only helpers around the golden fixtures copied from TensorBoard-written runs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES_DIR = fileURLToPath(new URL('../../fixtures/tensorboard/', import.meta.url));

export const FIXTURE_SETS = ['torch_summarywriter', 'torch_new_style', 'tf_summary', 'edge_cases'] as const;

/** expected.json with "NaN"/"Infinity"/"-Infinity" strings turned back into numbers. */
export function loadExpected(set: string): ExpectedLogDir {
  const text = fs.readFileSync(path.join(FIXTURES_DIR, set, 'expected.json'), 'utf8');
  return JSON.parse(text, (_k, v: unknown) => {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    return v;
  }) as ExpectedLogDir;
}

export interface ExpectedLogDir {
  runs: Record<string, ExpectedRun>;
  hparams_dashboard: unknown;
  warnings: Array<[string, string]>;
}

export interface ExpectedRun {
  files: Array<{ name: string; bytes: number; records_read: number; read_problems: string[] }>;
  file_version: number | null;
  source_writer: string | null;
  plugins: Record<string, string[]>;
  scalars: Record<string, { points: Array<[number, number, number]>; tensor_dtype_after_compat: string }>;
  histograms: Record<string, unknown>;
  text: Record<string, unknown>;
  images: Record<string, unknown>;
  hparams_plugin_data: Record<string, unknown>;
  other_tensors: Record<string, unknown>;
}
