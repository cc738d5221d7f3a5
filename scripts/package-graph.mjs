// The package graph check: no cycle among workspace packages (every dependency field counted)
// and no import of a package that the importing package does not declare. The checks are pure
// functions over plain data; `readWorkspace` gathers that data from a folder on disk, and
// scripts/check-package-graph.mjs is the command line around both.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, sep } from 'node:path';
import ts from 'typescript';

/** The package.json fields whose entries make one package depend on another. */
export const DEPENDENCY_FIELDS = /** @type {const} */ ([
  'dependencies',
  'devDependencies',
  'peerDependencies',
  'optionalDependencies',
]);

/** Extensions of the files whose imports are checked. */
export const SOURCE_EXTENSIONS = ['.ts', '.tsx', '.mts', '.js', '.mjs'];

/**
 * @typedef {object} WorkspacePackage
 * @property {string} name The `name` of its package.json.
 * @property {string} directory Its folder, relative to the workspace root (`packages/core`).
 * @property {Record<string, any>} manifest Its parsed package.json.
 * @property {SourceFile[]} [sources] Its source files, for {@link findUndeclaredImports}.
 */

/**
 * @typedef {object} SourceFile
 * @property {string} path Relative to the workspace root.
 * @property {string} text
 */

/**
 * @typedef {object} UndeclaredImport
 * @property {string} packageName The importing package.
 * @property {string} file The importing file, relative to the workspace root.
 * @property {number} line 1-based line of the specifier.
 * @property {string} specifier As written (`@everruns-ts/core/host`).
 * @property {string} importedPackage The package the specifier names (`@everruns-ts/core`).
 */

/**
 * The `packages:` globs of a pnpm-workspace.yaml (only that list is read; `!` exclusions are
 * kept with their `!`).
 * @param {string} yaml
 * @returns {string[]}
 */
export function workspacePatterns(yaml) {
  const patterns = [];
  let inPackages = false;
  for (const raw of yaml.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '');
    if (/^\S/.test(line)) {
      inPackages = /^packages\s*:\s*$/.test(line);
      continue;
    }
    const item = inPackages ? /^\s+-\s*(['"]?)(.+?)\1\s*$/.exec(line) : null;
    if (item) patterns.push(/** @type {string} */ (item[2]));
  }
  return patterns;
}

/**
 * The folders (relative to `root`) that hold a package.json and match the workspace globs.
 * A segment may be a literal or contain `*` (any characters but `/`); `**` is refused.
 * @param {string} root
 * @param {string[]} patterns
 * @returns {string[]}
 */
export function expandWorkspacePatterns(root, patterns) {
  const included = new Set();
  const excluded = new Set();
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const body = (negated ? pattern.slice(1) : pattern).replace(/^\.\//, '').replace(/\/$/, '');
    if (body.includes('**')) throw new Error(`workspace glob "${pattern}": ** is not supported`);
    let folders = [''];
    for (const segment of body.split('/')) {
      const next = [];
      for (const folder of folders) {
        const absolute = join(root, folder);
        if (!segment.includes('*')) {
          if (existsSync(join(absolute, segment))) next.push(join(folder, segment));
          continue;
        }
        const matcher = new RegExp(
          `^${segment.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}$`,
        );
        if (!existsSync(absolute)) continue;
        for (const entry of readdirSync(absolute, { withFileTypes: true })) {
          if (entry.isDirectory() && !entry.name.startsWith('.') && matcher.test(entry.name)) {
            next.push(join(folder, entry.name));
          }
        }
      }
      folders = next;
    }
    for (const folder of folders) {
      if (existsSync(join(root, folder, 'package.json'))) {
        (negated ? excluded : included).add(folder.split(sep).join('/'));
      }
    }
  }
  return [...included].filter((folder) => !excluded.has(folder)).sort();
}

/**
 * The source files of one package folder: every file with a {@link SOURCE_EXTENSIONS} extension,
 * tests included, leaving out node_modules, dist, hidden folders and nested packages (folders
 * with their own package.json).
 * @param {string} root
 * @param {string} directory Relative to `root`.
 * @returns {SourceFile[]}
 */
export function readSources(root, directory) {
  /** @type {SourceFile[]} */
  const files = [];
  const walk = (/** @type {string} */ folder) => {
    for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (entry.name.startsWith('.') || entry.name === 'node_modules' || entry.name === 'dist') {
          continue;
        }
        if (existsSync(join(root, path, 'package.json'))) continue;
        walk(path);
      } else if (
        SOURCE_EXTENSIONS.some((extension) => entry.name.endsWith(extension)) &&
        !entry.name.endsWith('.d.ts')
      ) {
        files.push({
          path: path.split(sep).join('/'),
          text: readFileSync(join(root, path), 'utf8'),
        });
      }
    }
  };
  walk(directory);
  return files.sort((left, right) => (left.path < right.path ? -1 : 1));
}

