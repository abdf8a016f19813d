import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLogDir, readRecords } from './event-reader.js';
import { FIXTURE_SETS, FIXTURES_DIR, loadExpected } from './fixtures.js';
import * as fs from 'node:fs';

// The test reader must read every golden file exactly as TensorBoard 2.21's Python loader did
// (expected.json): only then is it a fair judge of what our writer produces.

const PROBLEM_WORDS: Record<string, string> = {
  'truncated data': 'has truncated record in data',
  'truncated header': 'truncated record',
  'failed header crc32 check': 'failed header crc32 check',
  'failed event crc32 check': 'failed event crc32 check',
};

describe.each(FIXTURE_SETS)('golden fixture %s', (set) => {
  const expected = loadExpected(set);
  const actual = readLogDir(path.join(FIXTURES_DIR, set));

  it('finds the same runs', () => {
    expect(Object.keys(actual.runs).sort()).toEqual(Object.keys(expected.runs).sort());
  });

  for (const [run, exp] of Object.entries(expected.runs)) {
    describe(`run ${run}`, () => {
      const got = () => actual.runs[run]!;

      it('reads the same records of each file, stopping where TensorBoard stopped', () => {
        expect(got().files.map((f) => [f.name, f.bytes, f.records_read])).toEqual(exp.files.map((f) => [f.name, f.bytes, f.records_read]));
        got().files.forEach((f, i) => {
          const wanted = exp.files[i]!.read_problems;
          expect(f.read_problems.length).toBe(wanted.length);
          if (wanted.length > 0) expect(wanted[0]).toContain(PROBLEM_WORDS[f.read_problems[0]!]);
        });
      });

      it('has the file version, source writer and plugin tags', () => {
        expect(got().file_version).toBe(exp.file_version);
        expect(got().source_writer).toBe(exp.source_writer);
        expect(got().plugins).toEqual(exp.plugins);
      });

      it('has the scalars: steps, float32 values and wall times', () => {
        expect(got().scalars).toEqual(exp.scalars);
      });

      it('has the histograms, text, images and hparams plugin data', () => {
        expect(got().histograms).toEqual(exp.histograms);
        expect(got().text).toEqual(exp.text);
        expect(got().images).toEqual(exp.images);
        expect(got().hparams_plugin_data).toEqual(exp.hparams_plugin_data);
      });
    });
  }

  it('gives the hparams dashboard TensorBoard gave', () => {
    expect(actual.hparams_dashboard).toEqual(expected.hparams_dashboard);
  });
});

describe('readRecords', () => {
  it('stops quietly before a truncated last record', () => {
    const file = path.join(FIXTURES_DIR, 'edge_cases/truncated_tail');
    const name = fs.readdirSync(file)[0]!;
    const r = readRecords(fs.readFileSync(path.join(file, name)));
    expect(r.records.length).toBe(60);
    expect(r.problem).toBe('truncated data');
  });
});
