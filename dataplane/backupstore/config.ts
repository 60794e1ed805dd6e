// volume.cfg and backup_<name>.cfg exactly as Longhorn's Go structs marshal them (reference §5.3, §5.4),
// so either system reads the other's backups. Three Go details matter for the bytes:
//  - keys are the Go field names in declaration order, map keys sorted, compact, no trailing newline
//    (json.Marshal), with Go's HTML-safe escapes;
//  - `json:",string"` on an int64 writes it as a JSON string ("Size":"10737418240");
//  - `json:",string"` on a *string* field (volume.cfg's BackingImageName, BackingImageChecksum,
//    CompressionMethod, StorageClassName, DataEngine, LinkedClone*) quotes it twice:
//    "CompressionMethod":"\"lz4\"". Go's decoder rejects the singly-quoted form for those fields, so
//    writing "lz4" there would make the file unreadable to Longhorn. We read both forms.
// Decoding follows Go's rules: missing or null fields take their zero value, keys match
// case-insensitively, and unknown fields are ignored (volume.cfg keeps them to write them back).
import { sortedRecord, stringifyLikeGo } from '../replica/store/go-json.js';
import { isCompressionMethod } from './compression.js';
import { BACKUP_BLOCK_SIZE, type CompressionMethod } from './types.js';

export interface VolumeConfig {
  name: string;
  /** Volume size in bytes at the last backup. */
  size: number;
  /** Go's nil map is `null`; kept apart from `{}` so a Longhorn file round-trips byte for byte. */
  labels: Record<string, string> | null;
  createdTime: string;
  /** '' when the volume has no completed backup. */
  lastBackupName: string;
  /** The last backup's SnapshotCreatedAt. */
  lastBackupAt: string;
  /** Distinct .blk objects stored for the volume. */
  blockCount: number;
  backingImageName: string;
  backingImageChecksum: string;
  /** Fixed at the first backup; every later backup of the volume uses it. */
  compressionMethod: CompressionMethod;
  storageClassName: string;
  dataEngine: string;
  /** Written by Longhorn ≥ 1.10 only; kept (and written back) when present. */
  linkedCloneSourceVolume?: string;
  linkedCloneSourceSnapshot?: string;
  /** Fields a newer Longhorn wrote that this code does not know: written back unchanged. */
  unknownFields?: Record<string, unknown>;
}

export interface BlockMapping {
  /** Byte offset in the volume, a multiple of the backup's block size. */
  offset: number;
  /** hex(SHA-512(uncompressed block))[:64]; names the .blk object. */
  checksum: string;
}

export interface BackupConfig {
  name: string;
  volumeName: string;
  snapshotName: string;
  snapshotCreatedAt: string;
  /** '' while the backup is in progress (or after it failed); set when it completes. */
  createdTime: string;
  /** blocks.length × block size. */
  size: number;
  labels: Record<string, string> | null;
  /** e.g. {"backup-block-size":"2097152","backup-mode":"incremental"}; null in older backups. */
  parameters: Record<string, string> | null;
  isIncremental: boolean;
  compressionMethod: CompressionMethod;
  /** Compressed bytes of blocks that were not in the store before this backup. */
  newlyUploadedDataSize: number;
  /** Compressed bytes of blocks uploaded again although present (full mode). */
  reUploadedDataSize: number;
  /** The complete block map of the volume at the snapshot, sorted by offset. */
  blocks: BlockMapping[];
  /** Single-file backups (backing images); '' for volume backups. */
  singleFile: { filePath: string };
}

export const BACKUP_PARAM_BLOCK_SIZE = 'backup-block-size';
export const BACKUP_PARAM_MODE = 'backup-mode';

/** A backup whose cfg has no CreatedTime is running, or was abandoned by a failure. */
export function isBackupInProgress(cfg: BackupConfig): boolean {
  return cfg.createdTime === '';
}

const VOLUME_FIELDS = [
  'Name',
  'Size',
  'Labels',
  'CreatedTime',
  'LastBackupName',
  'LastBackupAt',
  'BlockCount',
  'BackingImageName',
  'BackingImageChecksum',
  'CompressionMethod',
  'StorageClassName',
  'DataEngine',
  'LinkedCloneSourceVolume',
  'LinkedCloneSourceSnapshot',
];

export function encodeVolumeConfig(v: VolumeConfig): Buffer {
  const out: Record<string, unknown> = {
    Name: v.name,
    Size: int64String(v.size),
    Labels: v.labels === null ? null : sortedRecord(v.labels),
    CreatedTime: v.createdTime,
    LastBackupName: v.lastBackupName,
    LastBackupAt: v.lastBackupAt,
    BlockCount: int64String(v.blockCount),
    BackingImageName: goQuoted(v.backingImageName),
    BackingImageChecksum: goQuoted(v.backingImageChecksum),
    CompressionMethod: goQuoted(v.compressionMethod),
    StorageClassName: goQuoted(v.storageClassName),
    DataEngine: goQuoted(v.dataEngine),
  };
  if (v.linkedCloneSourceVolume !== undefined) out['LinkedCloneSourceVolume'] = goQuoted(v.linkedCloneSourceVolume);
  if (v.linkedCloneSourceSnapshot !== undefined) {
    out['LinkedCloneSourceSnapshot'] = goQuoted(v.linkedCloneSourceSnapshot);
  }
  for (const [key, value] of Object.entries(v.unknownFields ?? {})) {
    if (!Object.hasOwn(out, key)) out[key] = value;
  }
  return marshal(out);
}

