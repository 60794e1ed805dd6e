// Between the plain types (instance-types.ts) and the generated proto messages, both directions: the
// service answers in proto, the client hands the control plane plain objects.
import {
  type Instance,
  type InstanceSpec,
  type ManagerInfoReply,
  InstanceState as ProtoState,
  InstanceType as ProtoType,
} from '../proto/gen/instance.js';
import type { InstanceCreateSpec, InstanceInfo, InstanceState, InstanceType, ManagerInfo } from './instance-types.js';

const typeToProto: Record<InstanceType, ProtoType> = { engine: ProtoType.ENGINE, replica: ProtoType.REPLICA };
const typeFromProto: Partial<Record<ProtoType, InstanceType>> = {
  [ProtoType.ENGINE]: 'engine',
  [ProtoType.REPLICA]: 'replica',
};
const stateToProto: Record<InstanceState, ProtoState> = {
  starting: ProtoState.STARTING,
  running: ProtoState.RUNNING,
  stopping: ProtoState.STOPPING,
  stopped: ProtoState.STOPPED,
  error: ProtoState.ERROR,
};
const stateFromProto: Partial<Record<ProtoState, InstanceState>> = {
  [ProtoState.STARTING]: 'starting',
  [ProtoState.RUNNING]: 'running',
  [ProtoState.STOPPING]: 'stopping',
  [ProtoState.STOPPED]: 'stopped',
  [ProtoState.ERROR]: 'error',
};

export function specToProto(spec: InstanceCreateSpec): InstanceSpec {
  return {
    name: spec.name,
    // An unknown type goes out unspecified, and the instance manager refuses it with a message.
    type: typeToProto[spec.type] ?? ProtoType.INSTANCE_TYPE_UNSPECIFIED,
    volumeName: spec.volumeName,
    volumeSize: spec.volumeSize,
    dataDir: spec.dataDir ?? '',
    replicaAddresses: spec.replicaAddresses ?? [],
    ioTimeoutSeconds: spec.ioTimeoutSeconds ?? 0,
    unmapMarkSnapChainRemoved: spec.unmapMarkSnapChainRemoved ?? false,
  };
}

/**
 * A request as the supervisor checks it. An unknown or missing type is kept as its proto number so that
 * specProblems() can name it; every other check happens there too.
 */
export function specFromProto(spec: InstanceSpec): InstanceCreateSpec {
  return {
    name: spec.name,
    type: typeFromProto[spec.type] ?? (`type ${spec.type}` as InstanceType),
    volumeName: spec.volumeName,
    volumeSize: spec.volumeSize,
    dataDir: spec.dataDir || undefined,
    replicaAddresses: spec.replicaAddresses,
    ioTimeoutSeconds: spec.ioTimeoutSeconds,
    unmapMarkSnapChainRemoved: spec.unmapMarkSnapChainRemoved,
  };
}

export function infoToProto(info: InstanceInfo): Instance {
  return { ...info, type: typeToProto[info.type], state: stateToProto[info.state] };
}

export function infoFromProto(i: Instance): InstanceInfo {
  const type = typeFromProto[i.type];
  const state = stateFromProto[i.state];
  if (!type || !state) throw new Error(`instance ${i.name}: unknown type ${i.type} or state ${i.state}`);
  return {
    name: i.name,
    type,
    state,
    volumeName: i.volumeName,
    pid: i.pid,
    port: i.port,
    endpoint: i.endpoint,
    errorMsg: i.errorMsg,
    startedAt: i.startedAt,
  };
}

export function managerInfoFromProto(m: ManagerInfoReply): ManagerInfo {
  return {
    node: m.node,
    pid: m.pid,
    portRange: { start: m.portRangeStart, end: m.portRangeEnd },
    dataDir: m.dataDir,
    listen: m.listen,
  };
}
