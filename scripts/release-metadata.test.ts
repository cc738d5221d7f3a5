// What a release needs from each published package, checked without the network: the licence
// file and the package.json fields npm shows and provenance checks (repository with its folder,
// homepage, bugs, license), and a release plan that `changeset version` can apply. The publish
// dry run itself asks the registry, so it is `pnpm release:check`, not part of `pnpm test`; what
// the packed tarballs contain (LICENSE, no sources) is checked by consumer-project.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

  it('every pending changeset makes a release plan `changeset version` can apply', () => {
    // From the first commit, so every changeset in .changeset/ counts, on any branch or a
    // detached checkout. A changeset naming an ignored package beside others, an unknown
    // package or a bad bump type fails here.
    const firstCommit = execFileSync('git', ['rev-list', '--max-parents=0', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .at(-1);
    const folder = mkdtempSync(join(tmpdir(), 'everruns-release-plan-'));
    try {
      const planFile = join(folder, 'plan.json');
      execFileSync(
        join(ROOT, 'node_modules', '.bin', 'changeset'),
        ['status', `--since=${firstCommit}`, `--output=${planFile}`],
        { cwd: ROOT, stdio: 'pipe' },
      );
      const plan = JSON.parse(readFileSync(planFile, 'utf8')) as {
        changesets: unknown[];
        releases: { name: string; type: string }[];
      };
      const pending = readdirSync(join(ROOT, '.changeset')).filter(
        (file) => file.endsWith('.md') && file !== 'README.md',
      );
      expect(plan.changesets.length).toBe(pending.length);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