export function decodeVolumeConfig(data: Buffer | string, source: string): VolumeConfig {
  const o = GoFields.parse(data, source);
  const cfg: VolumeConfig = {
    name: o.string('Name'),
    size: o.int64('Size'),
    labels: o.stringMap('Labels'),
    createdTime: o.string('CreatedTime'),
    lastBackupName: o.string('LastBackupName'),
    lastBackupAt: o.string('LastBackupAt'),
    blockCount: o.int64('BlockCount'),
    backingImageName: o.quotedString('BackingImageName'),
    backingImageChecksum: o.quotedString('BackingImageChecksum'),
    compressionMethod: o.compression('CompressionMethod', true),
    storageClassName: o.quotedString('StorageClassName'),
    dataEngine: o.quotedString('DataEngine'),
  };
  if (o.has('LinkedCloneSourceVolume')) cfg.linkedCloneSourceVolume = o.quotedString('LinkedCloneSourceVolume');
  if (o.has('LinkedCloneSourceSnapshot')) cfg.linkedCloneSourceSnapshot = o.quotedString('LinkedCloneSourceSnapshot');
  const unknown = o.unknownFields(VOLUME_FIELDS);
  if (Object.keys(unknown).length > 0) cfg.unknownFields = unknown;
  return cfg;
}

export function encodeBackupConfig(b: BackupConfig): Buffer {
  const out: Record<string, unknown> = {
    Name: b.name,
    VolumeName: b.volumeName,
    SnapshotName: b.snapshotName,
    SnapshotCreatedAt: b.snapshotCreatedAt,
    CreatedTime: b.createdTime,
    Size: int64String(b.size),
    Labels: b.labels === null ? null : sortedRecord(b.labels),
    Parameters: b.parameters === null ? null : sortedRecord(b.parameters),
    IsIncremental: b.isIncremental,
    CompressionMethod: b.compressionMethod,
    NewlyUploadedDataSize: int64String(b.newlyUploadedDataSize),
    ReUploadedDataSize: int64String(b.reUploadedDataSize),
    // A pointer to a struct of unexported fields: null, or {} while Longhorn holds one; never data.
    ProcessingBlocks: null,
  };
  // `json:",omitempty"`: an empty block map is left out. SingleFile is a struct, which omitempty
  // never omits.
  if (b.blocks.length > 0) out['Blocks'] = b.blocks.map((m) => ({ Offset: m.offset, BlockChecksum: m.checksum }));
  out['SingleFile'] = { FilePath: b.singleFile.filePath };
  return marshal(out);
}

export function decodeBackupConfig(data: Buffer | string, source: string): BackupConfig {
  const o = GoFields.parse(data, source);
  return {
    name: o.string('Name'),
    volumeName: o.string('VolumeName'),
    snapshotName: o.string('SnapshotName'),
    snapshotCreatedAt: o.string('SnapshotCreatedAt'),
    createdTime: o.string('CreatedTime'),
    size: o.int64('Size'),
    labels: o.stringMap('Labels'),
    parameters: o.stringMap('Parameters'),
    isIncremental: o.bool('IsIncremental'),
    compressionMethod: o.compression('CompressionMethod', false),
    newlyUploadedDataSize: o.int64('NewlyUploadedDataSize'),
    reUploadedDataSize: o.int64('ReUploadedDataSize'),
    blocks: o.blocks('Blocks'),
    singleFile: { filePath: o.object('SingleFile').string('FilePath') },
  };
}

/** The block size a backup was cut in: its `backup-block-size` parameter, else Longhorn's 2 MiB. */
export function backupBlockSizeOf(cfg: BackupConfig): number {
  const text = cfg.parameters?.[BACKUP_PARAM_BLOCK_SIZE];
  if (text === undefined || text === '') return BACKUP_BLOCK_SIZE;
  const size = parseQuantity(text);
  if (size === undefined || size <= 0) {
    throw new Error(`backup ${cfg.name}: invalid ${BACKUP_PARAM_BLOCK_SIZE} parameter ${JSON.stringify(text)}`);
  }
  return size;
}

const QUANTITY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
};

