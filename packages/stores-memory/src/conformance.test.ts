import { runtimeStoreConformance } from '@everruns-ts/store-conformance';
import { inMemoryBackends } from './index.js';

runtimeStoreConformance({
  name: 'stores-memory',
  create: () => inMemoryBackends(),
  ephemeralEvents: true,
});
