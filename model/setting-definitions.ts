// The settings Shorthorn honours, with Longhorn's names, defaults and ranges
// (reference/longhorn-manager.md §4). A value is stored as a string; `parseSettingValue` checks it.
export type SettingType = 'bool' | 'int' | 'string' | 'enum';
export type SettingCategory = 'general' | 'scheduling' | 'snapshot' | 'backup' | 'danger-zone';

export interface SettingDefinition {
  displayName: string;
  description: string;
  category: SettingCategory;
  type: SettingType;
  default: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
  readOnly?: boolean;
}

function def(d: SettingDefinition): SettingDefinition {
  return d;
}

export const SETTING_DEFINITIONS = {
  'default-replica-count': def({
    displayName: 'Default Replica Count',
    description: 'Number of replicas of a new volume when its request does not say.',
    category: 'general',
    type: 'int',
    default: '3',
    min: 1,
    max: 20,
  }),
  'default-data-locality': def({
    displayName: 'Default Data Locality',
    description: 'Data locality of a new volume when its request does not say.',
    category: 'general',
    type: 'enum',
    default: 'disabled',
    choices: ['disabled', 'best-effort', 'strict-local'],
  }),
  'default-data-path': def({
    displayName: 'Default Data Path',
    description: 'Path of the default disk created on a new node.',
    category: 'general',
    type: 'string',
    default: '/var/lib/shorthorn',
  }),
  'storage-over-provisioning-percentage': def({
    displayName: 'Storage Over Provisioning Percentage',
    description: 'Replicas may be scheduled on a disk up to (maximum − reserved) × this %.',
    category: 'scheduling',
    type: 'int',
    default: '100',
    min: 0,
  }),
  'storage-minimal-available-percentage': def({
    displayName: 'Storage Minimal Available Percentage',
    description: 'A disk with less than this % of its maximum free takes no new replicas.',
    category: 'scheduling',
    type: 'int',
    default: '25',
    min: 0,
    max: 100,
  }),
  'storage-reserved-percentage-for-default-disk': def({
    displayName: 'Storage Reserved Percentage For Default Disk',
    description: 'Space of the default disk kept for other uses.',
    category: 'scheduling',
    type: 'int',
    default: '30',
    min: 0,
    max: 100,
  }),
  'replica-soft-anti-affinity': def({
    displayName: 'Replica Node Level Soft Anti-Affinity',
    description: 'Allow two replicas of a volume on one node when no other node is left.',
    category: 'scheduling',
    type: 'bool',
    default: 'false',
  }),
  'replica-zone-soft-anti-affinity': def({
    displayName: 'Replica Zone Level Soft Anti-Affinity',
    description: 'Allow two replicas of a volume in one zone when no other zone is left.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'replica-disk-soft-anti-affinity': def({
    displayName: 'Replica Disk Level Soft Anti-Affinity',
    description: 'Allow two replicas of a volume on one disk when no other disk is left.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'replica-auto-balance': def({
    displayName: 'Replica Auto Balance',
    description: 'Move replicas to spread them across nodes and zones.',
    category: 'scheduling',
    type: 'enum',
    default: 'disabled',
    choices: ['disabled', 'least-effort', 'best-effort'],
  }),
  'allow-volume-creation-with-degraded-availability': def({
    displayName: 'Allow Volume Creation with Degraded Availability',
    description: 'Create and attach a volume while some of its replicas cannot be scheduled.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'allow-empty-node-selector-volume': def({
    displayName: 'Allow Scheduling Empty Node Selector Volumes To Any Node',
    description: 'A volume without a node selector may use tagged nodes.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'allow-empty-disk-selector-volume': def({
    displayName: 'Allow Scheduling Empty Disk Selector Volumes To Any Disk',
    description: 'A volume without a disk selector may use tagged disks.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'replica-replenishment-wait-interval': def({
    displayName: 'Replica Replenishment Wait Interval',
    description: 'Seconds to wait for a failed replica to come back before building a new one elsewhere.',
    category: 'general',
    type: 'int',
    default: '600',
    min: 0,
  }),
  'concurrent-replica-rebuild-per-node-limit': def({
    displayName: 'Concurrent Replica Rebuild Per Node Limit',
    description: 'Rebuilds running at once on one node; 0 turns rebuilding off.',
    category: 'danger-zone',
    type: 'int',
    default: '5',
    min: 0,
  }),
  'auto-salvage': def({
    displayName: 'Automatic Salvage',
    description: 'When every replica of a volume failed, start again from the best one.',
    category: 'general',
    type: 'bool',
    default: 'true',
  }),
  'engine-replica-timeout': def({
    displayName: 'Engine to Replica Timeout',
    description: 'Seconds an engine waits for a replica with I/O in flight before marking it ERR.',
    category: 'general',
    type: 'int',
    default: '8',
    min: 8,
    max: 30,
  }),
  'snapshot-max-count': def({
    displayName: 'Snapshot Maximum Count',
    description: 'Most snapshots a volume may have.',
    category: 'snapshot',
    type: 'int',
    default: '250',
    min: 2,
    max: 250,
  }),
  'snapshot-count-warning-threshold': def({
    displayName: 'Snapshot Count Warning Threshold',
    description: 'A volume with more snapshots than this gets the TooManySnapshots condition.',
    category: 'snapshot',
    type: 'int',
    default: '100',
    min: 1,
    max: 250,
  }),
  'auto-cleanup-system-generated-snapshot': def({
    displayName: 'Automatically Cleanup System Generated Snapshot',
    description: 'Purge system snapshots after a rebuild or expansion.',
    category: 'snapshot',
    type: 'bool',
    default: 'true',
  }),
  'disable-snapshot-purge': def({
    displayName: 'Disable Snapshot Purge',
    description: 'Block snapshot purge (while a backup or rebuild must not see the chain change).',
    category: 'danger-zone',
    type: 'bool',
    default: 'false',
  }),
  'remove-snapshots-during-filesystem-trim': def({
    displayName: 'Remove Snapshots During Filesystem Trim',
    description: 'Trims also mark the snapshots right under the head removed and punch them.',
    category: 'snapshot',
    type: 'bool',
    default: 'false',
  }),
  'disable-scheduling-on-cordoned-node': def({
    displayName: 'Disable Scheduling On Cordoned Node',
    description: 'A cordoned node takes no new replicas.',
    category: 'scheduling',
    type: 'bool',
    default: 'true',
  }),
  'node-down-pod-deletion-policy': def({
    displayName: 'Pod Deletion Policy When Node is Down',
    description: 'What to do with pods of volumes on a node that went down.',
    category: 'general',
    type: 'enum',
    default: 'do-nothing',
    choices: [
      'do-nothing',
      'delete-statefulset-pod',
      'delete-deployment-pod',
      'delete-both-statefulset-and-deployment-pod',
    ],
  }),
  'node-drain-policy': def({
    displayName: 'Node Drain Policy',
    description: 'Whether draining a node waits for its last replicas.',
    category: 'general',
    type: 'enum',
    default: 'block-if-contains-last-replica',
    choices: [
      'block-if-contains-last-replica',
      'block-for-eviction',
      'block-for-eviction-if-contains-last-replica',
      'allow-if-replica-is-stopped',
      'always-allow',
    ],
  }),
  'backup-compression-method': def({
    displayName: 'Backup Compression Method',
    description: 'Compression of backup blocks.',
    category: 'backup',
    type: 'enum',
    default: 'lz4',
    choices: ['none', 'lz4', 'gzip'],
  }),
  'backup-concurrent-limit': def({
    displayName: 'Backup Concurrent Limit Per Backup',
    description: 'Blocks uploaded at once by one backup.',
    category: 'backup',
    type: 'int',
    default: '2',
    min: 1,
  }),
  'restore-concurrent-limit': def({
    displayName: 'Restore Concurrent Limit Per Backup',
    description: 'Blocks downloaded at once by one restore.',
    category: 'backup',
    type: 'int',
    default: '2',
    min: 1,
  }),
  'failed-backup-ttl': def({
    displayName: 'Failed Backup Time to Live',
    description: 'Minutes a failed backup is kept; 0 keeps it.',
    category: 'backup',
    type: 'int',
    default: '1440',
    min: 0,
  }),
  'recurring-job-max-retention': def({
    displayName: 'Maximum Retention Number for Recurring Job',
    description: 'Most snapshots or backups one recurring job keeps.',
    category: 'backup',
    type: 'int',
    default: '100',
    min: 1,
    max: 250,
  }),
  'auto-cleanup-recurring-job-backup-snapshot': def({
    displayName: 'Automatically Cleanup Recurring Job Backup Snapshot',
    description:
      'After a recurring backup, delete that job’s snapshots older than the newest one backed up (the newest stays as the base of the next incremental backup).',
    category: 'backup',
    type: 'bool',
    default: 'true',
  }),
  'log-level': def({
    displayName: 'Log Level',
    description: 'Manager log level.',
    category: 'general',
    type: 'enum',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error'],
  }),
} as const satisfies Record<string, SettingDefinition>;

