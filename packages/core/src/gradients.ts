import * as tf from '@tensorflow/tfjs';

/** What `tapeGradients` found. */
export type TapeResult =
  | { readonly kind: 'ok'; readonly value: tf.Scalar; readonly grads: tf.NamedTensorMap }
  /** `f` threw: its error, unchanged. */
  | { readonly kind: 'threw'; readonly error: unknown }
  /** `f` returned a loss that no gradient connects to any of the variables (a constant). */
  | { readonly kind: 'no-gradient' };

/**
 * `tf.variableGrads(f, vars)` that leaves no tensor behind when `f` throws. tfjs keeps copies of
 * the tensors each recorded op needs for the backward pass and frees them only at the end of the
 * backward pass; when `f` throws after its forward ops, those copies would stay allocated forever.
 * Here the error is caught inside the tape, the tape is finished with a constant (which frees the
 * copies) and the error is returned. A loss with no path to the variables is reported as
 * 'no-gradient' instead of tfjs's error text.
 * @internal Used by the trainer and `manualBackward`.
 */
export function tapeGradients(f: () => tf.Scalar, vars: readonly tf.Variable[]): TapeResult {
  let failure = undefined as { error: unknown } | undefined;
  let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
  try {
    result = tf.variableGrads(() => {
      try {
        return f();
      } catch (error) {
        failure = { error };
        return tf.scalar(0);
      }
    }, vars as tf.Variable[]);
  } catch (error) {
    if (failure !== undefined) return { kind: 'threw', error: failure.error };
    if (error instanceof Error && error.message.startsWith('Cannot find a connection between any variable')) return { kind: 'no-gradient' };
    return { kind: 'threw', error };
  }
  if (failure !== undefined) {
    tf.dispose([result.value, ...Object.values(result.grads)]);
    return { kind: 'threw', error: failure.error };
  }
  return { kind: 'ok', value: result.value, grads: result.grads };
}
