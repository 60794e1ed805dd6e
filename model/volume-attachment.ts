// VolumeAttachment: who wants a volume attached where (Longhorn's ticket model). One per volume, named
// after it. Clients add and remove tickets; the controller alone turns them into volume.spec.nodeID.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

/** Higher wins when tickets disagree on the node (Longhorn: workloads over internal controllers). */
export const TICKET_PRIORITY: Record<string, number> = {
  'csi-attacher': 900,
  'shorthorn-api': 800,
  'snapshot-controller': 300,
  'volume-restore-controller': 300,
  'salvage-controller': 200,
};

export const attachmentTicketType = z.enum([
  'csi-attacher',
  'shorthorn-api',
  'snapshot-controller',
  'volume-restore-controller',
  'salvage-controller',
]);
export type AttachmentTicketType = z.infer<typeof attachmentTicketType>;

export const attachmentTicket = z.object({
  id: z.string().min(1),
  type: attachmentTicketType.default('shorthorn-api'),
  nodeID: z.string().min(1),
  parameters: z.object({ disableFrontend: z.boolean().default(false) }).default({ disableFrontend: false }),
  generation: z.number().int().default(0),
});
export type AttachmentTicket = z.infer<typeof attachmentTicket>;

export const ticketStatus = z.object({
  id: z.string(),
  satisfied: z.boolean(),
  conditions: z
    .array(z.object({ type: z.string(), status: z.string(), reason: z.string(), message: z.string() }))
    .default([]),
});

export const volumeAttachmentSpec = z.object({
  volume: z.string(),
  attachmentTickets: z.record(z.string(), attachmentTicket).default({}),
});
export type VolumeAttachmentSpec = z.infer<typeof volumeAttachmentSpec>;

export const volumeAttachmentStatus = z.object({
  attachmentTicketStatuses: z.record(z.string(), ticketStatus).default({}),
});
export type VolumeAttachmentStatus = z.infer<typeof volumeAttachmentStatus>;

export const volumeAttachmentSchema = resourceSchema(
  'VolumeAttachment',
  volumeAttachmentSpec,
  volumeAttachmentStatus.default(volumeAttachmentStatus.parse({})),
);
export type VolumeAttachment = Resource<'VolumeAttachment', VolumeAttachmentSpec, VolumeAttachmentStatus>;

export function ticketPriority(t: AttachmentTicket): number {
  return TICKET_PRIORITY[t.type] ?? 0;
}
