// What every controller gets: the store, read caches (informers) of every kind, settings, events and
// the clients of the data plane. One per manager process.
import { credentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { InstanceManagerClient } from '../dataplane/instance-manager/instance-manager-client.js';
import { ControllerServiceClient } from '../dataplane/proto/gen/engine.js';
import type { Kind } from '../model/kinds.js';
import type { Store } from '../store/store.js';
import type { EventRecorder } from './events.js';
import type { Informer } from './runtime/informer.js';
import type { Settings } from './settings.js';

export type Informers = { [K in Kind]: Informer<K> };

export interface ControllerContext {
  store: Store;
  informers: Informers;
  settings: Settings;
  events: EventRecorder;
  log: Logger;
  /** This manager's name; written to status.ownerID of what it reconciles. */
  managerID: string;
  clients: DataplaneClients;
}

/** gRPC clients by address, made once and kept: channels are costly and reconnect on their own. */
export class DataplaneClients {
  private readonly ims = new Map<string, InstanceManagerClient>();
  private readonly engines = new Map<string, ControllerServiceClient>();

  instanceManager(address: string): InstanceManagerClient {
    let c = this.ims.get(address);
    if (!c) {
      c = new InstanceManagerClient(address);
      this.ims.set(address, c);
    }
    return c;
  }

  /** `host:port` of the engine's ControllerService. */
  engine(address: string): ControllerServiceClient {
    let c = this.engines.get(address);
    if (!c) {
      c = new ControllerServiceClient(address, credentials.createInsecure());
      this.engines.set(address, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.ims.values()) c.close();
    for (const c of this.engines.values()) c.close();
    this.ims.clear();
    this.engines.clear();
  }
}
