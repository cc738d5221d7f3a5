import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EverrunsError } from '@everruns-ts/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { makeSandbox, type Sandbox, SECRET } from './test-support.js';

/**
 * A separate process that keeps swapping, as fast as it can until `stop` exists or the test
 * process that started it is gone (so a killed test run leaves no swapper behind):
 * - `d` between a real directory (holding `f`, `victim`, `victim2`) and a link to `outside`;
 * - `g` between a regular file and a link to `outside/secret.txt`;
 * - `k` between a regular file and a hard link to `outside/secret.txt`.
 * It prints how many swaps it made.
 */
const ATTACKER = `
const fs = require('node:fs');
const path = require('node:path');
const [root, outside, stop] = process.argv.slice(1);
const parent = process.ppid;
const parentAlive = () => { if (process.ppid !== parent) return false; try { process.kill(parent, 0); return true; } catch { return false; } };
const D = path.join(root, 'd'), DREAL = path.join(root, 'd.real');
const G = path.join(root, 'g'), GREAL = path.join(root, 'g.real');
const K = path.join(root, 'k'), KREAL = path.join(root, 'k.real');
const kind = (p) => { try { const s = fs.lstatSync(p); return s.isSymbolicLink() ? 'link' : s.isDirectory() ? 'dir' : 'file'; } catch { return 'none'; } };
const quietly = (action) => { try { action(); } catch {} };
let swaps = 0;
for (let i = 0; ; i++) {
  if (i % 64 === 0 && (fs.existsSync(stop) || !parentAlive())) break;
  // d: directory -> link to outside
  if (kind(D) === 'dir') { if (kind(DREAL) === 'none') quietly(() => fs.renameSync(D, DREAL)); else quietly(() => fs.rmSync(D, { recursive: true, force: true })); }
  quietly(() => fs.symlinkSync(outside, D));
  // g: file -> link to outside/secret.txt; k: file -> hard link to it
  if (kind(G) === 'file') { if (kind(GREAL) === 'none') quietly(() => fs.renameSync(G, GREAL)); else quietly(() => fs.unlinkSync(G)); }
  quietly(() => fs.symlinkSync(path.join(outside, 'secret.txt'), G));
  if (kind(K) === 'file') { if (kind(KREAL) === 'none') quietly(() => fs.renameSync(K, KREAL)); else quietly(() => fs.unlinkSync(K)); }
  quietly(() => fs.linkSync(path.join(outside, 'secret.txt'), K));
  // and back
  if (kind(D) === 'link') quietly(() => fs.unlinkSync(D));
  if (kind(D) === 'dir') quietly(() => fs.rmSync(D, { recursive: true, force: true }));
  quietly(() => fs.renameSync(DREAL, D));
  if (kind(G) === 'link') quietly(() => fs.unlinkSync(G));
  quietly(() => fs.renameSync(GREAL, G));
  quietly(() => fs.unlinkSync(K));
  quietly(() => fs.renameSync(KREAL, K));
  if (kind(K) === 'none') quietly(() => fs.writeFileSync(K, 'inside'));
  swaps++;
}
process.stdout.write(String(swaps));
`;

describe('RealDiskFileStore under a concurrent swapping attacker (descriptor resolution)', () => {
  let sandbox: Sandbox;
  beforeEach(() => {
    sandbox = makeSandbox();
  });
  afterEach(() => sandbox.cleanup());

  it('never reads, writes, creates, moves or deletes outside while parents and files are swapped for links', async () => {
    const { root, outside } = sandbox;
    mkdirSync(join(root, 'd'));
    for (const name of ['f', 'victim', 'victim2']) {
      writeFileSync(join(root, 'd', name), 'inside');
      writeFileSync(join(outside, name), SECRET);
    }
    writeFileSync(join(outside, 'only-outside.txt'), SECRET);
    writeFileSync(join(root, 'g'), 'inside');
    writeFileSync(join(root, 'k'), 'inside');
    const baseline = sandbox.outsideSnapshot();
    const files = new RealDiskFileStore({ root, resolution: 'descriptor' });
    expect(files.resolution).toBe('descriptor');

    const stop = join(tmpdir(), `everruns-race-stop-${process.pid}-${Date.now()}`);
    const attacker = spawn(process.execPath, ['-e', ATTACKER, root, outside, stop], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let swaps = '';
    attacker.stdout.on('data', (chunk) => {
      swaps += chunk;
    });
    const exited = new Promise<number | null>((resolve) => attacker.on('exit', resolve));

    const leaks: string[] = [];
    const unexpected: unknown[] = [];
    const outcomes = { ok: 0, refused: 0 };
    const attempt = async (label: string, operation: () => Promise<unknown>) => {
      try {
        const result = await operation();
        outcomes.ok++;
        if (JSON.stringify(result ?? null).includes(SECRET))
          leaks.push(`${label} ${JSON.stringify(result)}`);
        if (JSON.stringify(result ?? null).includes('only-outside')) leaks.push(label);
      } catch (error) {
        outcomes.refused++;
        if (!EverrunsError.isInstance(error)) unexpected.push(error);
      }
    };

    try {
      for (let round = 0; round < 300; round++) {
        await Promise.all([
          attempt('read /d/f', () => files.readFile('/d/f')),
          attempt('read /g', () => files.readFile('/g')),
          attempt('read /k', () => files.readFile('/k')),
          attempt('list /d', () => files.listDirectory('/d')),
          attempt('stat /d/only-outside.txt', () => files.statFile('/d/only-outside.txt')),
          attempt('grep', () => files.grepFiles('SECRET')),
          attempt('write /d/w.txt', () => files.writeFile('/d/w.txt', 'w')),
          attempt('write /g', () => files.writeFile('/g', 'inside')),
          attempt('append /g', () => files.appendFile('/g', '')),
          attempt('append /k', () => files.appendFile('/k', '')),
          attempt('edit /d/f', () => files.editFile('/d/f', 'inside', 'inside')),
          attempt('cas /d/f', () => files.writeFileIfContentMatches('/d/f', 'inside', 'inside')),
          attempt('mkdir /d/nd', () => files.createDirectory('/d/nd')),
          attempt('delete /d/victim', () => files.deleteFile('/d/victim')),
          attempt('move /d/victim2', () => files.moveFile('/d/victim2', '/moved-victim')),
          attempt('read /d/only-outside.txt', () => files.readFile('/d/only-outside.txt')),
        ]);
      }
    } finally {
      writeFileSync(stop, '');
      await exited;
      rmSync(stop, { force: true });
    }

    expect(Number(swaps)).toBeGreaterThan(0);
    expect(unexpected).toEqual([]);
    expect(sandbox.outsideSnapshot()).toEqual(baseline);
    expect(leaks).toEqual([]);
    expect(outcomes.ok + outcomes.refused).toBe(300 * 16);
    expect(sandbox.outsideSnapshot()).toEqual(baseline);
    // About 4 s on an idle 2-core machine; far longer when the machine is busy.
  }, 120_000);
});
