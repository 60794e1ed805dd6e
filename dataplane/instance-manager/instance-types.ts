// The instance manager's vocabulary as plain TypeScript: what the supervisor keeps, what the state file
// holds and what the client hands the control plane. The proto enums are converted at the edges
// (instance-proto.ts), so nothing else depends on generated code.

export type InstanceType = 'engine' | 'replica';
export type InstanceState = 'starting' | 'running' | 'stopping' | 'stopped' | 'error';

export interface InstanceCreateSpec {
  name: string;
  type: InstanceType;
  volumeName: string;
  /** bytes */
  volumeSize: number;
  /** replica: its directory, an absolute path */
  dataDir?: string;
  /** engine: tcp://HOST:PORT of each replica */
  replicaAddresses?: string[];
  /** engine: 0 or absent = the engine's default */
  ioTimeoutSeconds?: number;
  unmapMarkSnapChainRemoved?: boolean;
}

export interface InstanceInfo {
  name: string;
  type: InstanceType;
  state: InstanceState;
  volumeName: string;
  /** 0 before the process was spawned */
  pid: number;
  /** gRPC port; a replica's data port and an engine's NBD port are port+1 */
  port: number;
  /** engine: nbd://HOST:PORT+1/VOLUME; replica: tcp://HOST:PORT */
  endpoint: string;
  errorMsg: string;
  /** RFC3339 */
  startedAt: string;
}

export interface ManagerInfo {
  node: string;
  pid: number;
  portRange: { start: number; end: number };
  dataDir: string;
  listen: string;
}
