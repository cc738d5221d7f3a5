/**
 * Measures how long the event loop was held while `run` is under way: the longest gap between
 * ticks of a 5 ms interval, counting of each gap only the CPU time this process spent in it, so
 * time the operating system gave to other processes on a shared machine is not taken for a
 * stall (a synchronous stretch of work is CPU time and shows in full). The attack suites here use
 * it, and a backend's or capability's own hostile-input tests can too.
 */
export async function withEventLoopProbe<T>(
  run: () => Promise<T>,
): Promise<{ result: T; maxDelayMs: number; elapsedMs: number }> {
  const started = performance.now();
  let last = started;
  let lastCpu = process.cpuUsage();
  let maxDelayMs = 0;
  const tick = () => {
    const now = performance.now();
    const cpu = process.cpuUsage(lastCpu);
    maxDelayMs = Math.max(maxDelayMs, Math.min(now - last, (cpu.user + cpu.system) / 1_000));
    last = now;
    lastCpu = process.cpuUsage();
  };
  const timer = setInterval(tick, 5);
  try {
    const result = await run();
    tick();
    return { result, maxDelayMs, elapsedMs: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}
