// Attachment tickets the controllers take for their own work (a revert, a restore): the volume is
// attached with its frontend off on a node that holds one of its replicas and whose instance manager
// is up; the ticket stays where it is while that node still qualifies, and goes when not wanted.
import type { Replica } from '../model/replica.js';
import type { Volume } from '../model/volume.js';
import type { AttachmentTicketType } from '../model/volume-attachment.js';
import type { ControllerContext } from './context.js';
import { isActive } from './volume-replicas.js';
import { patchSpec } from './write.js';

export interface InternalTicket {
  id: string;
  type: AttachmentTicketType;
  /** Only nodes with a replica that has held the volume's data (a revert); else any active replica. */
  needsData: boolean;
}

export async function syncInternalTicket(
  ctx: ControllerContext,
  vol: Volume,
  replicas: Replica[],
  ticket: InternalTicket,
  want: boolean,
): Promise<void> {
  const va = ctx.informers.VolumeAttachment.get(vol.metadata.name);
  if (!va) return;
  const existing = va.spec.attachmentTickets[ticket.id];
  if (!want) {
    if (existing)
      await patchSpec(ctx.store, 'VolumeAttachment', va, (s) => {
        delete s.attachmentTickets[ticket.id];
      });
    return;
  }
  const imUp = (node: string) =>
    ctx.informers.InstanceManager.list().some((im) => im.spec.nodeID === node && im.status.currentState === 'running');
  const holders = replicas.filter((r) => isActive(r) && r.spec.nodeID && (!ticket.needsData || r.spec.healthyAt));
  const candidates = [...new Set(holders.map((r) => r.spec.nodeID))]
    .filter((n) => ctx.informers.Node.get(n) && imUp(n))
    .sort();
  const nodeID =
    existing && (candidates.includes(existing.nodeID) || vol.status.currentNodeID === existing.nodeID)
      ? existing.nodeID
      : candidates[0];
  if (!nodeID || existing?.nodeID === nodeID) return;
  await patchSpec(ctx.store, 'VolumeAttachment', va, (s) => {
    s.attachmentTickets[ticket.id] = {
      id: ticket.id,
      type: ticket.type,
      nodeID,
      parameters: { disableFrontend: true },
      generation: 0,
    };
  });
}