/** The Kubernetes quantities Longhorn accepts for the block size: "2097152", "2Mi", "16Mi". */
function parseQuantity(text: string): number | undefined {
  const m = /^(\d+)(k|M|G|Ki|Mi|Gi)?$/.exec(text.trim());
  if (!m) return undefined;
  const value = Number(m[1]) * QUANTITY_UNITS[m[2] ?? '']!;
  return Number.isSafeInteger(value) ? value : undefined;
}

function marshal(value: Record<string, unknown>): Buffer {
  // stringifyLikeGo mirrors json.Encoder, which appends '\n'; Longhorn saves with json.Marshal, which does not.
  return Buffer.from(stringifyLikeGo(value).slice(0, -1));
}

function int64String(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
}

/** The inner literal of a `json:",string"` string field, with Go's HTML-safe escapes. */
function goQuoted(s: string): string {
  return stringifyLikeGo(s).slice(0, -1);
}

/** Field access with Go's decoding rules, naming the file in every error. */
class GoFields {
  private constructor(
    private readonly fields: Record<string, unknown>,
    private readonly source: string,
  ) {}

  static parse(data: Buffer | string, source: string): GoFields {
    let value: unknown;
    try {
      value = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
    } catch (cause) {
      throw new Error(`${source}: invalid JSON: ${(cause as Error).message}`, { cause });
    }
    return GoFields.wrap(value, source, 'the file');
  }

  private static wrap(value: unknown, source: string, what: string): GoFields {
    if (value === null || value === undefined) return new GoFields({}, source);
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`${source}: expected ${what} to be a JSON object, got ${describe(value)}`);
    }
    return new GoFields(value as Record<string, unknown>, source);
  }

  has(field: string): boolean {
    return this.get(field) !== undefined;
  }

  string(field: string): string {
    const v = this.get(field);
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw this.typeError(field, 'a string', v);
    return v;
  }

  /** A `json:",string"` string: "\"v1\"" as Longhorn writes it; a plain "v1" is accepted too. */
  quotedString(field: string): string {
    const v = this.string(field);
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
      try {
        const inner: unknown = JSON.parse(v);
        if (typeof inner === 'string') return inner;
      } catch {
        // not a JSON literal after all: the plain value
      }
    }
    return v;
  }

  bool(field: string): boolean {
    const v = this.get(field);
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw this.typeError(field, 'a boolean', v);
    return v;
  }

  /** A `json:",string"` int64 ("123"); a bare number is accepted as well. */
  int64(field: string): number {
    const v = this.get(field);
    if (v === undefined || v === null || v === '') return 0;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : typeof v === 'number' ? v : Number.NaN;
    if (!Number.isSafeInteger(n)) throw this.typeError(field, 'an integer (as a string)', v);
    return n;
  }

  /** Empty means gzip: backups from before Longhorn recorded the method were all gzip. */
  compression(field: string, quoted: boolean): CompressionMethod {
    const v = quoted ? this.quotedString(field) : this.string(field);
    if (v === '') return 'gzip';
    if (!isCompressionMethod(v)) throw this.typeError(field, 'none, gzip or lz4', v);
    return v;
  }

  stringMap(field: string): Record<string, string> | null {
    const v = this.get(field);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw this.typeError(field, 'an object of strings', v);
    const entries = Object.entries(v as Record<string, unknown>);
    for (const [key, value] of entries) {
      if (typeof value !== 'string') throw this.typeError(`${field}.${key}`, 'a string', value);
    }
    // fromEntries defines own properties, so a label named "__proto__" stays a label.
    return Object.fromEntries(entries) as Record<string, string>;
  }

  object(field: string): GoFields {
    return GoFields.wrap(this.get(field), this.source, `field ${field}`);
  }

  blocks(field: string): BlockMapping[] {
    const v = this.get(field);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.typeError(field, 'an array', v);
    return v.map((item: unknown, i) => {
      const b = GoFields.wrap(item, this.source, `${field}[${i}]`);
      const offset = b.get('Offset');
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
        throw this.typeError(`${field}[${i}].Offset`, 'a non-negative integer', offset);
      }
      const checksum = b.string('BlockChecksum');
      if (!/^[0-9a-f]{64}$/.test(checksum))
        throw this.typeError(`${field}[${i}].BlockChecksum`, '64 hex digits', checksum);
      return { offset, checksum };
    });
  }

  unknownFields(known: readonly string[]): Record<string, unknown> {
    const folded = new Set(known.map((k) => k.toLowerCase()));
    return Object.fromEntries(Object.entries(this.fields).filter(([key]) => !folded.has(key.toLowerCase())));
  }

  private get(field: string): unknown {
    if (Object.hasOwn(this.fields, field)) return this.fields[field];
    const folded = field.toLowerCase();
    for (const key of Object.keys(this.fields)) {
      if (key.toLowerCase() === folded) return this.fields[key];
    }
    return undefined;
  }

  private typeError(field: string, expected: string, got: unknown): Error {
    return new Error(`${this.source}: field ${field} must be ${expected}, got ${describe(got)}`);
  }
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
