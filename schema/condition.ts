import type { Condition as ConditionModel } from '../model/meta.js';
import { builder } from './builder.js';

export const ConditionRef = builder.objectRef<ConditionModel>('Condition').implement({
  description: 'A typed condition (Kubernetes style): type, status True/False/Unknown, why and since when',
  fields: (t) => ({
    type: t.exposeString('type'),
    status: t.exposeString('status'),
    reason: t.exposeString('reason'),
    message: t.exposeString('message'),
    lastTransitionTime: t.exposeString('lastTransitionTime'),
  }),
});
