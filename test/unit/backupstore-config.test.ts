import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blockChecksum,
  blockChecksumAsync,
  COMPRESSION_METHODS,
  compressBlock,
  decompressAndVerify,
  decompressBlock,
} from '../../dataplane/backupstore/compression.js';
import {
  type BackupConfig,
  backupBlockSizeOf,
  decodeBackupConfig,
  decodeVolumeConfig,
  encodeBackupConfig,
  encodeVolumeConfig,
  isBackupInProgress,
  type VolumeConfig,
} from '../../dataplane/backupstore/config.js';
import { blockPath, generateBackupName, generateLockName, volumePath } from '../../dataplane/backupstore/layout.js';
import { diffBlockMaps } from '../../dataplane/backupstore/restore.js';
import { decodeBackupUrl, encodeBackupUrl, parseTargetUrl } from '../../dataplane/backupstore/target-url.js';

// GOLDEN files, byte for byte as Longhorn writes them (json.Marshal of backupstore.go's Volume and
// Backup: Go field order, no trailing newline). The first two are the examples of Longhorn's
// "Backupstore Layout" documentation page (a real v1.10 backup volume); the field order is also that
// of the Go structs, so exact bytes are compared, not just the decoded objects. Note the doubly quoted
// strings in volume.cfg: those fields carry `json:",string"`, which Go applies to strings too.
const GOLDEN_VOLUME_CFG_V110 =
  '{"Name":"pvc-0123abcd-test","Size":"18874368","Labels":{"k":"v"},"CreatedTime":"2026-10-05T00:40:38Z",' +
  '"LastBackupName":"backup-854f6ced7b4942d4","LastBackupAt":"2026-10-05T00:40:38Z","BlockCount":"4",' +
  '"BackingImageName":"\\"\\"","BackingImageChecksum":"\\"\\"","CompressionMethod":"\\"lz4\\"",' +
  '"StorageClassName":"\\"\\"","DataEngine":"\\"v1\\"","LinkedCloneSourceVolume":"\\"\\"",' +
  '"LinkedCloneSourceSnapshot":"\\"\\""}';

const GOLDEN_BACKUP_CFG =
  '{"Name":"backup-854f6ced7b4942d4","VolumeName":"pvc-0123abcd-test","SnapshotName":"snap-1",' +
  '"SnapshotCreatedAt":"2026-10-05T00:40:38Z","CreatedTime":"2026-10-05T00:40:43Z","Size":"6291456",' +
  '"Labels":{"k":"v"},"Parameters":null,"IsIncremental":true,"CompressionMethod":"lz4",' +
  '"NewlyUploadedDataSize":"2097171","ReUploadedDataSize":"0","ProcessingBlocks":null,"Blocks":[' +
  '{"Offset":0,"BlockChecksum":"d9cf3e0942c46cf9c43d8f4e152c761bb88b3e8a5d9bb127d16d55f8a7402b50"},' +
  '{"Offset":2097152,"BlockChecksum":"bb9d1ff59852efbef9cb0f8c7c97052b455a2520a3b91ae2b8f17765d234fc58"},' +
  '{"Offset":4194304,"BlockChecksum":"4bcaade1b34a396dc3c512d2c3b226c423969eb5093529291ce89ebad285d140"}],' +
  '"SingleFile":{"FilePath":""}}';

// v1.6–v1.9 (no LinkedClone fields); hand-written from the Go struct, HTML-escaped label as Go writes it.
const GOLDEN_VOLUME_CFG_V17 =
  '{"Name":"pvc-1","Size":"10737418240","Labels":{"a\\u0026b":"\\u003cx\\u003e","longhorn.io/x":"1"},' +
  '"CreatedTime":"2024-05-01T09:00:00Z","LastBackupName":"","LastBackupAt":"","BlockCount":"0",' +
  '"BackingImageName":"\\"\\"","BackingImageChecksum":"\\"\\"","CompressionMethod":"\\"gzip\\"",' +
  '"StorageClassName":"\\"longhorn\\"","DataEngine":"\\"v1\\""}';

