// Which manager reconciles an object, as Longhorn's isControllerResponsibleFor: every manager sees
// every object, and `status.ownerID` records the one that took it. The preferred node (e.g. the node a
// volume is attached to) takes it when up; otherwise the current owner keeps it while up (so ownership
// does not flap); otherwise any live manager may claim it. Several claiming at once is fine: the claim
// is a status write, and all but one get a Conflict.

export interface Owned {
  status: { ownerID: string };
}

/**
 * Whether the manager on `myNodeID` should reconcile `obj`. An empty preferred node or owner counts
 * as down. `nodeIsUp` is only asked about other nodes: this manager is running, so its node is up.
 */
export function isResponsible(
  obj: Owned,
  myNodeID: string,
  preferredNodeID: string,
  nodeIsUp: (nodeID: string) => boolean,
): boolean {
  const up = (id: string) => id !== '' && (id === myNodeID || nodeIsUp(id));
  if (up(preferredNodeID)) return preferredNodeID === myNodeID;
  const owner = obj.status.ownerID;
  if (up(owner)) return owner === myNodeID;
  return true;
}
