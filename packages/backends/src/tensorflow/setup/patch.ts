import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@flint/core';

/**
 * Flint's small patch to tfjs-node's binding sources, applied to the staged copy that `setup-native`
 * compiles (tfjs-node's own files are never changed). It adds two methods to the binding,
 * `registerGraphFunction(name, graphDef, inputs, outputs)` and `removeFunction(name)`, which turn a
 * serialized GraphDef into a TensorFlow function in the binding's eager context (so that
 * `executeOp(name, ...)` runs a whole graph as one call), and `releaseLibraryPages()`, which gives
 * back the clean pages of TensorFlow's libraries that loading them made resident. Four edits: a
 * public accessor for the context in `tfjs_backend.h`, an include and three export entries in
 * `tfjs_binding.cc`, and the new header `flint_graph_function.h`. Applying it twice changes nothing.
 */
export const GRAPH_FUNCTION_HEADER = 'flint_graph_function.h';
const MARK = '// flint: graph functions';
const PAGES_MARK = '// flint: library pages';

interface Edit {
  readonly file: string;
  readonly anchor: string;
  readonly insert: string;
  readonly where: 'before' | 'after';
}

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
    const line = edit.insert.split('\n').find((l) => l.includes(MARK) || l.includes(PAGES_MARK))!;
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
    const pos = edit.where === 'before' ? at : at + edit.anchor.length;
    byFile.set(edit.file, text.slice(0, pos) + edit.insert + text.slice(pos));
    made++;
  }
  for (const [file, text] of byFile) writeFileSync(join(bindingDir, file), text);
  copyFileSync(headerSource(), join(bindingDir, GRAPH_FUNCTION_HEADER));
  return made;
}
