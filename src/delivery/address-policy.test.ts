import { describe, it, expect } from 'vitest';

import { blockedReason, parseNetworks } from './address-policy.js';

const none = parseNetworks([]);

describe('blockedReason', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['224.0.0.1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.0.8', 'IETF protocol assignment'],
    ['198.18.0.1', 'benchmarking'],
    ['192.0.2.1', 'documentation'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fd00:ec2::254', 'unique-local'],
    ['fc00::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['2001::1', 'Teredo'],
    ['2001:db8::1', 'documentation'],
  ])('blocks %s (%s)', (ip, what) => {
    const reason = blockedReason(ip, none);
    expect(reason).not.toBeNull();
    expect(reason).toContain(ip);
    expect(reason).toContain(what);
  });

  it('words the reason for humans', () => {
    expect(blockedReason('127.0.0.1', none)).toBe('127.0.0.1 is a loopback address');
    expect(blockedReason('10.0.0.1', none)).toBe('10.0.0.1 is a private address');
  });

  it.each([
    ['::ffff:10.0.0.1', '10.0.0.1', 'private'],
    ['::ffff:127.0.0.1', '127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', '127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', '169.254.169.254', 'link-local'],
    ['::127.0.0.1', '127.0.0.1', 'loopback'],
    ['64:ff9b::a00:1', '10.0.0.1', 'private'],
    ['64:ff9b::7f00:1', '127.0.0.1', 'loopback'],
    ['2002:0a00:0001::1', '10.0.0.1', 'private'],
    ['2002:a9fe:a9fe::', '169.254.169.254', 'link-local'],
  ])('checks the IPv4 address embedded in %s', (ip, v4, what) => {
    const reason = blockedReason(ip, none);
    expect(reason).toContain(v4);
    expect(reason).toContain(what);
  });

  it('blocks deprecated IPv4-compatible addresses even with a public IPv4 inside', () => {
    expect(blockedReason('::5db8:d822', none)).toContain('IPv4-compatible');
  });

  it.each(['93.184.216.34', '8.8.8.8', '1.1.1.1', '2606:4700::1', '2a00:1450:4001::1', '64:ff9b::5db8:d822', '2002:5db8:d822::1', '::ffff:93.184.216.34'])(
    'allows public address %s',
    (ip) => {
      expect(blockedReason(ip, none)).toBeNull();
    },
  );

  it('refuses input that is not an IP address', () => {
    expect(blockedReason('example.com', none)).toContain('not a valid IP address');
    expect(blockedReason('', none)).not.toBeNull();
  });
});

describe('allowed networks', () => {
  const loopback = parseNetworks(['127.0.0.0/8']);

  it('lets an allowed network through but still blocks everything else', () => {
    expect(blockedReason('127.0.0.1', loopback)).toBeNull();
    expect(blockedReason('127.9.9.9', loopback)).toBeNull();
    expect(blockedReason('10.0.0.1', loopback)).toBe('10.0.0.1 is a private address');
    expect(blockedReason('::1', loopback)).not.toBeNull();
    expect(blockedReason('0.0.0.0', loopback)).not.toBeNull();
  });

  it('matches the IPv4 address inside an IPv4-mapped address, not inside NAT64/6to4', () => {
    expect(blockedReason('::ffff:127.0.0.1', loopback)).toBeNull();
    expect(blockedReason('::ffff:10.0.0.1', loopback)).not.toBeNull();
    expect(blockedReason('64:ff9b::7f00:1', loopback)).not.toBeNull();
    expect(blockedReason('2002:7f00:1::', loopback)).not.toBeNull();
  });

  it('supports IPv6 networks, bare addresses and mapped CIDRs', () => {
    const allow = parseNetworks(['fd00::/8', '::1', '::ffff:10.1.0.0/112']);
    expect(blockedReason('fd00:ec2::254', allow)).toBeNull();
    expect(blockedReason('::1', allow)).toBeNull();
    expect(blockedReason('10.1.2.3', allow)).toBeNull();
    expect(blockedReason('10.2.0.1', allow)).not.toBeNull();
    expect(blockedReason('fe80::1', allow)).not.toBeNull();
  });

  it.each(['10.0.0.0/33', 'not-a-cidr', '10.0.0.0/', '::/129', '300.0.0.0/8', ''])('rejects %j with a clear message', (cidr) => {
    expect(() => parseNetworks([cidr])).toThrow(/invalid network .*expected CIDR notation/);
  });
});
