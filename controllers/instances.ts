// Where an engine or replica process stands, read from its node's InstanceManager status.
import type { InstanceManager } from '../model/instance-manager.js';
import type { ControllerContext } from './context.js';

export interface InstanceLookup {
  im?: InstanceManager;
  /** The instance manager answers (its watch stream is up). */
  imUp: boolean;
  instance?: InstanceManager['status']['instances'][string];
}

export function lookupInstance(ctx: ControllerContext, nodeID: string, name: string): InstanceLookup {
  const im = ctx.informers.InstanceManager.list().find((i) => i.spec.nodeID === nodeID);
  const imUp = im?.status.currentState === 'running';
  return { im, imUp, instance: imUp ? im?.status.instances[name] : undefined };
}

/** Instance managers run processes on loopback in embedded mode; a cluster would report the pod IP. */
export function instanceHost(im: InstanceManager): string {
  const host = im.spec.address.replace(/:\d+$/, '');
  return host === '0.0.0.0' ? '127.0.0.1' : host;
}
