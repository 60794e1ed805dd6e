#!/usr/bin/env node
// pretest: the integration tests drive real NBD clients and filesystem tools. Make sure they exist;
// as root install what is missing from Debian, otherwise fail naming the exact apt-get line.
// The S3 peer (moto_server) is not in Debian: it comes from pip, into the python3 on PATH (pyenv's).
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';

/** command (absolute path where PATH lookups are unreliable) → Debian package providing it. */
const tools = [
  ['/usr/bin/fio', 'fio'],
  ['/usr/bin/nbdinfo', 'libnbd-bin'],
  ['/usr/bin/nbdcopy', 'libnbd-bin'],
  ['/usr/bin/nbdfuse', 'nbdfuse'],
  ['/usr/bin/nbdkit', 'nbdkit'],
  ['/usr/bin/qemu-img', 'qemu-utils'],
  ['/usr/bin/nbdsh', 'python3-libnbd'],
  ['/usr/sbin/mkfs.ext4', 'e2fsprogs'],
  ['/usr/sbin/fsck.ext4', 'e2fsprogs'],
  ['/usr/sbin/losetup', 'mount'],
  ['/usr/bin/g++', 'g++'],
  ['/usr/bin/make', 'make'],
  ['/usr/bin/lz4', 'lz4'],
  ['/bin/gzip', 'gzip'],
  ['/usr/bin/openssl', 'openssl'],
];

/** pip's version pin for moto_server, the S3 server of the backup tests (reference/test-peers.md §3). */
const MOTO_PIP_SPEC = 'moto[server]==5.2.1';

function missingPackages() {
  const missing = new Set();
  for (const [path, pkg] of tools) {
    const alt = path.replace('/usr/sbin/', '/sbin/').replace('/usr/bin/', '/bin/');
    if (!existsSync(path) && !existsSync(alt)) missing.add(pkg);
  }
  // nbdsh is `python3 -m nbd` on Debian's own python3 (pyenv's python3 has no nbd module).
  if (spawnSync('/usr/bin/python3', ['-c', 'import nbd'], { stdio: 'ignore' }).status !== 0)
    missing.add('python3-libnbd');
  return [...missing];
}

let missing = missingPackages();
if (missing.length > 0) {
  const line = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`missing system tools for the tests; run as root:\n  apt-get update && ${line}`);
    process.exit(1);
  }
  console.error(`installing missing test tools: ${line}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: 'inherit', env });
  missing = missingPackages();
  if (missing.length > 0) {
    console.error(`still missing after install: ${missing.join(' ')}`);
    process.exit(1);
  }
}
/** A command on PATH (pyenv's shims live there, not in /usr/bin), or undefined. */
function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return join(dir, cmd);
    } catch {
      // not here
    }
  }
  return undefined;
}

if (onPath('moto_server') === undefined) {
  const line = `python3 -m pip install "${MOTO_PIP_SPEC}"`;
  const python3 = onPath('python3');
  if (process.getuid?.() !== 0 || python3 === undefined) {
    console.error(`moto_server (S3 server for the backup tests) is missing; run as root:\n  ${line}`);
    process.exit(1);
  }
  console.error(`installing moto_server: ${python3} -m pip install "${MOTO_PIP_SPEC}"`);
  try {
    execFileSync(python3, ['-m', 'pip', 'install', '-q', MOTO_PIP_SPEC], { stdio: 'inherit' });
  } catch {
    console.error(`pip failed (${python3}); install moto_server by hand with the python3 that has pip:\n  ${line}`);
    process.exit(1);
  }
  // pyenv only sees a new console script after a rehash (its shim directory is what PATH holds).
  if (onPath('moto_server') === undefined && onPath('pyenv') !== undefined) {
    execFileSync('pyenv', ['rehash'], { stdio: 'inherit' });
  }
  if (onPath('moto_server') === undefined) {
    console.error(`moto_server is still not on PATH after \`${line}\` (${python3}); add its scripts directory to PATH`);
    process.exit(1);
  }
}
if (!existsSync('/dev/fuse')) {
  console.error('/dev/fuse is missing: the filesystem tests need FUSE (nbdfuse)');
  process.exit(1);
}
