import os from 'node:os';

/**
 * How many CPUs' worth of time went idle during the next `ms` milliseconds (from os.cpus() time
 * counters, so it works on every platform Node runs on). Used by `threads: 'auto'`: a worker thread
 * only helps when a core is free for it; on a machine whose cores are busy with other work, XNNPACK's
 * workers wait to be scheduled at every kernel and training gets slower, not faster.
 */
async function measureIdleCpus(ms = 200): Promise<number> {
  const before = os.cpus();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = os.cpus();
  let idle = 0;
  let total = 0;
  for (const [i, cpu] of after.entries()) {
    const was = before[i];
    if (was === undefined) continue;
    const sum = (t: os.CpuInfo['times']) => t.user + t.nice + t.sys + t.idle + t.irq;
    idle += cpu.times.idle - was.times.idle;
    total += sum(cpu.times) - sum(was.times);
  }
  if (total <= 0) return after.length; // no tick elapsed: nothing says the CPUs are busy
  return (idle / total) * after.length;
}

/** The probe `threads: 'auto'` asks; tests replace `idleCpus` to pretend a busy or an idle machine. */
export const cpuProbe: { idleCpus: (ms?: number) => Promise<number> } = { idleCpus: measureIdleCpus };
