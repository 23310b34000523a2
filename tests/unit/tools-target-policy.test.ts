// to-http's address policy: every IPv4 and IPv6 range that must not be a delivery target, the
// forms that smuggle an IPv4 address inside IPv6, and parsing that fails closed.

import { classifyAddress, isForbiddenAddress, parseIPv4, parseIPv6 } from '../../tools/target-policy';

describe('classifyAddress', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['192.0.0.8', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
  ])('IPv4 %s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
    expect(isForbiddenAddress(ip)).toBe(true);
  });

  it.each(['8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '169.253.0.1', '192.167.1.1', '11.0.0.1', '126.255.255.255', '128.0.0.1', '223.255.255.255'])(
    'IPv4 %s is public',
    (ip) => {
      expect(classifyAddress(ip)).toBe('public');
      expect(isForbiddenAddress(ip)).toBe(false);
    },
  );

  it.each([
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['[::1]', 'loopback'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['100::1', 'reserved'],
    // IPv4 inside IPv6 is judged by the IPv4 address
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::FFFF:10.1.2.3', 'private'],
    ['0:0:0:0:0:ffff:192.168.0.1', 'private'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::127.0.0.1', 'loopback'],
    ['::ffff:0:127.0.0.1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
  ])('IPv6 %s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
    expect(isForbiddenAddress(ip)).toBe(true);
  });

  it.each(['2001:4860:4860::8888', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', 'fbff::1', 'fe7f::1'])('IPv6 %s is public', (ip) => {
    expect(classifyAddress(ip)).toBe('public');
  });

  it.each(['', 'localhost', '127.1', '0x7f.0.0.1', '017.0.0.1', '127.0.0.256', '1.2.3', '1.2.3.4.5', ':::1', '1::2::3', '12345::1', '1:2:3:4:5:6:7:8:9', 'g::1', '::ffff:1.2.3', '1.2.3.4::'])(
    '%j is not an address, and so refused',
    (ip) => {
      expect(classifyAddress(ip)).toBe('invalid');
      expect(isForbiddenAddress(ip)).toBe(true);
    },
  );
});

describe('parsers', () => {
  it('parse the usual spellings', () => {
    expect(parseIPv4('192.0.2.1')).toEqual([192, 0, 2, 1]);
    expect(parseIPv6('2001:db8::1')).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    expect(parseIPv6('1:2:3:4:5:6:7:8')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(parseIPv6('1::')).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(parseIPv6('1:2:3:4:5:6:1.2.3.4')).toEqual([1, 2, 3, 4, 5, 6, 0x102, 0x304]);
    expect(parseIPv6('1:2:3:4:5:6:7::')).toEqual([1, 2, 3, 4, 5, 6, 7, 0]);
    expect(parseIPv6('1:2:3:4:5:6:7:8::')).toBeNull();
  });
});
