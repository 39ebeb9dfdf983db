import { describe, expect, it } from 'vitest';
import { classifyAddress, parseHostAddress, targetProblem } from './address-policy.js';

describe('classifyAddress', () => {
  it.each([
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.5', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link_local'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['2606:4700:4700::1111', 'public'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'ipv4_mapped'],
    ['::ffff:7f00:1', 'ipv4_mapped'],
    ['::ffff:8.8.8.8', 'ipv4_mapped'],
    ['::127.0.0.1', 'reserved'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::808:808', 'public'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:a00:1::1', 'private'],
    ['2002:808:808::1', 'public'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
    ['2001:db8::1', 'documentation'],
    ['fc00::1', 'unique_local'],
    ['fd12:3456::1', 'unique_local'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fec0::1', 'reserved'],
    ['ff02::1', 'multicast'],
    ['100::1', 'reserved'],
  ])('%s is %s', (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it('is null for what is not an address', () => {
    expect(classifyAddress('example.com')).toBeNull();
    expect(classifyAddress('1.2.3')).toBeNull();
  });
});

describe('parseHostAddress: every numeric notation a resolver accepts', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0X7F000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0', '0.0.0.0'],
    ['0x0', '0.0.0.0'],
    ['169.254.43518', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['10.0.0.5.', '10.0.0.5'],
    ['[::1]', '::1'],
    ['::FFFF:127.0.0.1', '::ffff:127.0.0.1'],
  ])('%s → %s', (host, address) => {
    expect(parseHostAddress(host)).toBe(address);
  });

  it.each(['example.com', 'hooks.example.com', '1.2.3.4.5', '256.0.0.1', '4294967296', '08.0.0.1', 'localhost', ''])(
    '%s is not numeric',
    (host) => {
      expect(parseHostAddress(host)).toBeNull();
    },
  );
});

describe('targetProblem', () => {
  it.each([
    'http://127.0.0.1:8080/hook',
    'http://localhost/hook',
    'http://LOCALHOST./hook',
    'http://api.localhost/hook',
    'http://printer.local/hook',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://metadata/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://10.0.0.5:8080/hook',
    'http://100.64.1.1/',
    'http://0x7f000001/',
    'http://2130706433/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/',
    'https://[fe80::1]/',
    'http://224.0.0.1/',
  ])('refuses %s', (url) => {
    expect(targetProblem(url, false)).not.toBeNull();
    // The operator flag for on-premises receivers lifts the address rules.
    expect(targetProblem(url, true)).toBeNull();
  });

  it.each(['https://hooks.example.com/edgeplane', 'http://8.8.8.8/x', 'https://[2606:4700:4700::1111]/', 'https://example.com./'])(
    'allows %s',
    (url) => {
      expect(targetProblem(url, false)).toBeNull();
    },
  );

  it('names what it refuses', () => {
    expect(targetProblem('http://0x7f000001/', false)).toBe('127.0.0.1 is a loopback address');
    expect(targetProblem('http://169.254.169.254/', false)).toBe('169.254.169.254 is a link-local address');
    expect(targetProblem('http://[::ffff:127.0.0.1]/', false)).toMatch(/ is an ipv4-mapped address$/);
    expect(targetProblem('ftp://example.com/', true)).toBe('must be an http or https URL');
  });
});
