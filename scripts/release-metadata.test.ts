// What a release needs from each published package, checked without the network: the licence
// file and the package.json fields npm shows and provenance checks (repository with its folder,
// homepage, bugs, license), and a release plan that `changeset version` can apply. The publish
// dry run itself asks the registry, so it is `pnpm release:check`, not part of `pnpm test`; what
// the packed tarballs contain (LICENSE, no sources) is checked by consumer-project.test.ts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import getReleasePlan from '@changesets/get-release-plan';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REPOSITORY = 'https://github.com/everruns/everruns-ts';

interface Manifest {
  name: string;
  private?: boolean;
  license?: string;
  files?: string[];
  repository?: { type?: string; url?: string; directory?: string };
  homepage?: string;
  bugs?: { url?: string };
}

const published = readdirSync(join(ROOT, 'packages'))
  .filter((folder) => existsSync(join(ROOT, 'packages', folder, 'package.json')))
  .map((folder) => ({
    folder,
    manifest: JSON.parse(
      readFileSync(join(ROOT, 'packages', folder, 'package.json'), 'utf8'),
    ) as Manifest,
  }))
  .filter(({ manifest }) => !manifest.private);

describe('release metadata', () => {
  it('the repository has an MIT LICENSE at its root', () => {
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license.startsWith('MIT License\n')).toBe(true);
  });

  it('every package in packages/ is published', () => {
    expect(published.length).toBe(readdirSync(join(ROOT, 'packages')).length);
  });

  for (const { folder, manifest } of published) {
    it(`${manifest.name} carries the root LICENSE and the provenance fields`, () => {
      expect(readFileSync(join(ROOT, 'packages', folder, 'LICENSE'), 'utf8')).toBe(
        readFileSync(join(ROOT, 'LICENSE'), 'utf8'),
      );
      expect(manifest.files).toContain('LICENSE');
      expect(manifest.license).toBe('MIT');
      expect(manifest.repository).toEqual({
        type: 'git',
        url: `git+${REPOSITORY}.git`,
        directory: `packages/${folder}`,
      });
      expect(manifest.homepage).toBe(`${REPOSITORY}/tree/main/packages/${folder}#readme`);
      expect(manifest.bugs).toEqual({ url: `${REPOSITORY}/issues` });
    });
  }

  it('every pending changeset makes a release plan `changeset version` can apply', async () => {
    // The planner `changeset version` and `changeset status` use, over every changeset in
    // .changeset/ (no git needed, so a shallow or detached checkout sees them all). A changeset
    // naming an ignored package beside others, an unknown package or a bad bump type throws.
    const plan = await getReleasePlan(ROOT);
    const pending = readdirSync(join(ROOT, '.changeset')).filter(
      (file) => file.endsWith('.md') && file !== 'README.md',
    );
    expect(plan.changesets.length).toBe(pending.length);
    expect(plan.releases.length).toBeGreaterThan(0);
  });
});
