/**
 * coat's cookie space and priority bands: how coat's flows are told apart from everybody else's.
 *
 * Cookie layout (64 bits, OpenFlow 1.3.5 §7.3.4.1 `ofp_flow_mod.cookie`, "opaque controller-issued
 * identifier"):
 *
 *   63            48 47     40 39                                     0
 *   +---------------+---------+----------------------------------------+
 *   | magic 0xC0A7  | band id | content hash (40 bits of SHA-256)      |
 *   +---------------+---------+----------------------------------------+
 *
 * - The magic marks a flow as coat's: flow-stats requests and deletes carry
 *   `cookie = 0xC0A7 << 48, cookie_mask = 0xFFFF << 48` (§7.3.4.1: "restrict ... to those flows
 *   whose cookie ... matches under the cookie_mask"), so coat never reads nor deletes another
 *   controller's flows (whose cookies are, say, 0).
 * - The band id lets a whole band be removed with one flow-mod (mask 0xFFFFFF << 40).
 * - The content hash makes a flow's cookie a function of what the flow is (its flow-mod's wire
 *   encoding: table, priority, match, instructions, timeouts, flags). Reconciliation then compares cookies only, never matches: a
 *   switch may print a match back normalised (field order, prerequisites, masks), but it returns the
 *   cookie verbatim.
 *
 * Priority bands are named ranges of priorities (Faucet's valve_of priorities, OVN's stages). A flow
 * names its band and its rank inside the band; the band decides the priority on the wire.
 */
import { createHash } from 'node:crypto';
import { ControllerError, ControllerErrorCode } from './errors.js';

export const COAT_COOKIE_MAGIC = 0xc0a7n;
/** `cookie` value selecting coat's flows; use with {@link COAT_COOKIE_MASK}. */
export const COAT_COOKIE = COAT_COOKIE_MAGIC << 48n;
/** Mask selecting the magic bits only: "every coat flow". */
export const COAT_COOKIE_MASK = 0xffffn << 48n;
/** Mask selecting magic and band id: "every coat flow of one band". */
export const COAT_BAND_COOKIE_MASK = 0xffffffn << 40n;
const HASH_MASK = (1n << 40n) - 1n;

export interface PriorityBand {
  name: string;
  /** 1..255, carried in the cookie. */
  id: number;
  /** Lowest priority of the band (rank 0). */
  base: number;
  /** Number of priorities in the band: ranks 0..size-1. */
  size: number;
}

/**
 * coat's default bands, low to high. Everything a migration adds sits above the overlay's
 * forwarding so that hold and redirect win without touching the flows they override; the staged
 * band sits below forwarding so staged flows are present but not yet used.
 */
export const DEFAULT_BANDS: readonly PriorityBand[] = [
  { name: 'table-miss', id: 1, base: 0, size: 1 },
  { name: 'staged', id: 2, base: 100, size: 900 },
  { name: 'forward', id: 3, base: 1000, size: 9000 },
  { name: 'redirect', id: 4, base: 20000, size: 10000 },
  { name: 'hold', id: 5, base: 30000, size: 10000 },
  { name: 'control', id: 6, base: 40000, size: 10000 },
];

export class BandTable {
  private readonly byName = new Map<string, PriorityBand>();

  constructor(bands: readonly PriorityBand[] = DEFAULT_BANDS) {
    const sorted = [...bands].sort((a, b) => a.base - b.base);
    const ids = new Set<number>();
    for (const [i, b] of sorted.entries()) {
      const problem =
        !Number.isInteger(b.id) || b.id < 1 || b.id > 255 ? `id ${b.id} is not in 1..255`
        : ids.has(b.id) ? `id ${b.id} is used twice`
        : this.byName.has(b.name) ? 'name is used twice'
        : !Number.isInteger(b.base) || !Number.isInteger(b.size) || b.size < 1 || b.base < 0 || b.base + b.size > 0x10000 ? `range ${b.base}+${b.size} is not inside 0..65535`
        : i > 0 && sorted[i - 1]!.base + sorted[i - 1]!.size > b.base ? `overlaps band "${sorted[i - 1]!.name}"`
        : undefined;
      if (problem) throw new ControllerError(ControllerErrorCode.Band, `priority band "${b.name}": ${problem}`);
      ids.add(b.id);
      this.byName.set(b.name, b);
    }
  }

  get(name: string): PriorityBand {
    const b = this.byName.get(name);
    if (!b) throw new ControllerError(ControllerErrorCode.Band, `no priority band named "${name}" (have: ${[...this.byName.keys()].join(', ')})`);
    return b;
  }

  /** The wire priority of rank `rank` in band `name`. */
  priority(name: string, rank: number): number {
    const b = this.get(name);
    if (!Number.isInteger(rank) || rank < 0 || rank >= b.size) {
      throw new ControllerError(ControllerErrorCode.Band, `rank ${rank} is outside band "${name}" (0..${b.size - 1})`);
    }
    return b.base + rank;
  }

  /** The band a wire priority falls in, if any. */
  bandOf(priority: number): PriorityBand | undefined {
    for (const b of this.byName.values()) if (priority >= b.base && priority < b.base + b.size) return b;
    return undefined;
  }

  list(): PriorityBand[] {
    return [...this.byName.values()];
  }
}

/** True when `cookie` is in coat's cookie space. */
export function isCoatCookie(cookie: bigint): boolean {
  return (cookie & COAT_COOKIE_MASK) === COAT_COOKIE;
}

/** Band id carried by a coat cookie. */
export function cookieBand(cookie: bigint): number {
  return Number((cookie >> 40n) & 0xffn);
}

/** The cookie selecting one band (use with {@link COAT_BAND_COOKIE_MASK}). */
export function bandCookie(band: PriorityBand): bigint {
  return COAT_COOKIE | (BigInt(band.id) << 40n);
}

/**
 * The coat cookie of a flow whose identity is `wire`: its OFPT_FLOW_MOD encoded with cookie 0 and
 * xid 0 (table, priority, match, instructions, timeouts, flags: everything the switch keeps).
 * Hashing the encoding rather than the object makes the cookie independent of how the object was
 * written, and the encoding is needed anyway to send the flow.
 */
export function flowCookie(band: PriorityBand, wire: Uint8Array): bigint {
  const digest = createHash('sha256').update(wire).digest();
  const hash = digest.readBigUInt64BE(0) & HASH_MASK;
  return bandCookie(band) | hash;
}
