import { sessionFileSystemConformance } from '@everruns-ts/store-conformance';
import { InMemorySessionFileStore, InMemorySessionFileSystemFactory } from './index.js';

const maxFileBytes = 4096;

sessionFileSystemConformance({
  name: 'InMemorySessionFileStore',
  capabilities: { maxFileBytes },
  create: () => new InMemorySessionFileStore({ maxFileBytes }),
});

let sessionCounter = 0;
const factory = new InMemorySessionFileSystemFactory({ maxFileBytes });

sessionFileSystemConformance({
  name: 'InMemorySessionFileSystemFactory',
  capabilities: { maxFileBytes },
  create: () => factory.forSession(`session_${++sessionCounter}`),
});
