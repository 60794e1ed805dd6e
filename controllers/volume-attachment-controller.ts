// Volume-attachment controller: turns tickets (who wants the volume where) into volume.spec.nodeID —
// the only writer of that field. The current node keeps the volume while any ticket wants it there;
// otherwise the highest-priority ticket wins (ties: smallest ticket id), and a move to another node
// goes through a full detach first. While a revert is requested only its own ticket counts (the others
// wait), and a volume whose frontend was off is detached and attached again to bring it up.
import { ticketPriority } from '../model/volume-attachment.js';
import type { ControllerContext } from './context.js';
import { Controller } from './runtime/controller.js';
import { REVERT_TICKET_ID } from './snapshot-controller.js';
import { patchSpec, patchStatus } from './write.js';

export function volumeAttachmentController(ctx: ControllerContext): Controller {
  const log = ctx.log.child({ controller: 'volume-attachment' });
  return new Controller({
    name: 'volume-attachment',
    logger: log,
    reconcile: (name) => reconcileVolumeAttachment(ctx, name),
  });
}

/** One sync of the VolumeAttachment `name` (exported for single-pass controller tests). */
export async function reconcileVolumeAttachment(ctx: ControllerContext, name: string): Promise<void> {
  const va = ctx.informers.VolumeAttachment.get(name);
  const vol = ctx.informers.Volume.get(name);
  if (!va || !vol || vol.metadata.deletionTimestamp) return;
  const reverting = !!vol.spec.revertRequested;
  const tickets = Object.values(va.spec.attachmentTickets).filter(
    (t) => ctx.informers.Node.get(t.nodeID) && (!reverting || t.id === REVERT_TICKET_ID),
  );
  let desired = '';
  if (vol.spec.nodeID && tickets.some((t) => t.nodeID === vol.spec.nodeID)) {
    desired = vol.spec.nodeID;
  } else if (tickets.length > 0) {
    const best = [...tickets].sort((a, b) => ticketPriority(b) - ticketPriority(a) || a.id.localeCompare(b.id))[0]!;
    // Move only once fully detached: a volume is never attached in two places.
    desired = vol.spec.nodeID === '' && vol.status.currentNodeID === '' ? best.nodeID : '';
  }
  const disableFrontend = tickets.filter((t) => t.nodeID === desired).every((t) => t.parameters.disableFrontend);
  // Attached with the frontend off (a revert stopped it) and now wanted with it: detach, then attach.
  if (desired && desired === vol.status.currentNodeID && vol.spec.disableFrontend && !disableFrontend) desired = '';
  if (vol.spec.nodeID !== desired || (desired && vol.spec.disableFrontend !== disableFrontend)) {
    await patchSpec(ctx.store, 'Volume', vol, (s) => {
      s.nodeID = desired;
      if (desired) s.disableFrontend = disableFrontend;
    });
  }
  await patchStatus(ctx.store, 'VolumeAttachment', va, (s) => {
    s.attachmentTicketStatuses = Object.fromEntries(
      Object.values(va.spec.attachmentTickets).map((t) => {
        const known = !!ctx.informers.Node.get(t.nodeID);
        const waiting = reverting && t.id !== REVERT_TICKET_ID;
        const satisfied = known && !waiting && vol.status.state === 'attached' && vol.status.currentNodeID === t.nodeID;
        const why = !known
          ? { reason: 'NodeNotFound', message: `node ${t.nodeID} does not exist` }
          : waiting
            ? {
                reason: 'RevertInProgress',
                message: `waiting for the revert to snapshot ${vol.spec.revertRequested?.snapshot} to finish`,
              }
            : undefined;
        return [
          t.id,
          {
            id: t.id,
            satisfied,
            conditions: why ? [{ type: 'Satisfied', status: 'False', ...why }] : [],
          },
        ];
      }),
    );
  });
}