/**
 * Every package of the workspace at `root` (per its pnpm-workspace.yaml), with its sources.
 * @param {string} root
 * @returns {WorkspacePackage[]}
 */
export function readWorkspace(root) {
  const patterns = workspacePatterns(readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8'));
  return expandWorkspacePatterns(root, patterns).map((directory) => {
    const manifest = JSON.parse(readFileSync(join(root, directory, 'package.json'), 'utf8'));
    if (typeof manifest.name !== 'string') {
      throw new Error(`${directory}/package.json has no name`);
    }
    return { name: manifest.name, directory, manifest, sources: readSources(root, directory) };
  });
}

/**
 * The names `manifest` declares in any of the {@link DEPENDENCY_FIELDS}, each with the fields
 * that declare it.
 * @param {Record<string, any>} manifest
 * @returns {Map<string, string[]>}
 */
export function declaredDependencies(manifest) {
  const declared = new Map();
  for (const field of DEPENDENCY_FIELDS) {
    for (const name of Object.keys(manifest[field] ?? {})) {
      declared.set(name, [...(declared.get(name) ?? []), field]);
    }
  }
  return declared;
}

/**
 * The dependency graph among workspace packages: for each package name, the workspace packages
 * it declares (in any dependency field), sorted.
 * @param {Pick<WorkspacePackage, 'name' | 'manifest'>[]} packages
 * @returns {Map<string, string[]>}
 */
export function dependencyGraph(packages) {
  const names = new Set(packages.map((entry) => entry.name));
  const graph = new Map();
  for (const entry of packages) {
    const targets = [...declaredDependencies(entry.manifest).keys()].filter((name) =>
      names.has(name),
    );
    graph.set(entry.name, targets.sort());
  }
  return graph;
}

/**
 * The strongly connected components of `graph` (Tarjan), each sorted, in a stable order.
 * @param {Map<string, string[]>} graph
 * @returns {string[][]}
 */
function stronglyConnectedComponents(graph) {
  let counter = 0;
  const index = new Map();
  const lowLink = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  const visit = (/** @type {string} */ node) => {
    index.set(node, counter);
    lowLink.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        lowLink.set(node, Math.min(lowLink.get(node), lowLink.get(next)));
      } else if (onStack.has(next)) {
        lowLink.set(node, Math.min(lowLink.get(node), index.get(next)));
      }
    }
    if (lowLink.get(node) === index.get(node)) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      components.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return components.sort((left, right) => (left[0] < right[0] ? -1 : 1));
}

/**
 * The shortest path from `start` back to `start` inside `members`, as names with `start` at both
 * ends; undefined when there is none.
 * @param {Map<string, string[]>} graph
 * @param {Set<string>} members
 * @param {string} start
 */
