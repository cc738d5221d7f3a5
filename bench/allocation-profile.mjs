// Every allocation of a piece of work, those the next scavenge frees included, as V8's sampling
// heap profiler sees them: shared by the benchmarks that report allocation per turn.
import { Session } from 'node:inspector/promises';

/**
 * Runs `run` `times` times (awaited one after another) under the sampling heap profiler and
 * resolves with the profile's root node (`HeapProfiler.SamplingHeapProfileNode`).
 */
export async function sampleAllocations(run, times, samplingInterval = 256) {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval,
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
    for (let index = 0; index < times; index++) await run();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    return profile.head;
  } finally {
    session.disconnect();
  }
}

/** The bytes a profile node and everything under it allocated. */
export function allocatedBytes(node) {
  let bytes = node.selfSize;
  for (const child of node.children) bytes += allocatedBytes(child);
  return bytes;
}
