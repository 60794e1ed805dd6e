// Addresses on the command line and in the control API.

export interface HostPort {
  host: string;
  port: number;
}

/** `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseHostPort(text: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new Error(`invalid address "${text}": expected HOST:PORT`);
  return { host: (m[1] ?? m[2])!, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A replica's address as the engine names it: `tcp://HOST:PORT`, PORT being its gRPC port. */
export function parseReplicaAddress(text: string): HostPort {
  const m = /^tcp:\/\/(.+)$/.exec(text.trim());
  if (!m) throw new Error(`invalid replica address "${text}": expected tcp://HOST:PORT`);
  return parseHostPort(m[1]!);
}

export function formatReplicaAddress(hp: HostPort): string {
  return `tcp://${formatHostPort(hp)}`;
}
