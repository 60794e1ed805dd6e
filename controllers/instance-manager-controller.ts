// Instance manager controller: keeps one watch stream open to each node's instance manager and mirrors
// what it reports (every engine and replica process, its state and port) into the InstanceManager's
// status. Engine and replica controllers read process state from there, never by polling each process.

import type { InstanceInfo } from '../dataplane/instance-manager/instance-manager-client.js';
import type { InstanceManager } from '../model/instance-manager.js';
import { nowIso } from '../model/meta.js';
import type { ControllerContext } from './context.js';
import { Controller } from './runtime/controller.js';
import { patchStatus } from './write.js';

const RECONNECT_MS = 1000;
const HEARTBEAT_MS = 30_000;

interface Stream {
  address: string;
  stop(): void;
  /** Last list received; undefined while (re)connecting. */
  instances?: InstanceInfo[];
  error?: string;
}

export function instanceManagerController(ctx: ControllerContext): Controller {
  const streams = new Map<string, Stream>();
  const lastFailure = new Map<string, number>();
  const log = ctx.log.child({ controller: 'instance-manager' });
  const controller: Controller = new Controller({
    name: 'instance-manager',
    logger: log,
    reconcile: async (name) => {
      const im = ctx.informers.InstanceManager.get(name);
      let stream = streams.get(name);
      if (!im || im.metadata.deletionTimestamp) {
        stream?.stop();
        streams.delete(name);
        return;
      }
      if (stream && stream.address !== im.spec.address) {
        stream.stop();
        stream = undefined;
      }
      if (!stream) {
        // Reconnect no sooner than RECONNECT_MS after a failure, whatever woke this reconcile up (its
        // own status write does): a down node must not turn into a write loop.
        const wait = (lastFailure.get(name) ?? 0) + RECONNECT_MS - Date.now();
        if (wait > 0) return { requeueAfterMs: wait };
        stream = open(name, im.spec.address);
        streams.set(name, stream);
      }
      await writeStatus(im, stream);
      if (stream.error !== undefined) {
        stream.stop();
        streams.delete(name);
        lastFailure.set(name, Date.now());
        return { requeueAfterMs: RECONNECT_MS };
      }
      return { requeueAfterMs: HEARTBEAT_MS };
    },
  });

  function open(name: string, address: string): Stream {
    const s: Stream = { address, stop: () => {} };
    const client = ctx.clients.instanceManager(address);
    const w = client.watch(
      (instances) => {
        s.instances = instances;
        s.error = undefined;
        controller.enqueue(name);
      },
      (err) => {
        s.instances = undefined;
        s.error = err.message;
        controller.enqueue(name);
      },
    );
    s.stop = () => w.stop();
    return s;
  }

  async function writeStatus(im: InstanceManager, s: Stream): Promise<void> {
    await patchStatus(ctx.store, 'InstanceManager', im, (st) => {
      st.ownerID = ctx.managerID;
      if (s.instances) {
        st.currentState = 'running';
        st.instances = Object.fromEntries(
          s.instances.map((i) => [
            i.name,
            { type: i.type, state: i.state, port: i.port, pid: i.pid, errorMsg: i.errorMsg, startedAt: i.startedAt },
          ]),
        );
        // Coarse on purpose: a write per change of the instance list, not per reconcile.
        if (!st.lastHeartbeatAt || Date.now() - Date.parse(st.lastHeartbeatAt) >= HEARTBEAT_MS)
          st.lastHeartbeatAt = nowIso();
      } else if (s.error !== undefined) {
        st.currentState = 'error';
        // What it ran is unknown now: a node that is down runs nothing we can reach.
        for (const i of Object.values(st.instances)) {
          i.state = 'unknown';
          i.errorMsg = `instance manager unreachable: ${s.error}`;
        }
      } else if (st.currentState === 'unknown') {
        // Connecting for the first time; a reconnect keeps the last known state until it answers.
        st.currentState = 'starting';
      }
    });
  }

  const stopController = controller.stop.bind(controller);
  controller.stop = async () => {
    for (const s of streams.values()) s.stop();
    streams.clear();
    await stopController();
  };
  return controller;
}
