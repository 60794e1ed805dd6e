#!/usr/bin/env node
// pretest: the integration tests drive real NBD clients and filesystem tools. Make sure they exist;
// as root install what is missing from Debian, otherwise fail naming the exact apt-get line.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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
];

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
if (!existsSync('/dev/fuse')) {
  console.error('/dev/fuse is missing: the filesystem tests need FUSE (nbdfuse)');
  process.exit(1);
}
