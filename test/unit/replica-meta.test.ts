import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DiskMeta,
  goTimestamp,
  parseDiskMeta,
  serializeDiskMeta,
} from '../../dataplane/replica/store/disk-meta.js';
import {
  decodeRevisionCounter,
  encodeRevisionCounter,
  REVISION_COUNTER_BLOCK_SIZE,
} from '../../dataplane/replica/store/revision-counter.js';
import { parseVolumeMeta, serializeVolumeMeta, type VolumeMeta } from '../../dataplane/replica/store/volume-meta.js';

// What Longhorn's Go code writes (json.NewEncoder(f).Encode: compact, newline-terminated).
const GOLDEN_VOLUME_META =
  '{"Size":10737418240,"Head":"volume-head-003.img","Dirty":true,"Rebuilding":false,"Error":"",' +
  '"Parent":"volume-snap-7f3c.img","SectorSize":512,"BackingFilePath":"","Encrypted":false}\n';
const GOLDEN_SNAPSHOT_META =
  '{"Name":"volume-snap-s1.img","Parent":"volume-snap-s0.img","Removed":false,"UserCreated":true,' +
  '"Created":"2024-05-01T10:00:00Z","Labels":{"a":"1","k":"v"}}\n';
const GOLDEN_HEAD_META =
  '{"Name":"volume-head-000.img","Parent":"","Removed":false,"UserCreated":false,' +
  '"Created":"2024-05-01T10:00:00Z","Labels":null}\n';

const VOLUME_META_KEYS = [
  'Size',
  'Head',
  'Dirty',
  'Rebuilding',
  'Error',
  'Parent',
  'SectorSize',
  'BackingFilePath',
  'Encrypted',
];
const DISK_META_KEYS = ['Name', 'Parent', 'Removed', 'UserCreated', 'Created', 'Labels'];

const volumeMeta: fc.Arbitrary<VolumeMeta> = fc.record({
  size: fc.integer({ min: 0, max: 2 ** 40 }).map((n) => n * 4096),
  head: fc.string(),
  dirty: fc.boolean(),
  rebuilding: fc.boolean(),
  error: fc.string({ unit: 'grapheme' }),
  parent: fc.string(),
  sectorSize: fc.constantFrom(512, 4096),
  backingFilePath: fc.string(),
  encrypted: fc.boolean(),
});

const diskMeta: fc.Arbitrary<DiskMeta> = fc.record({
  name: fc.string(),
  parent: fc.string(),
  removed: fc.boolean(),
  userCreated: fc.boolean(),
  created: fc.string(),
  labels: fc.dictionary(fc.string(), fc.string({ unit: 'binary' }), { noNullPrototype: true }),
});

describe('volume.meta codec', () => {
  it('parses what Longhorn writes and writes it back byte for byte', () => {
    const meta = parseVolumeMeta(GOLDEN_VOLUME_META, 'volume.meta');
    expect(meta).toEqual({
      size: 10737418240,
      head: 'volume-head-003.img',
      dirty: true,
      rebuilding: false,
      error: '',
      parent: 'volume-snap-7f3c.img',
      sectorSize: 512,
      backingFilePath: '',
      encrypted: false,
    });
    expect(serializeVolumeMeta(meta)).toBe(GOLDEN_VOLUME_META);
  });

  it('writes exactly Longhorn Info field names, in struct order', () => {
    fc.assert(
      fc.property(volumeMeta, (meta) => {
        const text = serializeVolumeMeta(meta);
        expect(text.endsWith('}\n')).toBe(true);
        expect(Object.keys(JSON.parse(text))).toEqual(VOLUME_META_KEYS);
      }),
    );
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(volumeMeta, (meta) => {
        expect(parseVolumeMeta(serializeVolumeMeta(meta), 'x')).toEqual(meta);
      }),
    );
  });

  it('decodes like Go: missing fields are zero (SectorSize 512), keys match case-insensitively, unknown keys are ignored', () => {
    const meta = parseVolumeMeta('{"size":4096,"HEAD":"volume-head-000.img","Extra":[1],"Error":null}', 'f');
    expect(meta).toEqual({
      size: 4096,
      head: 'volume-head-000.img',
      dirty: false,
      rebuilding: false,
      error: '',
      parent: '',
      sectorSize: 512,
      backingFilePath: '',
      encrypted: false,
    });
  });

  it('escapes <, > and & as Go does', () => {
    const text = serializeVolumeMeta({ ...parseVolumeMeta(GOLDEN_VOLUME_META, 'f'), error: 'a<b>&c' });
    expect(text).toContain('"Error":"a\\u003cb\\u003e\\u0026c"');
    expect(parseVolumeMeta(text, 'f').error).toBe('a<b>&c');
  });

  it.each([
    { text: '{"Size":', message: /\/dir\/volume.meta: invalid JSON/ },
    { text: '[]', message: /\/dir\/volume.meta: expected a JSON object/ },
    { text: '{"Size":"big"}', message: /\/dir\/volume.meta: field Size must be an integer/ },
    { text: '{"Size":1.5}', message: /field Size must be an integer/ },
    { text: '{"Dirty":"yes"}', message: /field Dirty must be a boolean/ },
    { text: '{"Head":7}', message: /field Head must be a string/ },
  ])('rejects $text with an error naming the file', ({ text, message }) => {
    expect(() => parseVolumeMeta(text, '/dir/volume.meta')).toThrow(message);
  });
});