// An in-progress backup: no CreatedTime yet, and an empty block map is left out (`json:",omitempty"`).
const GOLDEN_IN_PROGRESS_CFG =
  '{"Name":"backup-0011223344556677","VolumeName":"pvc-1","SnapshotName":"snap-2","SnapshotCreatedAt":' +
  '"2024-05-01T10:00:00Z","CreatedTime":"","Size":"0","Labels":{},"Parameters":{"backup-block-size":"2097152",' +
  '"backup-mode":"incremental"},"IsIncremental":false,"CompressionMethod":"lz4","NewlyUploadedDataSize":"0",' +
  '"ReUploadedDataSize":"0","ProcessingBlocks":null,"SingleFile":{"FilePath":""}}';

describe('backup store configs (golden)', () => {
  it('decodes a Longhorn v1.10 volume.cfg and re-encodes the same bytes', () => {
    const v = decodeVolumeConfig(Buffer.from(GOLDEN_VOLUME_CFG_V110), 'volume.cfg');
    expect(v).toEqual({
      name: 'pvc-0123abcd-test',
      size: 18874368,
      labels: { k: 'v' },
      createdTime: '2026-10-05T00:40:38Z',
      lastBackupName: 'backup-854f6ced7b4942d4',
      lastBackupAt: '2026-10-05T00:40:38Z',
      blockCount: 4,
      backingImageName: '',
      backingImageChecksum: '',
      compressionMethod: 'lz4',
      storageClassName: '',
      dataEngine: 'v1',
      linkedCloneSourceVolume: '',
      linkedCloneSourceSnapshot: '',
    } satisfies VolumeConfig);
    expect(encodeVolumeConfig(v).toString()).toBe(GOLDEN_VOLUME_CFG_V110);
  });

  it('round-trips a pre-1.10 volume.cfg, with Go HTML escapes and sorted labels', () => {
    const v = decodeVolumeConfig(GOLDEN_VOLUME_CFG_V17, 'volume.cfg');
    expect(v.labels).toEqual({ 'a&b': '<x>', 'longhorn.io/x': '1' });
    expect(v.storageClassName).toBe('longhorn');
    expect(v.linkedCloneSourceVolume).toBeUndefined();
    expect(encodeVolumeConfig(v).toString()).toBe(GOLDEN_VOLUME_CFG_V17);
    // Insertion order of labels does not matter: Go sorts map keys.
    const shuffled = { ...v, labels: { 'longhorn.io/x': '1', 'a&b': '<x>' } };
    expect(encodeVolumeConfig(shuffled).toString()).toBe(GOLDEN_VOLUME_CFG_V17);
  });

  it('decodes a Longhorn backup cfg and re-encodes the same bytes', () => {
    const b = decodeBackupConfig(Buffer.from(GOLDEN_BACKUP_CFG), 'backup.cfg');
    expect(b.name).toBe('backup-854f6ced7b4942d4');
    expect(b.size).toBe(6291456);
    expect(b.parameters).toBeNull();
    expect(b.isIncremental).toBe(true);
    expect(b.newlyUploadedDataSize).toBe(2097171);
    expect(b.blocks).toHaveLength(3);
    expect(b.blocks[1]).toEqual({
      offset: 2097152,
      checksum: 'bb9d1ff59852efbef9cb0f8c7c97052b455a2520a3b91ae2b8f17765d234fc58',
    });
    expect(isBackupInProgress(b)).toBe(false);
    expect(backupBlockSizeOf(b)).toBe(2 * 1024 * 1024);
    expect(encodeBackupConfig(b).toString()).toBe(GOLDEN_BACKUP_CFG);
  });

  it('round-trips an in-progress backup cfg without a Blocks key', () => {
    const b = decodeBackupConfig(GOLDEN_IN_PROGRESS_CFG, 'backup.cfg');
    expect(isBackupInProgress(b)).toBe(true);
    expect(b.blocks).toEqual([]);
    expect(encodeBackupConfig(b).toString()).toBe(GOLDEN_IN_PROGRESS_CFG);
  });

  it('tolerates legacy and hand-written files', () => {
    // Singly quoted strings (as the reference's §5.3 example shows), numbers where Go writes strings,
    // missing fields, lower-case keys: read the way Go (or a lenient reading of Go's output) would.
    const v = decodeVolumeConfig(
      '{"name":"old","Size":1048576,"LastBackupName":"backup-1","CompressionMethod":"lz4","Extra":{"x":1}}\n',
      'volume.cfg',
    );
    expect(v).toMatchObject({ name: 'old', size: 1048576, compressionMethod: 'lz4', labels: null, dataEngine: '' });
    expect(v.unknownFields).toEqual({ Extra: { x: 1 } });
    // A field a newer Longhorn wrote survives our rewrite.
    expect(encodeVolumeConfig(v).toString()).toContain('"Extra":{"x":1}');
    // Before Longhorn recorded it, every block was gzip.
    expect(decodeVolumeConfig('{"Name":"old"}', 'volume.cfg').compressionMethod).toBe('gzip');
    expect(decodeVolumeConfig('{"Name":"old","CompressionMethod":"\\"\\""}', 'x').compressionMethod).toBe('gzip');
    const b = decodeBackupConfig(
      '{"Name":"backup-1","VolumeName":"old","CreatedTime":"2020-01-01T00:00:00Z","Size":"0","Blocks":null}',
      'backup.cfg',
    );
    expect(b).toMatchObject({ compressionMethod: 'gzip', parameters: null, blocks: [], singleFile: { filePath: '' } });
  });

  it('names the file and field in decoding errors', () => {
    expect(() => decodeVolumeConfig('{"Size":"ten"}', '/t/volume.cfg')).toThrow(/\/t\/volume.cfg: field Size/);
    expect(() => decodeVolumeConfig('{"CompressionMethod":"\\"zstd\\""}', 'v')).toThrow(/none, gzip or lz4/);
    expect(() => decodeBackupConfig('{"Blocks":[{"Offset":0,"BlockChecksum":"xyz"}]}', 'b')).toThrow(
      /Blocks\[0\].BlockChecksum/,
    );
    expect(() => decodeBackupConfig('[1]', 'b')).toThrow(/JSON object/);
    expect(() => decodeBackupConfig('{', 'b')).toThrow(/invalid JSON/);
  });

  it('reads the block size parameter as a Kubernetes quantity', () => {
    const b = decodeBackupConfig(GOLDEN_BACKUP_CFG, 'b');
    expect(backupBlockSizeOf({ ...b, parameters: { 'backup-block-size': '16Mi' } })).toBe(16 * 1024 * 1024);
    expect(backupBlockSizeOf({ ...b, parameters: { 'backup-block-size': '2097152' } })).toBe(2097152);
    expect(() => backupBlockSizeOf({ ...b, parameters: { 'backup-block-size': 'big' } })).toThrow(/backup-block-size/);
  });
});

