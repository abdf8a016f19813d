import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { removeStaleTempFiles, trackTempFile } from './atomic-write.js';
import { ExportError } from './errors.js';

/** The files of a TensorFlow.js model folder, as tfjs-node and the converter name them. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const FILE_SCHEME = 'file://';

/**
 * A TensorFlow.js IO handler on the local file system (node:fs), for any backend: what
 * `model.save('file://dir')` and `tf.loadLayersModel('file://dir/model.json')` use once `@flint/core` is
 * imported (tfjs-node has its own; Flint's steps aside where another handler takes the URL).
 *
 * - `save` writes `<dir>/model.json` and `<dir>/weights.bin`, atomically: into a temporary folder
 *   beside `dir` that is renamed to `dir` (when `dir` exists, each file is written to a temporary
 *   name and renamed over the old one; other files in it are left alone). A failed save leaves no
 *   temporary file behind and the previous model, if any, whole.
 * - `load` reads a `model.json` (or the `model.json` of a folder) and the weight files its manifest
 *   lists; a missing or malformed file, or a weights file whose size does not match the manifest, is an
 *   `ExportError` that names the file and what was expected.
 */
export function fileHandler(target: string): FileIOHandler {
  return new FileIOHandler(target);
}

/** The handler `fileHandler` returns (and Flint's `file://` routers). */
export class FileIOHandler implements tf.io.IOHandler {
  /** The folder to save into, or the model.json (or its folder) to load. */
  readonly path: string;

  constructor(target: string) {
    this.path = path.resolve(target.startsWith(FILE_SCHEME) ? target.slice(FILE_SCHEME.length) : target);
  }

  save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    return saveArtifacts(this.path, artifacts);
  }

  load(): Promise<tf.io.ModelArtifacts> {
    return loadArtifacts(this.path);
  }
}

async function saveArtifacts(dir: string, artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
  if (artifacts.modelTopology instanceof ArrayBuffer) {
    throw new ExportError(`Saving to ${dir}: a binary (GraphDef) model topology cannot be written as ${MODEL_JSON}; save a layers model.`);
  }
  const modelJSON: Record<string, unknown> = {
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  };
  for (const key of ['trainingConfig', 'signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature'] as const) {
    if (artifacts[key] != null) modelJSON[key] = artifacts[key];
  }
  const weights = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.concatenateArrayBuffers(artifacts.weightData as ArrayBuffer | ArrayBuffer[]);
  await writeFolderAtomic(dir, [
    [WEIGHTS_BIN, new Uint8Array(weights)],
    [MODEL_JSON, JSON.stringify(modelJSON)],
  ]);
  return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
}

/**
 * Writes `files` into the folder `dir` so that no reader sees half of it: into a fresh temporary
 * folder beside `dir`, renamed to `dir` at the end; when `dir` already exists, each file goes to a
 * temporary name inside it and is renamed over its old version once all are written. On an error
 * every temporary file or folder is removed and the error (an `ExportError` naming `dir`) is thrown;
 * the ones a killed writer left are removed by the next write.
 */
export async function writeFolderAtomic(dir: string, files: ReadonlyArray<readonly [string, Uint8Array | string]>): Promise<void> {
  const target = path.resolve(dir);
  const tag = `${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fail = (error: unknown): never => {
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message;
    const reason = code === undefined || message.startsWith(code) ? message : `${code}: ${message}`;
    throw new ExportError(`Cannot write the model folder ${target} (${reason}); nothing was written there.`, { cause: error });
  };
  let existing: import('node:fs').Stats | undefined;
  try {
    existing = await fs.stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'ENOTDIR') fail(error);
  }
  if (existing !== undefined && !existing.isDirectory()) {
    throw new ExportError(`Cannot write the model folder ${target}: it is a file; give a folder path (it is created if missing).`);
  }
  // what killed writers left: temporary folders beside the target, temporary files inside it
  removeStaleTempFiles(path.dirname(target));
  if (existing !== undefined) removeStaleTempFiles(target);
  if (existing === undefined) {
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${tag}`);
    const untrack = trackTempFile(tmp);
    try {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.mkdir(tmp);
      for (const [name, data] of files) await writeSynced(path.join(tmp, name), data);
      await fs.rename(tmp, target);
    } catch (error) {
      await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      fail(error);
    } finally {
      untrack();
    }
    return;
  }
  const temps = files.map(([name]) => path.join(target, `.${name}.${tag}`));
  const untrack = temps.map((t) => trackTempFile(t));
  try {
    for (const [i, [, data]] of files.entries()) await writeSynced(temps[i]!, data);
    for (const [i, [name]] of files.entries()) await fs.rename(temps[i]!, path.join(target, name));
  } catch (error) {
    await Promise.all(temps.map((t) => fs.rm(t, { force: true }).catch(() => undefined)));
    fail(error);
  } finally {
    untrack.forEach((done) => done());
  }
}

