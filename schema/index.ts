// The schema: each file registers its types and fields with the builder; this one only imports them.
import { builder } from './builder.js';
import './condition.js';
import './volume.js';
import './node.js';
import './disk.js';
import './engine.js';
import './replica.js';
import './volume-attachment.js';
import './snapshot.js';
import './setting.js';
import './instance-manager.js';
import './event.js';
import './backup.js';
import './backup-volume.js';
import './backup-target.js';
import './recurring-job.js';
import './cluster.js';
import './volume-graph.js';

import './mutations/volume-actions.js';
import './mutations/snapshot-actions.js';
import './mutations/node-actions.js';
import './mutations/setting-actions.js';
import './mutations/backup-actions.js';
import './mutations/recurring-job-actions.js';
import './subscriptions.js';
import './api-token.js';

export const schema = builder.toSchema();
