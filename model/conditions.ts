// Typed conditions (Kubernetes style): getCondition defaults to Unknown; setCondition moves
// lastTransitionTime only when the status flips, so "since when" stays truthful.
import { type Condition, type ConditionStatus, nowIso } from './meta.js';

export function getCondition(conditions: readonly Condition[], type: string): Condition {
  return (
    conditions.find((c) => c.type === type) ?? {
      type,
      status: 'Unknown',
      reason: '',
      message: '',
      lastProbeTime: '',
      lastTransitionTime: '',
    }
  );
}

export function isConditionTrue(conditions: readonly Condition[], type: string): boolean {
  return getCondition(conditions, type).status === 'True';
}

/** Returns a new array with `type` set; the input is not modified. */
export function setCondition(
  conditions: readonly Condition[],
  type: string,
  status: ConditionStatus,
  reason = '',
  message = '',
  now: string = nowIso(),
): Condition[] {
  const old = conditions.find((c) => c.type === type);
  const next: Condition = {
    type,
    status,
    reason,
    message,
    lastProbeTime: old?.lastProbeTime ?? '',
    lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now,
  };
  const out = conditions.filter((c) => c.type !== type);
  out.push(next);
  out.sort((a, b) => a.type.localeCompare(b.type));
  return out;
}
