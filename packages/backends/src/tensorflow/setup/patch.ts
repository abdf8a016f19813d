import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@flint/core';

/**
 * Flint's small patch to tfjs-node's binding sources, applied to the staged copy that `setup-native`
 * compiles (tfjs-node's own files are never changed). It adds two methods to the binding,
 * `registerGraphFunction(name, graphDef, inputs, outputs)` and `removeFunction(name)`, which turn a
 * serialized GraphDef into a TensorFlow function in the binding's eager context (so that
 * `executeOp(name, ...)` runs a whole graph as one call); `releaseLibraryPages()`, which gives back
 * the clean pages of TensorFlow's libraries that loading them made resident; and it makes a tensor
 * from a typed array with a copy, never the array's own memory (`flintCopiesTypedArrays: true`, see
 * SHARED_MEMORY_CODE). Six edits: a public accessor for the context in `tfjs_backend.h`, the copy in
 * `tfjs_backend.cc`, an include and four export entries in `tfjs_binding.cc`, and the new header
 * `flint_graph_function.h`. Applying it twice changes nothing.
 */
export const GRAPH_FUNCTION_HEADER = 'flint_graph_function.h';
const MARK = '// flint: graph functions';
const PAGES_MARK = '// flint: library pages';
const COPY_MARK = '// flint: typed arrays copied';

interface Edit {
  readonly file: string;
  readonly anchor: string;
  readonly insert: string;
  /** Where `insert` goes: before or after `anchor`, or in its place. */
  readonly where: 'before' | 'after' | 'replace';
}

/**
 * tfjs-node makes a tensor from a typed array by handing TensorFlow the array's own memory
 * (`TF_NewTensor` with a deallocator that drops a reference to the array), when the memory happens
 * to be 64-byte aligned, and a copy otherwise. Flint's patch copies always, into memory TensorFlow
 * allocates: a tensor then never shares memory with a JavaScript array, so later writes to the
 * array (a reused batch array, or a data set's own array) cannot reach a live tensor, and nothing
 * in TensorFlow has to call back into V8 to let an array go.
 */
const SHARED_MEMORY_CODE = `  // Sharing V8 memory with the underlying TensorFlow tensor requires adding an
  // additional refcount. When the Tensor is deleted, the refcount will be
  // reduced in the callback helper.
  NapiAutoRef *auto_ref = new NapiAutoRef();
  nstatus = auto_ref->Init(env, array_value);
  if (nstatus != napi_ok) {
    delete auto_ref;
  }
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);

  // Currently, int64-type Tensors are represented as Int32Arrays.
  // So the logic for comparing the byte size of the typed-array representation
  // and the byte size of the tensor dtype needs to be special-cased for int64.
  const size_t byte_size =
      dtype == TF_INT64 ? num_elements * width * 2 : num_elements * width;

  TF_AutoTensor tensor(TF_NewTensor(dtype, shape, shape_length, array_data,
                                    byte_size, DeallocTensor, auto_ref));

  TF_AutoStatus tf_status;
  TFE_TensorHandle *tfe_tensor_handle =
      TFE_NewTensorHandle(tensor.tensor, tf_status.status);
  if (TF_GetCode(tf_status.status) != TF_OK) {
    delete auto_ref;
    TFE_DeleteTensorHandle(tfe_tensor_handle);
  }
`;

const COPIED_CODE = `  ${COPY_MARK}: the values are copied into memory TensorFlow owns (see patch.ts).
  const size_t byte_size =
      dtype == TF_INT64 ? num_elements * width * 2 : num_elements * width;
  TF_AutoTensor tensor(TF_AllocateTensor(dtype, shape, shape_length, byte_size));
  if (byte_size > 0) memcpy(TF_TensorData(tensor.tensor), array_data, byte_size);

  TF_AutoStatus tf_status;
  TFE_TensorHandle *tfe_tensor_handle =
      TFE_NewTensorHandle(tensor.tensor, tf_status.status);
  if (TF_GetCode(tf_status.status) != TF_OK) {
    TFE_DeleteTensorHandle(tfe_tensor_handle);
  }
`;

