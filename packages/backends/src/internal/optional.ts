import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

/** Whether an optional peer package can be found from the working folder or from here. */
export function isResolvable(name: string): boolean {
  for (const base of [process.cwd() + '/', import.meta.url]) {
    try {
      createRequire(base).resolve(`${name}/package.json`);
      return true;
    } catch {
      // not from here
    }
  }
  return false;
}

export async function importOptional(name: string): Promise<unknown> {
  // The optional peers are loaded dynamically so that Flint works without them.
  for (const base of [process.cwd() + '/', import.meta.url]) {
    let resolved: string;
    try {
      resolved = createRequire(base).resolve(name);
    } catch {
      continue;
    }
    return import(resolved);
  }
  return import(name);
}

/** Makes a registered tfjs backend the active one; false when it does not initialize. */
export async function activate(name: string): Promise<boolean> {
  if (tf.getBackend() === name) return true;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