describe('disk meta codec', () => {
  it('parses what Longhorn writes and writes it back byte for byte', () => {
    const snap = parseDiskMeta(GOLDEN_SNAPSHOT_META, 'f');
    expect(snap).toEqual({
      name: 'volume-snap-s1.img',
      parent: 'volume-snap-s0.img',
      removed: false,
      userCreated: true,
      created: '2024-05-01T10:00:00Z',
      labels: { a: '1', k: 'v' },
    });
    expect(serializeDiskMeta(snap)).toBe(GOLDEN_SNAPSHOT_META);
    const head = parseDiskMeta(GOLDEN_HEAD_META, 'f');
    expect(head.labels).toEqual({});
    expect(serializeDiskMeta(head)).toBe(GOLDEN_HEAD_META);
  });

  it('writes labels sorted by key, as Go orders a map', () => {
    const text = serializeDiskMeta({ ...parseDiskMeta(GOLDEN_HEAD_META, 'f'), labels: { z: '1', b: '2', m: '3' } });
    expect(text).toContain('"Labels":{"b":"2","m":"3","z":"1"}');
  });

  it('writes exactly Longhorn disk field names, in struct order', () => {
    fc.assert(
      fc.property(diskMeta, (meta) => {
        expect(Object.keys(JSON.parse(serializeDiskMeta(meta)))).toEqual(DISK_META_KEYS);
      }),
    );
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(diskMeta, (meta) => {
        expect(parseDiskMeta(serializeDiskMeta(meta), 'x')).toEqual(meta);
      }),
    );
  });

  it.each([
    { text: 'nope', message: /a.img.meta: invalid JSON/ },
    { text: '{"Labels":["x"]}', message: /a.img.meta: field Labels must be an object of strings/ },
    { text: '{"Labels":{"k":1}}', message: /field Labels.k must be a string/ },
    { text: '{"Removed":1}', message: /field Removed must be a boolean/ },
  ])('rejects $text with an error naming the file', ({ text, message }) => {
    expect(() => parseDiskMeta(text, 'a.img.meta')).toThrow(message);
  });

  it('formats Created as Go time.RFC3339 in UTC', () => {
    expect(goTimestamp(new Date(Date.UTC(2024, 4, 1, 10, 0, 0, 789)))).toBe('2024-05-01T10:00:00Z');
  });
});

describe('revision.counter codec', () => {
  it('is the decimal number then NULs, 4096 bytes', () => {
    const block = encodeRevisionCounter(1234);
    expect(block.length).toBe(REVISION_COUNTER_BLOCK_SIZE);
    expect(block.subarray(0, 4).toString('latin1')).toBe('1234');
    expect(block.subarray(4).every((b) => b === 0)).toBe(true);
    expect(encodeRevisionCounter(0).subarray(0, 2)).toEqual(Buffer.from([0x30, 0]));
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        expect(decodeRevisionCounter(encodeRevisionCounter(n), 'rc')).toBe(n);
      }),
    );
  });

  it('reads a short file and NULs on either side, as Longhorn does', () => {
    expect(decodeRevisionCounter(Buffer.from('42'), 'rc')).toBe(42);
    expect(decodeRevisionCounter(Buffer.from('\0\x0042\0\0'), 'rc')).toBe(42);
  });

  it.each(['', '\0\0\0', 'abc', '12x', '1 2', '-1', '99999999999999999999'])('rejects %j', (text) => {
    expect(() => decodeRevisionCounter(Buffer.from(text, 'latin1'), '/r/revision.counter')).toThrow(
      /\/r\/revision.counter: invalid revision counter/,
    );
  });

  it('refuses to encode what it could not decode', () => {
    expect(() => encodeRevisionCounter(-1)).toThrow(RangeError);
    expect(() => encodeRevisionCounter(1.5)).toThrow(RangeError);
  });
});