export type SettingName = keyof typeof SETTING_DEFINITIONS;

export function isSettingName(name: string): name is SettingName {
  return Object.hasOwn(SETTING_DEFINITIONS, name);
}

/** Checks `value` against the definition; returns the reason it is invalid, or undefined when it is fine. */
export function settingValueProblem(name: string, value: string): string | undefined {
  if (!isSettingName(name)) return `unknown setting "${name}"`;
  const d: SettingDefinition = SETTING_DEFINITIONS[name];
  if (d.readOnly) return `setting "${name}" is read-only`;
  switch (d.type) {
    case 'bool':
      return value === 'true' || value === 'false' ? undefined : `"${name}" takes true or false, not "${value}"`;
    case 'int': {
      if (!/^-?\d+$/.test(value)) return `"${name}" takes a whole number, not "${value}"`;
      const n = Number(value);
      if (d.min !== undefined && n < d.min) return `"${name}" must be at least ${d.min}, not ${n}`;
      if (d.max !== undefined && n > d.max) return `"${name}" must be at most ${d.max}, not ${n}`;
      return undefined;
    }
    case 'enum':
      return d.choices?.includes(value) ? undefined : `"${name}" takes one of ${d.choices?.join(', ')}, not "${value}"`;
    case 'string':
      return undefined;
  }
}
