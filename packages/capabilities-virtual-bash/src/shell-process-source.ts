/**
 * The program of the child process that runs one `bash` call. It is given to Node with `-e` (as
 * CommonJS), so it works the same from the TypeScript sources under test and from the built
 * package. It waits for one `start` message on the IPC channel, loads just-bash, gives it a file
 * system whose every operation is a message to the parent (which performs it on the session
 * workspace), runs the script and sends the result. Nothing else of the host is handed to
 * just-bash: no network, no python, no JavaScript, no custom commands.
 *
 * Why a process: just-bash interprets synchronously between file operations, so a script such as
 * `while true; do :; done` would hold the event loop until a limit stopped it, and a script that
 * grows a string (`x="$x$x$x$x"`) exhausts whatever heap it runs in. A worker thread solved the
 * first but not the second: when one allocation overshoots a worker's `resourceLimits`, V8 aborts
 * the whole process, host included. In a child process both hold only the child, which the parent
 * kills at the wall-time limit or when the turn's signal fires, and which dies alone when it runs
 * out of its `--max-old-space-size`. The parent leaving (the IPC channel closing) ends it too.
 */
export const SHELL_PROCESS_SOURCE = `
'use strict';
process.on('disconnect', () => process.exit(0));
function send(message) { if (process.connected) process.send(message); }

let nextId = 0;
const pending = new Map();
process.on('message', (message) => {
  if (message.type === 'start') { start(message); return; }
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
    send({ type: 'fs', id, op, args });
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

function start(data) {
  (async () => {
    const { Bash } = require(data.justBashPath);
    const bash = new Bash({
      fs: new WorkspaceRelayFs(),
      cwd: data.cwd,
      env: data.env,
      executionLimits: data.limits,
    });
    const result = await bash.exec(data.script);
    send({
      type: 'result',
      stdout: result.stdout,
      stderr: result.stderr,
      exitCode: result.exitCode,
    });
  })().catch((error) => {
    send({ type: 'failure', message: String(error && error.message ? error.message : error) });
  });
}
`;
