import { BackendError } from '@flint/core';

/** The TensorFlow release whose `tensorflow-cpu` wheel the native backend is built against (verified). */
export const TENSORFLOW_VERSION = '2.21.0';

/** The pip requirement for that wheel. */
export const WHEEL_REQUIREMENT = `tensorflow-cpu==${TENSORFLOW_VERSION}`;

/** The tfjs-node release the recipe is verified with. */
export const TFJS_NODE_VERSION = '4.22.0';

/**
 * Target tags for a second `pip download` when the interpreter's own tags find no wheel (a Python
 * that TensorFlow publishes no wheel for): the libraries inside do not link libpython, so any
 * Python tag of the wheel will do, and cp311 is published on every index that has the release.
 */
export const FALLBACK_WHEEL_TAGS = [
  '--python-version',
  '3.11',
  '--implementation',
  'cp',
  '--abi',
  'cp311',
  '--platform',
  'manylinux_2_27_x86_64',
] as const;

/** The headers tfjs-node's binding includes, directly or through other headers (under `tensorflow/include/` in the wheel). */
export const TENSORFLOW_HEADERS = [
  'tensorflow/c/c_api.h',
  'tensorflow/c/c_api_macros.h',
  'tensorflow/c/eager/c_api.h',
  'tensorflow/c/tf_attrtype.h',
  'tensorflow/c/tf_buffer.h',
  'tensorflow/c/tf_datatype.h',
  'tensorflow/c/tf_status.h',
  'tensorflow/c/tf_tensor.h',
  'tensorflow/c/tf_tstring.h',
  'tensorflow/core/platform/ctstring.h',
  'tensorflow/core/platform/ctstring_internal.h',
  'tsl/platform/ctstring.h',
  'tsl/platform/ctstring_internal.h',
  'xla/tsl/c/tsl_status.h',
] as const;

/** The two shared libraries, by their file names (which are also their sonames). */
export const TENSORFLOW_LIBRARIES = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'] as const;

/** Licence files kept beside the libraries: wheel member -> file name in `deps/lib`. */
export const LICENSE_FILES = [
  { member: 'tensorflow/include/LICENSE', name: 'LICENSE' },
  { member: 'tensorflow/THIRD_PARTY_NOTICES.txt', name: 'THIRD_PARTY_NOTICES.txt' },
] as const;

/**
 * Symlinks created in `deps/lib`: link name -> target. The first two are the names tfjs-node's
 * `binding.gyp` links with (`-ltensorflow -ltensorflow_framework`); the third makes tfjs-node's own
 * install script, should a package manager ever run it, see libtensorflow as present and skip its download.
 */
export const LINK_NAMES: readonly { readonly link: string; readonly target: string }[] = [
  { link: 'libtensorflow.so', target: 'libtensorflow_cc.so.2' },
  { link: 'libtensorflow_framework.so', target: 'libtensorflow_framework.so.2' },
  { link: 'libtensorflow.so.2.9.1', target: 'libtensorflow_cc.so.2' },
];

/** One file to take from the wheel: the zip member and its path relative to tfjs-node's `deps/`. */
export interface WheelMember {
  readonly member: string;
  readonly dest: string;
}

/**
 * Chooses the wheel members to extract and where each goes under `deps/` (`lib/` for the libraries and
 * licences, `include/` for the headers). Throws a BackendError that lists every member the wheel lacks.
 */
export function selectWheelMembers(names: Iterable<string>, wheelName = 'the wheel'): WheelMember[] {
  const present = new Set(names);
  const wanted: WheelMember[] = [
    ...TENSORFLOW_LIBRARIES.map((lib) => ({ member: `tensorflow/${lib}`, dest: `lib/${lib}` })),
    ...LICENSE_FILES.map((f) => ({ member: f.member, dest: `lib/${f.name}` })),
    ...TENSORFLOW_HEADERS.map((h) => ({ member: `tensorflow/include/${h}`, dest: `include/${h}` })),
  ];
  const missing = wanted.filter((w) => !present.has(w.member)).map((w) => w.member);
  if (missing.length > 0) {
    throw new BackendError(
      `setup-native: ${wheelName} lacks ${missing.length} of the files the native backend needs: ${missing.join(', ')}. ` +
        `The recipe is verified with ${WHEEL_REQUIREMENT}; make sure pip fetched that exact release.`,
    );
  }
  return wanted;
}

/** The `pip download` arguments (after `python -m pip`) that fetch the wheel into `dir`. */
export function pipDownloadArgs(dir: string, fallbackTags = false): string[] {
  return [
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--no-cache-dir',
    '--retries',
    '0',
    '--progress-bar',
    'off',
    ...(fallbackTags ? FALLBACK_WHEEL_TAGS : []),
    WHEEL_REQUIREMENT,
    '-d',
    dir,
  ];
}
