import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendError } from '@flint/core';
import { afterEach, describe, expect, it } from 'vitest';
import { locateTfjsNode } from './locate.js';
import { GRAPH_FUNCTION_HEADER, patchBindingSources } from './patch.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A copy of the installed tfjs-node's binding sources (what setup-native stages and compiles). */
function stagedBinding(): string {
  const pkg = locateTfjsNode(process.cwd());
  if (pkg === undefined) throw new Error('tfjs-node is a dev dependency of the workspace');
  const dir = mkdtempSync(join(tmpdir(), 'flint-patch-'));
  dirs.push(dir);
  cpSync(join(pkg.dir, 'binding'), dir, { recursive: true });
  return dir;
}

describe("setup-native's graph-function patch of tfjs-node's binding sources", () => {
  it('adds the context accessor, the include and the four exports, and the header', () => {
    const dir = stagedBinding();
    const before = readFileSync(join(dir, 'tfjs_binding.cc'), 'utf8');
    expect(patchBindingSources(dir)).toBe(6);
    const header = readFileSync(join(dir, 'tfjs_backend.h'), 'utf8');
    const binding = readFileSync(join(dir, 'tfjs_binding.cc'), 'utf8');
    expect(header).toContain('TFE_Context *flint_context() { return tfe_context_; }');
    // The accessor is public and the class's private part is left as it was.
    expect(header.indexOf('flint_context')).toBeLessThan(header.indexOf(' private:\n  TFJSBackend(napi_env env);'));
    expect(binding).toContain(`#include "${GRAPH_FUNCTION_HEADER}"`);
    expect(binding).toContain('{"registerGraphFunction", nullptr, flint::RegisterGraphFunction,');
    expect(binding).toContain('{"removeFunction", nullptr, flint::RemoveFunction,');
    expect(binding).toContain('{"releaseLibraryPages", nullptr, flint::ReleaseLibraryPages,');
    expect(binding).toContain('{"flintCopiesTypedArrays", nullptr, nullptr, nullptr, nullptr, flint::True(env),');
    // Only insertions in the binding: every original line is still there, in order.
    expect(binding.split('\n').filter((l) => !/\/\/ flint: (graph functions|library pages|typed arrays copied)/.test(l))).toEqual(before.split('\n'));
    expect(readFileSync(join(dir, GRAPH_FUNCTION_HEADER), 'utf8')).toContain('TF_GraphToFunction');
  });

  it('makes a tensor from a typed array with a copy into memory TensorFlow allocates, never the array itself', () => {
    const dir = stagedBinding();
    const before = readFileSync(join(dir, 'tfjs_backend.cc'), 'utf8');
    patchBindingSources(dir);
    const backend = readFileSync(join(dir, 'tfjs_backend.cc'), 'utf8');
    const body = (text: string) => {
      const start = text.indexOf('TFE_TensorHandle *CreateTFE_TensorHandleFromTypedArray(');
      return text.slice(start, text.indexOf('\n}\n', start));
    };
    expect(body(before)).toContain('TF_NewTensor(dtype, shape, shape_length, array_data,');
    expect(body(backend)).not.toContain('TF_NewTensor');
    expect(body(backend)).not.toContain('NapiAutoRef');
    expect(body(backend)).toContain('TF_AllocateTensor(dtype, shape, shape_length, byte_size)');
    expect(body(backend)).toContain('memcpy(TF_TensorData(tensor.tensor), array_data, byte_size)');
    // The rest of the file is as it was.
    expect(backend.replace(body(backend), '')).toBe(before.replace(body(before), ''));
  });

  it('changes nothing when applied a second time', () => {
    const dir = stagedBinding();
    patchBindingSources(dir);
    const files = ['tfjs_backend.h', 'tfjs_binding.cc', 'tfjs_backend.cc'];
    const once = files.map((f) => readFileSync(join(dir, f), 'utf8'));
    expect(patchBindingSources(dir)).toBe(0);
    expect(files.map((f) => readFileSync(join(dir, f), 'utf8'))).toEqual(once);
  });

  it('refuses sources without the expected code, naming the file', () => {
    const dir = stagedBinding();
    writeFileSync(join(dir, 'tfjs_binding.cc'), '// another version\n');
    expect(() => patchBindingSources(dir)).toThrow(BackendError);
    expect(() => patchBindingSources(dir)).toThrow(/binding\/tfjs_binding\.cc does not have the expected code .* cannot take Flint's graph-function patch/);
  });

  it.runIf(process.env.FLINT_BACKEND === 'tensorflow')("is in the addon setup-native built: the binding has registerGraphFunction and removeFunction", async () => {
    const tf = await import('@tensorflow/tfjs');
    const binding = (tf.backend() as unknown as { binding: Record<string, unknown> }).binding;
    expect(typeof binding.registerGraphFunction).toBe('function');
    expect(typeof binding.removeFunction).toBe('function');
    expect(() => (binding.registerGraphFunction as (...a: unknown[]) => void)('f', 'not bytes', [], [])).toThrow('registerGraphFunction: graphDef must be a Uint8Array');
    expect(() => (binding.registerGraphFunction as (...a: unknown[]) => void)('f', new Uint8Array([1, 2, 3]), [], [])).toThrow(/^registerGraphFunction 'f': importing the graph: /);
  });

  it.runIf(process.env.FLINT_BACKEND === 'tensorflow')('is in the addon setup-native built: a tensor keeps its values when the array it was made from changes', async () => {
    const tf = await import('@tensorflow/tfjs');
    const backend = tf.backend() as unknown as { binding: Record<string, unknown>; getInputTensorIds(t: unknown[]): number[] };
    expect(backend.binding.flintCopiesTypedArrays).toBe(true);
    // tfjs-node's own build hands TensorFlow an aligned array's memory: views at every 4-byte offset
    // modulo 64 of one buffer, so that some are aligned.
    const buffer = new Float32Array(1024 + 16).fill(1);
    const tensors = Array.from({ length: 16 }, (_, offset) => tf.tensor1d(buffer.subarray(offset, offset + 1024)));
    backend.getInputTensorIds(tensors); // the tensors go to TensorFlow (their first op would do it)
    buffer.fill(2);
    const sums = tensors.map((t) => tf.sum(t));
    expect(sums.map((s) => s.dataSync()[0])).toEqual(tensors.map(() => 1024));
    tf.dispose([...tensors, ...sums]);
  });
});
