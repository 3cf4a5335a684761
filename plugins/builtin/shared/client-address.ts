// The client's address for per-IP policies. The TCP peer is the client unless it is a trusted proxy;
// then X-Forwarded-For is read from the right, skipping trusted hops, and the first untrusted address
// is the client (nginx's real_ip_recursive). Addresses a client wrote further left are never trusted:
// anyone can send an X-Forwarded-For header.
import { BlockList, isIP } from 'node:net';

/** A set of CIDR ranges (IPv4 and IPv6; IPv4-mapped IPv6 addresses match their IPv4 form). */
export class AddressSet {
  readonly #list = new BlockList();
  readonly empty: boolean;

  /** `cidrs`: "10.0.0.0/8", "fd00::/8", or single addresses. Throws a message naming a bad entry. */
  constructor(cidrs: readonly string[]) {
    this.empty = cidrs.length === 0;
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const family = isIP(addr);
      if (family === 0) throw new Error(`"${c}" is not an IP address or CIDR range`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.#list.addAddress(addr, type);
      else {
        const prefix = Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`"${c}" has an invalid prefix length`);
        this.#list.addSubnet(addr, prefix, type);
      }
    }
  }

  has(address: string): boolean {
    const a = unmap(address);
    const family = isIP(a);
    return family !== 0 && this.#list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export class TrustedProxies extends AddressSet {
  /** The client behind `peer`, given the X-Forwarded-For value the proxy saw (or undefined). */
  clientOf(peer: string, xff: string | undefined): string {
    const p = unmap(peer);
    if (this.empty || xff === undefined || !this.has(p)) return p;
    let end = xff.length;
    while (end > 0) {
      const comma = xff.lastIndexOf(',', end - 1);
      const hop = unmap(xff.slice(comma + 1, end).trim());
      if (isIP(hop) === 0) return p; // garbage: fall back to the peer rather than trust it
      if (!this.has(hop)) return hop;
      end = comma < 0 ? 0 : comma;
    }
    return p;
  }
}

/** "::ffff:10.1.2.3" (an IPv4 client on a dual-stack socket) is 10.1.2.3. */
export function unmap(a: string): string {
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}
