import { describe, expect, it } from 'vitest';
import { formatReplicaAddress, parseHostPort, parseReplicaAddress } from '../../dataplane/util/address.js';
import { formatSize, parseSize, parseVolumeSize } from '../../dataplane/util/size.js';

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['512Mi', 512 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['10G', 10e9],
    ['3Ki', 3072],
    ['2Ti', 2 * 2 ** 40],
  ])('%s → %d', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(['', 'abc', '1.5Gi', '-1', '10X', 'Gi'])('rejects %j', (text) =>
    expect(() => parseSize(text)).toThrow(/invalid size/),
  );

  it('rounds volume sizes up to the 4 KiB block, so decimal sizes work', () => {
    expect(parseVolumeSize('1Gi')).toBe(2 ** 30);
    expect(parseVolumeSize('8G')).toBe(8e9); // 8e9 = 4096 × 1953125
    expect(parseVolumeSize('10G')).toBe(10_000_003_072); // 10e9 rounded up to the next 4096 multiple
    expect(parseVolumeSize('1000')).toBe(4096);
  });

  it('refuses a zero size', () => {
    expect(() => parseVolumeSize('0')).toThrow(/must be positive/);
  });

  it('formats binary sizes back', () => {
    expect(formatSize(2 ** 30)).toBe('1Gi');
    expect(formatSize(512 * 2 ** 20)).toBe('512Mi');
    expect(formatSize(1000)).toBe('1000');
  });
});

describe('addresses', () => {
  it('parses HOST:PORT and [v6]:PORT', () => {
    expect(parseHostPort('127.0.0.1:9500')).toEqual({ host: '127.0.0.1', port: 9500 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
  });
  it.each(['127.0.0.1', ':80', 'host:99999', 'host:x'])('rejects %j', (t) => expect(() => parseHostPort(t)).toThrow());
  it('round-trips replica addresses', () => {
    expect(formatReplicaAddress(parseReplicaAddress('tcp://10.0.0.1:9502'))).toBe('tcp://10.0.0.1:9502');
    expect(() => parseReplicaAddress('10.0.0.1:9502')).toThrow(/tcp:\/\//);
  });
});
