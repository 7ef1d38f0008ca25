// Which Modbus masters may connect: exact addresses and IPv4 prefixes from `modbusSlave.allowlist`.
// Pure functions, checked once per connection (never per request).

/** "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) -> "10.0.0.1". */
export function normalizeIp(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

const ipv4 = (ip: string): number | null => {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
};

/** Allowlist of exact addresses and IPv4 prefixes ("10.0.0.0/8"). */
export function compileAllowlist(list: readonly string[]): (ip: string) => boolean {
  const exact = new Set<string>();
  const nets: { net: number; mask: number }[] = [];
  for (const item of list) {
    const [addr, bits] = item.split("/");
    const n = ipv4(addr!);
    if (bits !== undefined && n !== null) {
      const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
      nets.push({ net: (n & mask) >>> 0, mask });
    } else exact.add(normalizeIp(item.toLowerCase()));
  }
  return (ip: string) => {
    const norm = normalizeIp(ip.toLowerCase());
    if (exact.has(norm)) return true;
    const n = ipv4(norm);
    return n !== null && nets.some(({ net, mask }) => ((n & mask) >>> 0) === net);
  };
}