const name = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,20}$/);
const labels = fc.option(fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), { maxKeys: 4 }), {
  nil: null,
});
const int64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const method = fc.constantFrom(...COMPRESSION_METHODS);
const checksum = fc.stringMatching(/^[0-9a-f]{64}$/);

const volumeConfig: fc.Arbitrary<VolumeConfig> = fc.record(
  {
    name,
    size: int64,
    labels,
    createdTime: fc.string(),
    lastBackupName: fc.string(),
    lastBackupAt: fc.string(),
    blockCount: int64,
    backingImageName: fc.string(),
    backingImageChecksum: fc.string(),
    compressionMethod: method,
    storageClassName: fc.string(),
    dataEngine: fc.constantFrom('v1', 'v2'),
    linkedCloneSourceVolume: fc.string(),
    linkedCloneSourceSnapshot: fc.string(),
  },
  {
    requiredKeys: [
      'name',
      'size',
      'labels',
      'createdTime',
      'lastBackupName',
      'lastBackupAt',
      'blockCount',
      'backingImageName',
      'backingImageChecksum',
      'compressionMethod',
      'storageClassName',
      'dataEngine',
    ],
  },
);

const backupConfig: fc.Arbitrary<BackupConfig> = fc.record({
  name,
  volumeName: name,
  snapshotName: fc.string(),
  snapshotCreatedAt: fc.string(),
  createdTime: fc.string(),
  size: int64,
  labels,
  parameters: labels,
  isIncremental: fc.boolean(),
  compressionMethod: method,
  newlyUploadedDataSize: int64,
  reUploadedDataSize: int64,
  blocks: fc.array(fc.record({ offset: int64, checksum }), { maxLength: 5 }),
  singleFile: fc.record({ filePath: fc.string() }),
});

