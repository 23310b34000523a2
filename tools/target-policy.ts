// Which IP addresses an outbound delivery (to-http) may reach: pure classification of IPv4 and
// IPv6 literals, so a message consumer cannot be aimed at the machine it runs on or its private
// network. Anything that does not parse as an address is refused (fail closed).

export type AddressClass =
  | 'public'
  | 'unspecified' // 0.0.0.0/8, ::
  | 'loopback' // 127/8, ::1
  | 'private' // 10/8, 172.16/12, 192.168/16
  | 'shared' // 100.64/10 (carrier-grade NAT)
  | 'link-local' // 169.254/16, fe80::/10
  | 'unique-local' // fc00::/7
  | 'site-local' // fec0::/10 (deprecated, still routed privately)
  | 'multicast' // 224/4, ff00::/8
  | 'reserved' // 240/4 (and broadcast), 192.0.0/24, 198.18/15, 100::/64
  | 'invalid';

/** Four octets of a strict dotted quad (no leading zeros, which some stacks read as octal), or null. */
export function parseIPv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** Eight 16-bit groups (a zone id such as %eth0 is ignored; a dotted IPv4 tail is allowed), or null. */
export function parseIPv6(text: string): number[] | null {
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s === '' || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    // a dotted IPv4 tail stands for the last two groups
    const v4 = lastColon < 0 ? null : parseIPv4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    const prefix = s.slice(0, lastColon + 1);
    s = prefix.endsWith('::') ? prefix : prefix.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || rest === null) return null;
  const explicit = head.length + rest.length + tail.length;
  if (halves.length === 2 ? explicit > 7 : explicit !== 8) return null;
  return [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...tail];
}

function classifyV4(o: number[]): AddressClass {
  const [a, b, c] = o;
  if (a === 0) return 'unspecified';
  if (a === 10) return 'private';
  if (a === 100 && b >= 64 && b <= 127) return 'shared';
  if (a === 127) return 'loopback';
  if (a === 169 && b === 254) return 'link-local';
  if (a === 172 && b >= 16 && b <= 31) return 'private';
  if (a === 192 && b === 168) return 'private';
  if (a === 192 && b === 0 && c === 0) return 'reserved';
  if (a === 198 && (b === 18 || b === 19)) return 'reserved';
  if (a >= 224 && a <= 239) return 'multicast';
  if (a >= 240) return 'reserved';
  return 'public';
}

function v4From(hi: number, lo: number): number[] {
  return [hi >> 8, hi & 255, lo >> 8, lo & 255];
}

function classifyV6(g: number[]): AddressClass {
  const zeroUpTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g[7] === 1) return 'loopback';
  // Forms that carry an IPv4 address are judged by it: ::ffff:a.b.c.d (mapped), ::a.b.c.d
  // (compatible), ::ffff:0:a.b.c.d (translated), 64:ff9b::a.b.c.d (NAT64), 2002:AABB:CCDD:: (6to4).
  if (zeroUpTo(5) && g[5] === 0xffff) return classifyV4(v4From(g[6], g[7]));
  if (zeroUpTo(6)) return classifyV4(v4From(g[6], g[7]));
  if (zeroUpTo(4) && g[4] === 0xffff && g[5] === 0) return classifyV4(v4From(g[6], g[7]));
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(v4From(g[6], g[7]));
  if (g[0] === 0x2002) return classifyV4(v4From(g[1], g[2]));
  if ((g[0] & 0xfe00) === 0xfc00) return 'unique-local';
  if ((g[0] & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0] & 0xffc0) === 0xfec0) return 'site-local';
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  if (g[0] === 0x100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return 'reserved';
  return 'public';
}

export function classifyAddress(ip: string): AddressClass {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return classifyV4(v4);
  const v6 = parseIPv6(ip);
  return v6 === null ? 'invalid' : classifyV6(v6);
}

/** True unless the address is a public unicast one. */
export function isForbiddenAddress(ip: string): boolean {
  return classifyAddress(ip) !== 'public';
}
