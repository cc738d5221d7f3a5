/**
 * The program of the worker thread that runs one `bash` call. It is evaluated as CommonJS
 * (`new Worker(source, { eval: true })`), so it works the same from the TypeScript sources under
 * test and from the built package. The worker loads just-bash, gives it a file system whose every
 * operation is a message to the parent thread (which performs it on the session workspace), runs
 * the script and posts the result. Nothing else of the host is handed to just-bash: no network,
 * no python, no JavaScript, no custom commands.
 *
 * Why a worker: just-bash interprets synchronously between file operations, so a script such as
 * `while true; do :; done` would hold the event loop until a limit stops it. In a worker it holds
 * only the worker; the parent keeps serving other sessions and stops the worker (terminate) when
 * the wall-time limit or the turn's signal fires.
 */
export const SHELL_WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { Bash } = require(workerData.justBashPath);

let nextId = 0;
const pending = new Map();
parentPort.on('message', (message) => {
  const waiting = pending.get(message.id);
  if (!waiting) return;
  pending.delete(message.id);
  if (message.ok) waiting.resolve(message.value);
  else waiting.reject(Object.assign(new Error(message.message), { code: message.errno }));
});
function request(op, args) {
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject });
    parentPort.postMessage({ type: 'fs', id, op, args });
  });
}

const BYTE_ENCODINGS = new Set(['binary', 'latin1', 'base64', 'hex', 'ascii']);
function encodingOf(options) {
  if (typeof options === 'string') return options;
  if (options && typeof options.encoding === 'string') return options.encoding;
  return 'utf8';
}
function payloadOf(content, options) {
  if (typeof content !== 'string') return { bytes: new Uint8Array(content) };
  const encoding = encodingOf(options);
  if (encoding === 'utf8' || encoding === 'utf-8') return { text: content };
  if (BYTE_ENCODINGS.has(encoding)) return { bytes: new Uint8Array(Buffer.from(content, encoding)) };
  return { text: content };
}
function normalize(path) {
  const out = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return '/' + out.join('/');
}

class WorkspaceRelayFs {
  async readFileBuffer(path) { return new Uint8Array(await request('readFileBuffer', [path])); }
  async readFileBytes(path) { return Buffer.from(await this.readFileBuffer(path)).toString('latin1'); }
  async readFile(path, options) {
    const bytes = Buffer.from(await this.readFileBuffer(path));
    const encoding = encodingOf(options);
    return bytes.toString(encoding === 'utf-8' ? 'utf8' : encoding);
  }
  writeFile(path, content, options) { return request('writeFile', [path, payloadOf(content, options)]); }
  appendFile(path, content, options) { return request('appendFile', [path, payloadOf(content, options)]); }
  exists(path) { return request('exists', [path]); }
  async stat(path) { return withDate(await request('stat', [path])); }
  async lstat(path) { return withDate(await request('stat', [path])); }
  mkdir(path, options) { return request('mkdir', [path, { recursive: options?.recursive === true }]); }
  readdir(path) { return request('readdir', [path]); }
  readdirWithFileTypes(path) { return request('readdirWithFileTypes', [path]); }
  rm(path, options) { return request('rm', [path, { recursive: options?.recursive === true, force: options?.force === true }]); }
  cp(src, dest, options) { return request('cp', [src, dest, { recursive: options?.recursive === true }]); }
  mv(src, dest) { return request('mv', [src, dest]); }
  chmod(path) { return request('touchExisting', [path]); }
  utimes(path) { return request('touchExisting', [path]); }
  symlink(_target, linkPath) { return request('symlink', [linkPath]); }
  link(_existing, newPath) { return request('symlink', [newPath]); }
  readlink(path) { return request('readlink', [path]); }
  realpath(path) { return request('realpath', [path]); }
  resolvePath(base, path) { return normalize(path.startsWith('/') ? path : base + '/' + path); }
  getAllPaths() { return []; }
}
function withDate(stat) { return { ...stat, mtime: new Date(stat.mtime) }; }

(async () => {
  const bash = new Bash({
    fs: new WorkspaceRelayFs(),
    cwd: workerData.cwd,
    env: workerData.env,
    executionLimits: workerData.limits,
  });
  const result = await bash.exec(workerData.script);
  parentPort.postMessage({
    type: 'result',
    stdout: result.stdout,
    stderr: result.stderr,
    exitCode: result.exitCode,
  });
})().catch((error) => {
  parentPort.postMessage({ type: 'failure', message: String(error && error.message ? error.message : error) });
});
`;
