// Finds the Chromium the inspector's browser test drives (Debian's `chromium` package), and
// installs it when it is missing and this process may (root with apt-get). Otherwise it fails
// with instructions. CHROMIUM_PATH points the check (and the test) at another binary.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function found() {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function run(command, args) {
  console.error(`$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

function fail(reason) {
  console.error(
    `Chromium is not available at ${path} (${reason}).\n` +
      "The inspector's browser test (packages/inspector) drives a real Chromium with playwright-core and never skips.\n" +
      'Install it as root on Debian or Ubuntu:  apt-get update && apt-get install -y chromium\n' +
      'or point CHROMIUM_PATH at a Chromium or Chrome binary, then run the tests again.',
  );
  process.exit(1);
}

if (!found()) {
  if (process.env.CHROMIUM_PATH) fail('CHROMIUM_PATH is set but not executable');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) fail('missing, and installing it needs root');
  console.error("Chromium is missing: installing Debian's chromium package.");
  if (!run('apt-get', ['update']) || !run('apt-get', ['install', '-y', 'chromium'])) {
    fail('apt-get could not install it');
  }
  if (!found()) fail('apt-get finished but the binary is still missing');
}
console.log(`Chromium: ${path}`);
