import { spawn } from 'node:child_process';

// Test helper (not built into dist): runs a child script and kills it with SIGKILL at a step.

export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/**
 * Runs `node script ...args` in `cwd`; once the child printed a line `step N` with N >= killAt,
 * waits `delayMs` and sends SIGKILL. Rejects when the child runs over 60 s.
 */
export function runChild(cwd: string, script: string, args: string[], killAt?: number, delayMs = 0): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => (err += String(d)));
    child.stdout.on('data', (d: Buffer) => {
      out += String(d);
      const steps = [...out.matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1]));
      if (killAt !== undefined && !sent && (steps.at(-1) ?? -1) >= killAt) {
        sent = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not finish in time; stderr: ${err}`));
    }, 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}
