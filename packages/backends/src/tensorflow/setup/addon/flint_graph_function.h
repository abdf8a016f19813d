// Flint's addition to tfjs-node's binding, compiled in by `setup-native` (see patch.ts):
// `registerGraphFunction(name, graphDef, inputs, outputs)` imports a serialized GraphDef, turns it
// into a TensorFlow function (TF_GraphToFunction) and adds it to the binding's eager context, so
// that `executeOp(name, [], inputIds, outputs.length)` runs the whole graph as one call.
// `inputs` and `outputs` are "node:index" strings naming tensors of the graph.
// `releaseLibraryPages()` gives back the pages of TensorFlow's libraries that loading them made
// resident but that hold nothing the process changed (see ReleaseLibraryPages below).
#ifndef FLINT_GRAPH_FUNCTION_H_
#define FLINT_GRAPH_FUNCTION_H_

#include <node_api.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#ifdef __linux__
#include <sys/mman.h>
#endif
#include "tensorflow/c/c_api.h"
#include "tensorflow/c/eager/c_api.h"
#include "tfjs_backend.h"

namespace flint {

// The value of the binding's `flintCopiesTypedArrays` flag: this build copies a typed array's
// values into memory TensorFlow owns when it makes a tensor (patch.ts).
static napi_value True(napi_env env) {
  napi_value value = nullptr;
  napi_get_boolean(env, true, &value);
  return value;
}

static bool FlintString(napi_env env, napi_value v, std::string &out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out.resize(len + 1);
  if (napi_get_value_string_utf8(env, v, &out[0], len + 1, &len) != napi_ok) return false;
  out.resize(len);
  return true;
}

static bool FlintOutputs(napi_env env, TF_Graph *graph, napi_value array, std::vector<TF_Output> &out,
                         std::string &error) {
  uint32_t n = 0;
  if (napi_get_array_length(env, array, &n) != napi_ok) { error = "expected an array of 'node:index' strings"; return false; }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    std::string s;
    if (napi_get_element(env, array, i, &item) != napi_ok || !FlintString(env, item, s)) { error = "expected 'node:index' strings"; return false; }
    size_t colon = s.rfind(':');
    std::string node = colon == std::string::npos ? s : s.substr(0, colon);
    int index = colon == std::string::npos ? 0 : std::stoi(s.substr(colon + 1));
    TF_Operation *op = TF_GraphOperationByName(graph, node.c_str());
    if (op == nullptr) { error = "no node '" + node + "' in the graph"; return false; }
    out.push_back(TF_Output{op, index});
  }
  return true;
}

