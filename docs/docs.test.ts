// Keeps the docs honest: every ```ts block of docs/**/*.md, of the root README.md and of every
// packages/*/README.md is type-checked with tsc against the workspace packages' sources, and
// every block not marked `no-run` is run with Node (tsx), with `DATABASE_URL` defaulting to the
// local test server. A block may be followed by a ```text output block: the run's standard
// output must then equal it.
// `file=<name>.ts` saves a block under that name, so later blocks of the same page can import it
// (`import { runtime } from './<name>.js'`), as a reader who saves the files would. A block
// marked `vitest` is a test file: it is run with vitest instead of Node.
//
// The blocks are written to docs/node_modules/.doc-snippets/ (ignored by git and Biome), and
// docs/node_modules/ links every workspace package, as a package manager would, so the blocks
// import `@everruns-ts/...` exactly as a user's code does.
//
// Each page has its own tests, named after its path, so one page can be checked alone:
//   pnpm exec vitest run docs -t 'packages/store-conformance/README.md'
import { execFile } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = join(ROOT, 'docs');
const MODULES = join(DOCS, 'node_modules');
const WORK = join(MODULES, '.doc-snippets');
const RUN_TIMEOUT_MS = 90_000;
/**
 * Under `pnpm test`, which builds every package first (`EVERRUNS_TEST_BUILT=1`), the one tsc run
 * that type-checks the blocks also emits their JavaScript, and each block runs with
 * Node alone, loading the packages' fresh `dist` (a loader such as tsx costs about a second of
 * CPU per process, a hundred blocks over). A direct vitest run type-checks only and runs each
 * block through tsx against the packages' sources, so it needs no build.
 */
const BUILT = process.env.EVERRUNS_TEST_BUILT === '1';
const TSX_ARGS = ['--conditions=@everruns-ts/source', '--import', 'tsx'];
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// The guide's PostgreSQL pages read the stores' secret key from the environment, as a reader who
// followed them exported it; every block of a run shares this one (a test-only key).
const EVERRUNS_SECRET_KEY = process.env.EVERRUNS_SECRET_KEY ?? '5e'.repeat(32);

interface Snippet {
  /** Markdown file, relative to the repository root. */
  page: string;
  /** 1-based line of the first code line. */
  line: number;
  code: string;
  run: boolean;
  /** Run with vitest (a test file) instead of Node. */
  vitest: boolean;
  /** Expected standard output, from a ```text output block right after. */
  output: string | undefined;
  /** Path inside WORK: one folder per page. */
  file: string;
}

function markdownFiles(directory: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (relative(DOCS, path) === 'api') continue;
      files.push(...markdownFiles(path));
    } else if (entry.name.endsWith('.md')) files.push(path);
  }
  return files.sort();
}

/** The READMEs whose blocks are checked too: the root one and each package's. */
function readmeFiles(): string[] {
  const files = [join(ROOT, 'README.md')];
  const packages = join(ROOT, 'packages');
  for (const entry of readdirSync(packages).sort()) {
    const readme = join(packages, entry, 'README.md');
    if (existsSync(readme)) files.push(readme);
  }
  return files;
}

