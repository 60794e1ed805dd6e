// Checking a create request before anything is reserved or started, and turning it into the command
// line of the real `shorthorn replica` / `shorthorn engine` binary.
import { isAbsolute } from 'node:path';
import { formatHostPort, parseReplicaAddress } from '../util/address.js';
import type { InstanceCreateSpec } from './instance-types.js';

// The name becomes a file name (logs/<name>.log): no slashes, no dot-dot, nothing a shell would mind.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Every problem with the spec, one per entry; empty when it can be started. */
export function specProblems(spec: InstanceCreateSpec): string[] {
  const problems: string[] = [];
  if (!NAME.test(spec.name))
    problems.push(`name "${spec.name}" must be 1-128 of [A-Za-z0-9._-], starting alphanumeric`);
  if (spec.type !== 'engine' && spec.type !== 'replica')
    problems.push(`type must be ENGINE or REPLICA, got ${JSON.stringify(spec.type)}`);
  if (!spec.volumeName) problems.push('volume_name is required');
  if (!(Number.isSafeInteger(spec.volumeSize) && spec.volumeSize > 0))
    problems.push(`volume_size must be a positive number of bytes, got ${spec.volumeSize}`);
  if (spec.type === 'replica') {
    if (!spec.dataDir) problems.push('data_dir is required for a replica');
    else if (!isAbsolute(spec.dataDir)) problems.push(`data_dir must be an absolute path, got "${spec.dataDir}"`);
  }
  if (spec.type === 'engine') {
    const addresses = spec.replicaAddresses ?? [];
    if (addresses.length === 0) problems.push('an engine needs at least one replica address (tcp://HOST:PORT)');
    for (const a of addresses) {
      try {
        parseReplicaAddress(a);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
  }
  return problems;
}

/** The shorthorn sub-command and its flags (what follows `node … bin/shorthorn.js`). */
export function instanceArgs(spec: InstanceCreateSpec, host: string, port: number): string[] {
  const listen = formatHostPort({ host, port });
  if (spec.type === 'replica') {
    return [
      'replica',
      '--dir',
      spec.dataDir!,
      '--size',
      String(spec.volumeSize),
      '--listen',
      listen,
      '--volume',
      spec.volumeName,
    ];
  }
  return [
    'engine',
    '--volume',
    spec.volumeName,
    '--size',
    String(spec.volumeSize),
    ...(spec.replicaAddresses ?? []).flatMap((a) => ['--replica', a]),
    '--listen',
    listen,
    '--frontend',
    'nbd',
    '--nbd-listen',
    formatHostPort({ host, port: port + 1 }),
    ...(spec.ioTimeoutSeconds ? ['--io-timeout', String(spec.ioTimeoutSeconds)] : []),
    ...(spec.unmapMarkSnapChainRemoved ? ['--unmap-mark-snap-chain-removed'] : []),
  ];
}

export function instanceEndpoint(spec: InstanceCreateSpec, host: string, port: number): string {
  return spec.type === 'engine'
    ? `nbd://${formatHostPort({ host, port: port + 1 })}/${encodeURIComponent(spec.volumeName)}`
    : `tcp://${formatHostPort({ host, port })}`;
}