static napi_value RegisterGraphFunction(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value args[4];
  if (napi_get_cb_info(env, info, &argc, args, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_throw_error(env, nullptr, "registerGraphFunction(name, graphDef, inputs, outputs): 4 arguments expected");
    return nullptr;
  }
  std::string name;
  if (!FlintString(env, args[0], name)) { napi_throw_type_error(env, nullptr, "registerGraphFunction: name must be a string"); return nullptr; }
  bool is_typed = false;
  napi_is_typedarray(env, args[1], &is_typed);
  if (!is_typed) { napi_throw_type_error(env, nullptr, "registerGraphFunction: graphDef must be a Uint8Array"); return nullptr; }
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = nullptr;
  napi_value buffer;
  napi_get_typedarray_info(env, args[1], &type, &length, &data, &buffer, &offset);

  tfnodejs::TFJSBackend *backend = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void **>(&backend));
  if (backend == nullptr) { napi_throw_error(env, nullptr, "registerGraphFunction: the binding is not initialised"); return nullptr; }

  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_Buffer *graph_def = TF_NewBufferFromString(data, length);
  TF_ImportGraphDefOptions *options = TF_NewImportGraphDefOptions();
  std::string error;
  std::vector<TF_Output> inputs, outputs;
  TF_Function *fn = nullptr;
  TF_GraphImportGraphDef(graph, graph_def, options, status);
  if (TF_GetCode(status) != TF_OK) {
    error = std::string("importing the graph: ") + TF_Message(status);
  } else if (!FlintOutputs(env, graph, args[2], inputs, error) || !FlintOutputs(env, graph, args[3], outputs, error)) {
    // error is set
  } else {
    fn = TF_GraphToFunction(graph, name.c_str(), 0, -1, nullptr, static_cast<int>(inputs.size()), inputs.data(),
                            static_cast<int>(outputs.size()), outputs.data(), nullptr, nullptr, nullptr, status);
    if (TF_GetCode(status) != TF_OK) {
      error = std::string("making the function: ") + TF_Message(status);
    } else {
      TFE_ContextAddFunction(backend->flint_context(), fn, status);
      if (TF_GetCode(status) != TF_OK) error = std::string("adding the function: ") + TF_Message(status);
    }
  }
  if (fn != nullptr) TF_DeleteFunction(fn);
  TF_DeleteImportGraphDefOptions(options);
  TF_DeleteBuffer(graph_def);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  if (!error.empty()) {
    napi_throw_error(env, nullptr, ("registerGraphFunction '" + name + "': " + error).c_str());
    return nullptr;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

static napi_value RemoveFunction(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  std::string name;
  if (napi_get_cb_info(env, info, &argc, args, nullptr, nullptr) != napi_ok || argc < 1 || !FlintString(env, args[0], name)) {
    napi_throw_type_error(env, nullptr, "removeFunction(name): name must be a string");
    return nullptr;
  }
  tfnodejs::TFJSBackend *backend = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void **>(&backend));
  TF_Status *status = TF_NewStatus();
  TFE_ContextRemoveFunction(backend->flint_context(), name.c_str(), status);
  std::string error = TF_GetCode(status) == TF_OK ? "" : TF_Message(status);
  TF_DeleteStatus(status);
  if (!error.empty()) { napi_throw_error(env, nullptr, ("removeFunction '" + name + "': " + error).c_str()); return nullptr; }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

// Loading libtensorflow_cc runs thousands of static initialisers (op and kernel registrations)
// spread over its whole text, and the kernel maps 64 KB around each page they touch: about 250 MB
// of the library ends up resident though training uses a small part of it. Those pages are clean
// and backed by the file, so they can be dropped (MADV_DONTNEED) and any that is used again is
// mapped back from the page cache. Only mappings of a libtensorflow* file that are not writable
// and hold no private dirty or swapped page are dropped (relocated data stays). Linux only; returns
// the kilobytes that were resident in the dropped mappings (0 elsewhere).
static napi_value ReleaseLibraryPages(napi_env env, napi_callback_info info) {
  double released_kb = 0;
#ifdef __linux__
  struct Mapping {
    unsigned long start = 0, end = 0;
    bool candidate = false;
    long rss = 0, dirty = 0, swap = 0;
  };
  std::vector<Mapping> mappings;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  while (std::getline(smaps, line)) {
    unsigned long start = 0, end = 0;
    char perms[5] = {0};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) == 3) {
      Mapping m;
      m.start = start;
      m.end = end;
      size_t slash = line.rfind('/');
      std::string file = slash == std::string::npos ? "" : line.substr(slash + 1);
      m.candidate = file.rfind("libtensorflow", 0) == 0 && perms[1] == '-' && perms[3] == 'p';
      mappings.push_back(m);
      continue;
    }
    if (mappings.empty()) continue;
    long kb = 0;
    Mapping &m = mappings.back();
    if (std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) m.rss = kb;
    else if (std::sscanf(line.c_str(), "Private_Dirty: %ld kB", &kb) == 1) m.dirty += kb;
    else if (std::sscanf(line.c_str(), "Shared_Dirty: %ld kB", &kb) == 1) m.dirty += kb;
    else if (std::sscanf(line.c_str(), "Swap: %ld kB", &kb) == 1) m.swap = kb;
  }
  for (const Mapping &m : mappings) {
    if (!m.candidate || m.dirty != 0 || m.swap != 0 || m.rss == 0) continue;
    if (madvise(reinterpret_cast<void *>(m.start), m.end - m.start, MADV_DONTNEED) == 0) released_kb += static_cast<double>(m.rss);
  }
#endif
  napi_value result;
  napi_create_double(env, released_kb, &result);
  return result;
}

}  // namespace flint

#endif  // FLINT_GRAPH_FUNCTION_H_