const EDITS: readonly Edit[] = [
  {
    file: 'tfjs_backend.h',
    anchor: ' private:\n  TFJSBackend(napi_env env);',
    insert: ` public:  ${MARK}\n  TFE_Context *flint_context() { return tfe_context_; }\n\n`,
    where: 'before',
  },
  {
    file: 'tfjs_binding.cc',
    anchor: '#include "utils.h"\n',
    insert: `#include "${GRAPH_FUNCTION_HEADER}"  ${MARK}\n`,
    where: 'after',
  },
  {
    file: 'tfjs_binding.cc',
    anchor: '  napi_property_descriptor exports_properties[] = {\n',
    insert:
      `      {"registerGraphFunction", nullptr, flint::RegisterGraphFunction, nullptr, nullptr, nullptr, napi_default, nullptr},  ${MARK}\n` +
      `      {"removeFunction", nullptr, flint::RemoveFunction, nullptr, nullptr, nullptr, napi_default, nullptr},  ${MARK}\n`,
    where: 'after',
  },
  {
    file: 'tfjs_binding.cc',
    anchor: '  napi_property_descriptor exports_properties[] = {\n',
    insert: `      {"releaseLibraryPages", nullptr, flint::ReleaseLibraryPages, nullptr, nullptr, nullptr, napi_default, nullptr},  ${PAGES_MARK}\n`,
    where: 'after',
  },
  { file: 'tfjs_backend.cc', anchor: SHARED_MEMORY_CODE, insert: COPIED_CODE, where: 'replace' },
  {
    file: 'tfjs_binding.cc',
    anchor: '  napi_property_descriptor exports_properties[] = {\n',
    insert: `      {"flintCopiesTypedArrays", nullptr, nullptr, nullptr, nullptr, flint::True(env), napi_default, nullptr},  ${COPY_MARK}\n`,
    where: 'after',
  },
];

/** The folder holding `flint_graph_function.h` (beside the sources, or beside the built file). */
function headerSource(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, 'addon'), join(here, '..', '..', '..', 'src', 'tensorflow', 'setup', 'addon')]) {
    if (existsSync(join(dir, GRAPH_FUNCTION_HEADER))) return join(dir, GRAPH_FUNCTION_HEADER);
  }
  throw new BackendError(`setup-native: Flint's ${GRAPH_FUNCTION_HEADER} is missing beside ${here} (a broken install of @flint/backends?)`);
}

/** Patches the binding sources in `bindingDir` (a copy of tfjs-node's `binding/`); returns the number of edits made (0: already patched). */
export function patchBindingSources(bindingDir: string): number {
  let made = 0;
  const byFile = new Map<string, string>();
  for (const edit of EDITS) {
    const path = join(bindingDir, edit.file);
    const text = byFile.get(edit.file) ?? readFileSync(path, 'utf8');
    const line = edit.insert.split('\n').find((l) => [MARK, PAGES_MARK, COPY_MARK].some((m) => l.includes(m)))!;
    if (text.includes(line)) {
      byFile.set(edit.file, text);
      continue;
    }
    const at = text.indexOf(edit.anchor);
    if (at < 0) {
      throw new BackendError(
        `setup-native: tfjs-node's binding/${edit.file} does not have the expected code (${JSON.stringify(edit.anchor.trim())}); this tfjs-node version cannot take Flint's graph-function patch.`,
      );
    }
    const [from, to] = edit.where === 'before' ? [at, at] : edit.where === 'after' ? [at + edit.anchor.length, at + edit.anchor.length] : [at, at + edit.anchor.length];
    byFile.set(edit.file, text.slice(0, from) + edit.insert + text.slice(to));
    made++;
  }
  for (const [file, text] of byFile) writeFileSync(join(bindingDir, file), text);
  copyFileSync(headerSource(), join(bindingDir, GRAPH_FUNCTION_HEADER));
  return made;
}
