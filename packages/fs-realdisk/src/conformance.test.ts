import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionFileSystem } from '@everruns-ts/core';
import { sessionFileSystemConformance } from '@everruns-ts/store-conformance';
import { afterAll } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { RealDiskSessionFileSystemFactory } from './real-disk-session-file-system-factory.js';

const maxFileBytes = 4096;
const base = mkdtempSync(join(tmpdir(), 'everruns-fs-conformance-'));
const outside = mkdtempSync(join(tmpdir(), 'everruns-fs-outside-'));
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

let counter = 0;
const linkOutside = async (fileSystem: SessionFileSystem, linkPath: string) => {
  symlinkSync(outside, join((fileSystem as RealDiskFileStore).root, linkPath));
};

for (const resolution of ['descriptor', 'path'] as const) {
  sessionFileSystemConformance({
    name: `RealDiskFileStore (${resolution})`,
    capabilities: { maxFileBytes, symlinks: true },
    create: () =>
      new RealDiskFileStore({
        root: join(base, `${resolution}-${++counter}`),
        createRoot: true,
        maxFileBytes,
        resolution,
      }),
    destroy: (fileSystem) =>
      rmSync((fileSystem as RealDiskFileStore).root, { recursive: true, force: true }),
    linkOutside,
  });
}

const factory = new RealDiskSessionFileSystemFactory({
  sessionsDirectory: join(base, 'sessions'),
  maxFileBytes,
});
sessionFileSystemConformance({
  name: 'RealDiskSessionFileSystemFactory',
  capabilities: { maxFileBytes, symlinks: true },
  create: () => factory.forSession(`session_${++counter}`),
  linkOutside,
});
