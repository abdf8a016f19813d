import { BackendError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { LINK_NAMES, pipDownloadArgs, selectWheelMembers, TENSORFLOW_HEADERS, TENSORFLOW_LIBRARIES, WHEEL_REQUIREMENT } from './wheel.js';

// The members of tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl that matter, among decoys.
const wheelNames = [
  'tensorflow_cpu-2.21.0.dist-info/METADATA',
  'tensorflow/libtensorflow_cc.so.2',
  'tensorflow/libtensorflow_framework.so.2',
  'tensorflow/THIRD_PARTY_NOTICES.txt',
  'tensorflow/include/LICENSE',
  'tensorflow/include/external/ruy/LICENSE',
  'tensorflow/include/tensorflow/c/c_api_experimental.h',
  'tensorflow/python/_pywrap_tensorflow_internal.so',
  ...TENSORFLOW_HEADERS.map((h) => `tensorflow/include/${h}`),
];

describe('the wheel recipe', () => {
  it('needs the 14 headers of the binding, as in the verified recipe', () => {
    expect(TENSORFLOW_HEADERS).toHaveLength(14);
    expect(TENSORFLOW_HEADERS).toEqual([
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
    ]);
  });

  it('links -ltensorflow to libtensorflow_cc.so.2 and -ltensorflow_framework to libtensorflow_framework.so.2; 2.9.1 name stops the download', () => {
    expect(LINK_NAMES).toEqual([
      { link: 'libtensorflow.so', target: 'libtensorflow_cc.so.2' },
      { link: 'libtensorflow_framework.so', target: 'libtensorflow_framework.so.2' },
      { link: 'libtensorflow.so.2.9.1', target: 'libtensorflow_cc.so.2' },
    ]);
    for (const { target } of LINK_NAMES) expect(TENSORFLOW_LIBRARIES).toContain(target);
  });

  it('selects the two libraries, both licence files and the headers, and nothing else', () => {
    const members = selectWheelMembers(wheelNames);
    expect(members.slice(0, 4)).toEqual([
      { member: 'tensorflow/libtensorflow_cc.so.2', dest: 'lib/libtensorflow_cc.so.2' },
      { member: 'tensorflow/libtensorflow_framework.so.2', dest: 'lib/libtensorflow_framework.so.2' },
      { member: 'tensorflow/include/LICENSE', dest: 'lib/LICENSE' },
      { member: 'tensorflow/THIRD_PARTY_NOTICES.txt', dest: 'lib/THIRD_PARTY_NOTICES.txt' },
    ]);
    expect(members.slice(4)).toEqual(TENSORFLOW_HEADERS.map((h) => ({ member: `tensorflow/include/${h}`, dest: `include/${h}` })));
    expect(members).toHaveLength(18);
  });

  it('names every member a wheel lacks, in one BackendError', () => {
    const names = wheelNames.filter((n) => n !== 'tensorflow/libtensorflow_framework.so.2' && n !== 'tensorflow/include/xla/tsl/c/tsl_status.h');
    expect(() => selectWheelMembers(names, 'tensorflow_cpu-2.20.0-x.whl')).toThrow(BackendError);
    expect(() => selectWheelMembers(names, 'tensorflow_cpu-2.20.0-x.whl')).toThrow(
      'setup-native: tensorflow_cpu-2.20.0-x.whl lacks 2 of the files the native backend needs: tensorflow/libtensorflow_framework.so.2, ' +
        'tensorflow/include/xla/tsl/c/tsl_status.h. The recipe is verified with tensorflow-cpu==2.21.0; make sure pip fetched that exact release.',
    );
  });

  it('downloads with pip without dependencies, cache or retries, binary only', () => {
    expect(WHEEL_REQUIREMENT).toBe('tensorflow-cpu==2.21.0');
    expect(pipDownloadArgs('/w')).toEqual([
      'download', '--no-deps', '--only-binary=:all:', '--no-cache-dir', '--retries', '0', '--progress-bar', 'off', 'tensorflow-cpu==2.21.0', '-d', '/w',
    ]);
    expect(pipDownloadArgs('/w', true)).toEqual([
      'download', '--no-deps', '--only-binary=:all:', '--no-cache-dir', '--retries', '0', '--progress-bar', 'off',
      '--python-version', '3.11', '--implementation', 'cp', '--abi', 'cp311', '--platform', 'manylinux_2_27_x86_64',
      'tensorflow-cpu==2.21.0', '-d', '/w',
    ]);
  });
});