async function writeSynced(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, string: 0, complex64: 8 };

/** Bytes a manifest entry takes in its weights file (0 for strings, whose size is stored inline). */
function entryBytes(entry: tf.io.WeightsManifestEntry): number {
  const count = entry.shape.reduce((a, b) => a * b, 1);
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  return count * (BYTES[dtype] ?? 4);
}

async function loadArtifacts(target: string): Promise<tf.io.ModelArtifacts> {
  let file = target;
  let text: string;
  try {
    if ((await fs.stat(file)).isDirectory()) file = path.join(file, MODEL_JSON);
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ExportError(
      code === 'ENOENT'
        ? `Cannot load a model from ${file}: the file does not exist (expected the ${MODEL_JSON} that exportModule or model.save('file://...') writes).`
        : `Cannot read the model file ${file} (${code ?? (error as Error).message}).`,
      { cause: error },
    );
  }
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(text) as tf.io.ModelJSON;
  } catch (error) {
    throw new ExportError(`The model file ${file} is not valid JSON (${(error as Error).message}); it holds ${text.length} characters starting ${JSON.stringify(text.slice(0, 40))}.`, { cause: error });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json) || json.modelTopology == null) {
    throw new ExportError(`The model file ${file} has no "modelTopology": it is not a TensorFlow.js model.json (found keys: ${json !== null && typeof json === 'object' ? Object.keys(json).join(', ') || 'none' : typeof json}).`);
  }
  if (json.weightsManifest !== undefined && !Array.isArray(json.weightsManifest)) {
    throw new ExportError(`The model file ${file} has a "weightsManifest" that is not a list of weight groups.`);
  }
  return tf.io.getModelArtifactsForJSON(json, (manifest) => loadWeights(file, manifest));
}

async function loadWeights(file: string, manifest: tf.io.WeightsManifestConfig): Promise<[tf.io.WeightsManifestEntry[], ArrayBuffer]> {
  const dir = path.dirname(file);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: ArrayBuffer[] = [];
  for (const group of manifest) {
    let size = 0;
    const names: string[] = [];
    for (const name of group.paths) {
      const weightsFile = path.join(dir, name);
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(weightsFile);
      } catch (error) {
        throw new ExportError(`The weights file ${weightsFile} that ${file} lists does not exist or cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`, { cause: error });
      }
      size += bytes.byteLength;
      names.push(weightsFile);
      buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    }
    const expected = group.weights.reduce((sum, w) => sum + entryBytes(w), 0);
    const hasStrings = group.weights.some((w) => w.dtype === 'string');
    if (hasStrings ? size < expected : size !== expected) {
      const listed = group.weights.map((w) => `${w.name} ${w.dtype}[${w.shape.join(', ')}]`).join(', ');
      throw new ExportError(
        `The weights file ${names.join(' + ')} holds ${size} bytes, but ${file} describes ${expected} bytes of weights (${listed}): the weights do not belong to this model.json.`,
      );
    }
    specs.push(...group.weights);
  }
  return [specs, tf.io.concatenateArrayBuffers(buffers)];
}

let routing = false;

/** Flint's file:// routers step aside when another handler (tfjs-node's) takes the URL. */
function router(kind: 'save' | 'load') {
  return (url: string | string[]): tf.io.IOHandler | null => {
    if (routing || typeof url !== 'string' || !url.startsWith(FILE_SCHEME)) return null;
    routing = true;
    try {
      const others = kind === 'save' ? tf.io.getSaveHandlers(url) : tf.io.getLoadHandlers(url);
      if (others.length > 0) return null;
    } finally {
      routing = false;
    }
    return fileHandler(url);
  };
}

// tfjs's IORouter type says a router returns a handler; its registry skips the routers that return null.
tf.io.registerSaveRouter(router('save') as (url: string | string[]) => tf.io.IOHandler);
tf.io.registerLoadRouter(router('load') as (url: string | string[]) => tf.io.IOHandler);