/** The ```ts blocks of one page, in order. */
function extractSnippets(markdown: string, page: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  for (let index = 0; index < lines.length; index++) {
    const open = /^```(ts|typescript)(?:\s+(.*))?$/.exec(lines[index] as string);
    if (!open) continue;
    const flags = (open[2] ?? '').split(/\s+/).filter(Boolean);
    const start = index + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] as string)) end++;
    if (end >= lines.length) throw new Error(`${page}:${index + 1}: unclosed code block`);
    const code = lines.slice(start, end).join('\n');
    let output: string | undefined;
    let next = end + 1;
    while (next < lines.length && (lines[next] as string).trim() === '') next++;
    if (/^```text\s+output\s*$/.test(lines[next] ?? '')) {
      let close = next + 1;
      while (close < lines.length && !/^```\s*$/.test(lines[close] as string)) close++;
      output = lines.slice(next + 1, close).join('\n');
    }
    // Pages outside docs/ get a prefix, so README.md and docs/README.md stay apart.
    const slug = (page.startsWith('docs/') ? page.slice('docs/'.length) : `repo/${page}`)
      .replace(/\.md$/, '')
      .replace(/[^A-Za-z0-9]+/g, '-');
    const named = flags.find((flag) => flag.startsWith('file='))?.slice('file='.length);
    if (named !== undefined && !/^[A-Za-z0-9_-]+(\.test)?\.ts$/.test(named)) {
      throw new Error(`${page}:${index + 1}: file= must name a .ts file in the same folder`);
    }
    snippets.push({
      page,
      line: start + 1,
      code,
      run: !flags.includes('no-run'),
      vitest: flags.includes('vitest'),
      output,
      file: `${slug}/${named ?? `L${start + 1}.mts`}`,
    });
    index = end;
  }
  return snippets;
}

const snippets = [...markdownFiles(DOCS), ...readmeFiles()].flatMap((path) =>
  extractSnippets(readFileSync(path, 'utf8'), relative(ROOT, path).replaceAll('\\', '/')),
);

/** The pages that have blocks, in order. */
const pages = [...new Set(snippets.map((snippet) => snippet.page))];

/** Links `docs/node_modules/<name>` to `target` (replacing a stale link). */
function link(name: string, target: string): void {
  const path = join(MODULES, name);
  mkdirSync(dirname(path), { recursive: true });
  try {
    if (lstatSync(path).isSymbolicLink() && realpathSync(path) === realpathSync(target)) return;
    rmSync(path, { recursive: true, force: true });
  } catch {
    // Not there yet.
  }
  symlinkSync(relative(dirname(path), target), path, 'dir');
}

/** The bare package names the snippets import (`zod`, `@everruns-ts/runtime`, …). */
function importedPackages(): Set<string> {
  const names = new Set<string>();
  const pattern = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]/g;
  for (const snippet of snippets) {
    for (const match of snippet.code.matchAll(pattern)) {
      const specifier = (match[1] ?? match[2]) as string;
      if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
      const parts = specifier.split('/');
      const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
      if (!builtinModules.includes(name)) names.add(name);
    }
  }
  return names;
}

/**
 * Makes every import of the snippets resolvable from docs/: workspace packages link to their
 * folders; other packages link to the copy a workspace package (or the root) depends on.
 */
function linkPackages(): void {
  const workspace = new Map<string, string>();
  for (const group of ['packages', 'apps', 'apps/examples']) {
    const directory = join(ROOT, group);
    if (!existsSync(directory)) continue;
    for (const entry of readdirSync(directory)) {
      const manifest = join(directory, entry, 'package.json');
      if (!existsSync(manifest)) continue;
      const name = (JSON.parse(readFileSync(manifest, 'utf8')) as { name: string }).name;
      workspace.set(name, join(directory, entry));
    }
  }
  const missing: string[] = [];
  /** Links `name` to the copy a workspace package holds; false when none does. */
  const linkFromHolder = (name: string): boolean => {
    const holder = [...workspace.values()].find((directory) =>
      existsSync(join(directory, 'node_modules', name)),
    );
    if (holder) link(name, realpathSync(join(holder, 'node_modules', name)));
    return holder !== undefined;
  };
  for (const name of importedPackages()) {
    const local = workspace.get(name);
    if (local) {
      link(name, local);
      continue;
    }
    if (!existsSync(join(ROOT, 'node_modules', name)) && !linkFromHolder(name)) {
      missing.push(name);
    }
    // Its types, when they come apart (`pg` and `@types/pg`), as a user would install them.
    const types = `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`;
    if (!existsSync(join(ROOT, 'node_modules', types))) linkFromHolder(types);
  }
  if (missing.length > 0) {
    throw new Error(
      `The docs import ${missing.join(', ')}, which no workspace package depends on: add it to a package or change the docs.`,
    );
  }
}

function exec(
  command: string,
  args: string[],
  options: { timeout: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: ROOT,
        timeout: options.timeout,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, DATABASE_URL, EVERRUNS_SECRET_KEY },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr: stderr || (error && code !== 0 ? error.message : '') });
      },
    );
  });
}

beforeAll(() => {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  linkPackages();
  writeFileSync(join(WORK, 'package.json'), '{ "private": true, "type": "module" }\n');
  // For `vitest` blocks: the blocks live under node_modules/, which vitest ignores by default.
  writeFileSync(
    join(WORK, 'vitest.config.mjs'),
    `export default {
  resolve: { conditions: ['@everruns-ts/source'] },
  ssr: { resolve: { conditions: ['@everruns-ts/source'] } },
  server: { deps: { inline: [/doc-snippets/] } },
  test: { root: ${JSON.stringify(WORK)}, include: ['**/*.test.ts'], exclude: [], testTimeout: 30000 },
};
`,
  );
  for (const snippet of snippets) {
    mkdirSync(dirname(join(WORK, snippet.file)), { recursive: true });
    writeFileSync(join(WORK, snippet.file), `${snippet.code}\n`);
  }
  writeFileSync(
    join(WORK, 'tsconfig.json'),
    JSON.stringify(
      {
        extends: '../../tsconfig.json',
        compilerOptions: BUILT
          ? {
              noEmit: false,
              declaration: false,
              incremental: false,
              rootDir: '.',
              outDir: EMIT_DIR,
            }
          : { noEmit: true, incremental: false },
        files: snippets.map((snippet) => snippet.file),
        include: [],
      },
      null,
      2,
    ),
  );
});

/**
 * Where tsc writes the blocks' JavaScript, inside WORK: the packages resolve from there as from
 * the blocks, and a `vitest` block's imports of its page's other blocks still find the TypeScript.
 */
const EMIT_DIR = '.emitted';

/** The JavaScript tsc emits for a block: `.ts` as `.js`, `.mts` as `.mjs`, under EMIT_DIR. */
function emittedJavaScript(file: string): string {
  return join(EMIT_DIR, file.replace(/\.(m?)ts$/, '.$1js'));
}

let typeCheckRun: Promise<{ problems: string[]; failure: string | undefined }> | undefined;

/**
 * One tsc run over every block (started by the first page that needs it, shared by the rest):
 * the errors in the blocks, at their line in the page (`page:line: error …`); errors inside the
 * packages' own sources are their typecheck's business. `failure` is set when tsc failed
 * without any diagnostic. Under `pnpm test` the same run emits the blocks' JavaScript.
 */
function typeCheck(): Promise<{ problems: string[]; failure: string | undefined }> {
  typeCheckRun ??= (async () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await exec(process.execPath, [tsc, '-p', join(WORK, 'tsconfig.json')], {
      timeout: 180_000,
    });
    const byFile = new Map(snippets.map((snippet) => [snippet.file, snippet]));
    const problems: string[] = [];
    for (const line of result.stdout.split('\n')) {
      const match = /\.doc-snippets[/\\]([^(]+\.m?ts)\((\d+),(\d+)\): (error .*)$/.exec(line);
      const snippet = match ? byFile.get((match[1] as string).replaceAll('\\', '/')) : undefined;
      if (!match || !snippet) continue;
      problems.push(`${snippet.page}:${snippet.line + Number(match[2]) - 1}: ${match[4]}`);
    }
    const failure =
      result.code !== 0 && problems.length === 0 && !result.stdout.includes('error TS')
        ? `tsc failed without diagnostics: ${result.stderr}`
        : undefined;
    return { problems, failure };
  })();
  return typeCheckRun;
}

describe('docs', () => {
  it('has code blocks to check', () => {
    expect(snippets.length).toBeGreaterThan(0);
  });

  it('links only to files that exist (the generated API reference aside)', () => {
    const broken: string[] = [];
    for (const path of markdownFiles(DOCS)) {
      const markdown = readFileSync(path, 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const match of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = (match[1] as string).split('#')[0] as string;
        if (target === '' || /^[a-z]+:/.test(target)) continue;
        const resolved = join(dirname(path), target);
        if (relative(DOCS, resolved).startsWith('api')) continue;
        if (!existsSync(resolved)) broken.push(`${relative(ROOT, path)}: ${match[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  for (const page of pages) {
    it(`type-checks ${page}`, async () => {
      const { problems, failure } = await typeCheck();
      expect(problems.filter((problem) => problem.startsWith(`${page}:`))).toEqual([]);
      if (failure) throw new Error(failure);
    }, 200_000);
  }

  for (const snippet of snippets.filter((entry) => entry.run)) {
    it(
      `runs ${snippet.page}:${snippet.line}`,
      async () => {
        const result = snippet.vitest
          ? await exec(
              process.execPath,
              [
                join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
                'run',
                '--config',
                join(WORK, 'vitest.config.mjs'),
                join(WORK, snippet.file),
              ],
              { timeout: RUN_TIMEOUT_MS },
            )
          : BUILT
            ? await typeCheck().then(() =>
                exec(process.execPath, [join(WORK, emittedJavaScript(snippet.file))], {
                  timeout: RUN_TIMEOUT_MS,
                }),
              )
            : await exec(process.execPath, [...TSX_ARGS, join(WORK, snippet.file)], {
                timeout: RUN_TIMEOUT_MS,
              });
        if (result.code !== 0) {
          throw new Error(
            `${snippet.page}:${snippet.line} exited with ${result.code}\n${result.stderr}${result.stdout}`,
          );
        }
        if (snippet.output !== undefined) {
          expect(result.stdout.trimEnd()).toBe(snippet.output.trimEnd());
        }
      },
      RUN_TIMEOUT_MS + 10_000,
    );
  }
});