describe('backup store configs (properties)', () => {
  it('volume.cfg: decode(encode(v)) = v, and encoding is stable', () => {
    fc.assert(
      fc.property(volumeConfig, (v) => {
        const bytes = encodeVolumeConfig(v);
        const back = decodeVolumeConfig(bytes, 'p');
        expect(back).toEqual(v);
        expect(encodeVolumeConfig(back).equals(bytes)).toBe(true);
      }),
    );
  });

  it('backup cfg: decode(encode(b)) = b, and encoding is stable', () => {
    fc.assert(
      fc.property(backupConfig, (b) => {
        const bytes = encodeBackupConfig(b);
        const back = decodeBackupConfig(bytes, 'p');
        expect(back).toEqual(b);
        expect(encodeBackupConfig(back).equals(bytes)).toBe(true);
      }),
    );
  });
});

describe('block compression', () => {
  // Blocks mix compressible runs and noise, the way real volume data does.
  const block = fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer({ min: 0, max: 255 }).map((b) => new Uint8Array(5000).fill(b)),
      ),
      {
        maxLength: 6,
      },
    )
    .map((parts) => Buffer.concat(parts));

  it('round-trips none, gzip and lz4 and verifies the checksum', async () => {
    await fc.assert(
      fc.asyncProperty(method, block, async (m, data) => {
        const stored = await compressBlock(m, data);
        expect((await decompressBlock(m, stored)).equals(data)).toBe(true);
        const back = await decompressAndVerify(m, stored, blockChecksum(data), 'block');
        expect(back.equals(data)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('writes LZ4 frames (what pierrec/lz4 and the lz4 tool read), not raw blocks', async () => {
    const stored = await compressBlock('lz4', Buffer.alloc(2 * 1024 * 1024, 7));
    expect(stored.subarray(0, 4)).toEqual(Buffer.from([0x04, 0x22, 0x4d, 0x18]));
    const gz = await compressBlock('gzip', Buffer.from('x'));
    expect(gz.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('checksum is hex(SHA-512)[:64] of the uncompressed bytes', () => {
    // echo -n abc | sha512sum
    expect(blockChecksum(Buffer.from('abc'))).toBe('ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a');
  });

  it('the thread-pool checksum (what backups use) equals the synchronous one, on views into larger buffers too', async () => {
    expect(await blockChecksumAsync(Buffer.from('abc'))).toBe(blockChecksum(Buffer.from('abc')));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.nat(64), async (bytes, skip) => {
        const view = Buffer.concat([Buffer.alloc(skip, 0xee), bytes, Buffer.alloc(7, 0xee)]).subarray(
          skip,
          skip + bytes.length,
        );
        expect(await blockChecksumAsync(view)).toBe(blockChecksum(view));
      }),
      { numRuns: 50 },
    );
  });

  it('rejects a block whose content does not match its name, naming the block', async () => {
    const stored = await compressBlock('lz4', Buffer.from('hello world'));
    const wrong = blockChecksum(Buffer.from('other'));
    await expect(decompressAndVerify('lz4', stored, wrong, 'block X at offset 4096')).rejects.toThrow(
      /block X at offset 4096: checksum mismatch/,
    );
    await expect(decompressAndVerify('gzip', Buffer.from('not gzip'), wrong, 'block Y')).rejects.toThrow(
      /block Y: cannot gzip-decompress/,
    );
  });
});

describe('layout', () => {
  it('places volumes and blocks as Longhorn does', () => {
    // From Longhorn's documentation: pvc-0123abcd-test lives under volumes/a7/9b/.
    expect(volumePath('pvc-0123abcd-test')).toBe('backupstore/volumes/a7/9b/pvc-0123abcd-test');
    const c = 'd9cf3e0942c46cf9c43d8f4e152c761bb88b3e8a5d9bb127d16d55f8a7402b50';
    expect(blockPath('pvc-0123abcd-test', c)).toBe(`backupstore/volumes/a7/9b/pvc-0123abcd-test/blocks/d9/cf/${c}.blk`);
    expect(generateBackupName()).toMatch(/^backup-[0-9a-f]{16}$/);
    expect(generateLockName()).toMatch(/^lock-[0-9a-f]{16}$/);
    expect(() => volumePath('../etc')).toThrow(/invalid volume name/);
  });
});

describe('target and backup URLs', () => {
  it('parses file and s3 targets', () => {
    expect(parseTargetUrl('file:///mnt/backups/')).toEqual({
      kind: 'file',
      url: 'file:///mnt/backups/',
      dir: '/mnt/backups',
    });
    expect(parseTargetUrl('s3://bkt@us-east-1/path/to/')).toEqual({
      kind: 's3',
      url: 's3://bkt@us-east-1/path/to/',
      bucket: 'bkt',
      region: 'us-east-1',
      prefix: 'path/to',
    });
    expect(parseTargetUrl('s3://bkt/', 'eu-west-2')).toMatchObject({ bucket: 'bkt', region: 'eu-west-2', prefix: '' });
    expect(() => parseTargetUrl('s3://bkt/')).toThrow(/AWS_REGION/);
    expect(() => parseTargetUrl('nfs://server:/export/')).toThrow(/unsupported backup target scheme nfs.*file:\/\//);
    expect(() => parseTargetUrl('cifs://server/share')).toThrow(/scheme cifs/);
    expect(() => parseTargetUrl('file://host/dir')).toThrow(/absolute local path/);
    expect(() => parseTargetUrl('/mnt/x')).toThrow(/invalid backup target/);
  });

  it('encodes and decodes backup URLs like Longhorn', () => {
    const url = encodeBackupUrl('s3://bkt@us-east-1/', 'backup-0123456789abcdef', 'pvc-1');
    expect(url).toBe('s3://bkt@us-east-1/?backup=backup-0123456789abcdef&volume=pvc-1');
    expect(decodeBackupUrl(url)).toEqual({
      targetUrl: 's3://bkt@us-east-1/',
      backupName: 'backup-0123456789abcdef',
      volumeName: 'pvc-1',
    });
    expect(() => decodeBackupUrl('s3://bkt@us-east-1/?volume=pvc-1')).toThrow(/missing backup=/);
    expect(() => decodeBackupUrl('s3://bkt@us-east-1/?backup=b1')).toThrow(/missing volume=/);
    expect(() => decodeBackupUrl('s3://bkt@us-east-1/')).toThrow(/expected <target>\?backup=/);
  });
});

describe('incremental restore diff', () => {
  it('writes new and changed blocks, zeroes removed ones, skips identical ones', () => {
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    const c = 'c'.repeat(64);
    const steps = diffBlockMaps(
      [
        { offset: 0, checksum: a },
        { offset: 100, checksum: b },
        { offset: 200, checksum: c },
      ],
      [
        { offset: 0, checksum: a },
        { offset: 100, checksum: c },
        { offset: 300, checksum: a },
      ],
    );
    expect(steps).toEqual([
      { kind: 'write', block: { offset: 100, checksum: c } },
      { kind: 'zero', offset: 200 },
      { kind: 'write', block: { offset: 300, checksum: a } },
    ]);
  });
});
