import type { z } from 'zod';
import { MisconfigurationError } from './errors.js';

/**
 * Parses options against a strict zod schema and turns zod's issues into one MisconfigurationError
 * that names each option, the value received and what would be valid.
 */
export function parseOptions<S extends z.ZodType>(
  owner: string,
  schema: S,
  input: unknown,
): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(options)';
    const received = describeReceived(input, issue.path);
    return `${owner} option '${path}': ${issue.message}${received}`;
  });
  throw new MisconfigurationError(lines.join('\n'), { cause: result.error });
}

function describeReceived(input: unknown, path: readonly PropertyKey[]): string {
  let value: unknown = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return '';
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  if (value === undefined) return '';
  let shown: string;
  try {
    shown = typeof value === 'function' ? `[function ${value.name}]` : JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  return ` (received ${shown})`;
}