function shortestCycleThrough(graph, members, start) {
  const previous = new Map();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const node = /** @type {string} */ (queue[head]);
    for (const next of graph.get(node) ?? []) {
      if (!members.has(next)) continue;
      if (next === start) {
        const path = [start];
        for (let step = node; step !== start; step = previous.get(step)) path.unshift(step);
        path.unshift(start);
        return path;
      }
      if (!previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/**
 * The dependency cycles among `packages`, counting every field of {@link DEPENDENCY_FIELDS}.
 * Each cycle is a path of package names that starts and ends with the same name
 * (`['a', 'b', 'c', 'a']`). Every package on a cycle appears in at least one returned cycle: for
 * each group of packages that reach one another, the shortest cycle through each member is
 * reported once. An empty array means the graph flows one way.
 * @param {Pick<WorkspacePackage, 'name' | 'manifest'>[]} packages
 * @returns {string[][]}
 */
export function findCycles(packages) {
  const graph = dependencyGraph(packages);
  const cycles = [];
  const seen = new Set();
  for (const component of stronglyConnectedComponents(graph)) {
    const members = new Set(component);
    for (const start of component) {
      const cycle = shortestCycleThrough(graph, members, start);
      if (!cycle) continue;
      // One key per cycle whatever member it starts from.
      const ring = cycle.slice(0, -1);
      const first = ring.indexOf([...ring].sort()[0]);
      const key = [...ring.slice(first), ...ring.slice(0, first)].join(' -> ');
      if (seen.has(key)) continue;
      seen.add(key);
      cycles.push(cycle);
    }
  }
  return cycles;
}

/**
 * One cycle as text, each arrow labelled with the fields that declare it:
 * `a -> b (devDependencies) -> a (dependencies)`.
 * @param {string[]} cycle
 * @param {Pick<WorkspacePackage, 'name' | 'manifest'>[]} packages
 */
export function describeCycle(cycle, packages) {
  const manifests = new Map(packages.map((entry) => [entry.name, entry.manifest]));
  let text = /** @type {string} */ (cycle[0]);
  for (let position = 1; position < cycle.length; position++) {
    const from = /** @type {string} */ (cycle[position - 1]);
    const to = /** @type {string} */ (cycle[position]);
    const fields = declaredDependencies(manifests.get(from) ?? {}).get(to) ?? [];
    text += ` -> ${to} (${fields.join(', ')})`;
  }
  return text;
}

/**
 * The package a module specifier names: `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`.
 * Undefined for relative and absolute paths, URLs, `node:` and other Node built-in modules, and
 * subpath imports (`#internal`).
 * @param {string} specifier
 * @returns {string | undefined}
 */
export function packageNameOf(specifier) {
  if (
    specifier.startsWith('.') ||
    specifier.startsWith('/') ||
    specifier.startsWith('#') ||
    /^[a-z][a-z0-9+.-]*:/i.test(specifier)
  ) {
    return undefined;
  }
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  if (!name || builtinModules.includes(name)) return undefined;
  return name;
}

/**
 * The module specifiers of one source file, with their 1-based lines: static imports (type-only
 * included), `export … from`, side-effect imports, `import('x')` and `require('x')` with a
 * string literal. Comments and strings are skipped (TypeScript's pre-processor reads the file).
 * @param {string} text
 * @returns {{ specifier: string, line: number }[]}
 */
export function importSpecifiers(text) {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  const lineStarts = ts.computeLineStarts(text);
  return importedFiles.map((reference) => ({
    specifier: reference.fileName,
    line: ts.computeLineAndCharacterOfPosition(lineStarts, reference.pos).line + 1,
  }));
}

/**
 * Whether `path` is test code rather than code a package ships: a `*.test.*` file, a
 * `test-support` file or folder, or a vitest configuration.
 * @param {string} path
 */
export function isTestFile(path) {
  return (
    /\.test\.[cm]?[jt]sx?$/.test(path) ||
    /(^|\/)test-support(\/|\.[cm]?[jt]sx?$)/.test(path) ||
    /(^|\/)vitest\.config\.[cm]?[jt]s$/.test(path)
  );
}

/**
 * The imports in `packages`' sources of a package their package.json does not declare in any
 * of the {@link DEPENDENCY_FIELDS}. A package may import itself by name (Node resolves it
 * through its own `exports`). `options.testTooling` names packages that test files (see
 * {@link isTestFile}) may import without declaring them: the monorepo's shared test tooling,
 * declared once by the root package.json (vitest). Other files get no such allowance.
 * @param {WorkspacePackage[]} packages
 * @param {{ testTooling?: Iterable<string> }} [options]
 * @returns {UndeclaredImport[]}
 */
export function findUndeclaredImports(packages, options = {}) {
  const testTooling = new Set(options.testTooling ?? []);
  /** @type {UndeclaredImport[]} */
  const problems = [];
  for (const entry of packages) {
    const declared = declaredDependencies(entry.manifest);
    for (const source of entry.sources ?? []) {
      const testFile = isTestFile(source.path);
      for (const { specifier, line } of importSpecifiers(source.text)) {
        const importedPackage = packageNameOf(specifier);
        if (
          importedPackage === undefined ||
          importedPackage === entry.name ||
          declared.has(importedPackage) ||
          (testFile && testTooling.has(importedPackage))
        ) {
          continue;
        }
        problems.push({
          packageName: entry.name,
          file: source.path,
          line,
          specifier,
          importedPackage,
        });
      }
    }
  }
  return problems;
}

/**
 * Both checks over the workspace at `root`, as lines of text (empty when the graph is clean).
 * Test files may use the root package.json's devDependencies (the shared test tooling).
 * @param {string} root
 * @returns {string[]}
 */
export function checkWorkspace(root) {
  const packages = readWorkspace(root);
  const rootManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const options = { testTooling: Object.keys(rootManifest.devDependencies ?? {}) };
  const lines = [];
  for (const cycle of findCycles(packages)) {
    lines.push(`dependency cycle: ${describeCycle(cycle, packages)}`);
  }
  for (const problem of findUndeclaredImports(packages, options)) {
    const directory = packages.find((entry) => entry.name === problem.packageName)?.directory;
    lines.push(
      `undeclared import: ${problem.file}:${problem.line} imports "${problem.specifier}", but ${directory}/package.json does not declare ${problem.importedPackage}`,
    );
  }
  return lines;
}
