// VolumeAttachment: who wants a volume attached where (tickets), and which tickets are satisfied.
import type { AttachmentTicket, VolumeAttachment as VolumeAttachmentModel } from '../model/volume-attachment.js';
import { builder } from './builder.js';
import { VolumeRef } from './volume.js';

export const VolumeAttachmentRef = builder.objectRef<VolumeAttachmentModel>('VolumeAttachment');

interface TicketView {
  ticket: AttachmentTicket;
  status: VolumeAttachmentModel['status']['attachmentTicketStatuses'][string] | undefined;
}

const TicketConditionRef = builder
  .objectRef<{ type: string; status: string; reason: string; message: string }>('AttachmentTicketCondition')
  .implement({
    fields: (t) => ({
      type: t.exposeString('type'),
      status: t.exposeString('status'),
      reason: t.exposeString('reason'),
      message: t.exposeString('message'),
    }),
  });

const AttachmentTicketRef = builder.objectRef<TicketView>('AttachmentTicket').implement({
  description: 'A request to have the volume attached on a node',
  fields: (t) => ({
    id: t.string({ resolve: (v) => v.ticket.id }),
    type: t.string({ description: 'Who asked: shorthorn-api, csi-attacher, …', resolve: (v) => v.ticket.type }),
    nodeID: t.string({ resolve: (v) => v.ticket.nodeID }),
    disableFrontend: t.boolean({ resolve: (v) => v.ticket.parameters.disableFrontend }),
    generation: t.int({ resolve: (v) => v.ticket.generation }),
    satisfied: t.boolean({
      description: 'The volume is attached as this ticket asks',
      resolve: (v) => v.status?.satisfied ?? false,
    }),
    conditions: t.field({ type: [TicketConditionRef], resolve: (v) => v.status?.conditions ?? [] }),
  }),
});

VolumeAttachmentRef.implement({
  description: "A volume's attachment tickets (Longhorn VolumeAttachment); the controller turns them into its node",
  fields: (t) => ({
    name: t.string({ resolve: (a) => a.metadata.name }),
    volumeName: t.string({ resolve: (a) => a.spec.volume }),
    tickets: t.field({
      type: [AttachmentTicketRef],
      resolve: (a) =>
        Object.values(a.spec.attachmentTickets)
          .sort((x, y) => x.id.localeCompare(y.id))
          .map((ticket) => ({ ticket, status: a.status.attachmentTicketStatuses[ticket.id] })),
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      resolve: async (a, _args, ctx) => (await ctx.reads.get('Volume', a.spec.volume)) ?? null,
    }),
  }),
});
