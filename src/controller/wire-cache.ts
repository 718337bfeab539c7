/**
 * Encoded bytes of flow-mods built by coat, kept beside the objects so that sending a desired flow
 * again (every reconcile, every bundle) copies bytes and patches the xid instead of re-encoding.
 * `coatFlowMod` encodes each flow once anyway, to hash it into its cookie (cookies.ts).
 *
 * Only objects registered here take the fast path, and they are frozen when registered, so the
 * bytes can never disagree with the object. Everything else goes through the codec.
 */
import { encodeMessage, ONF_EXPERIMENTER_ID, ONF_ET, OFPT, OFP_VERSION, type OfpMessage } from '../openflow/index.js';

const encoded = new WeakMap<object, Buffer>();

/** Registers `bytes` (with any xid) as the encoding of `msg`, and freezes `msg`. */
export function rememberEncoding<M extends OfpMessage>(msg: M, bytes: Buffer): M {
  encoded.set(msg, bytes);
  return Object.freeze(msg);
}

/** The bytes registered for `msg` (xid as registered), if any. */
export function cachedEncoding(msg: OfpMessage): Buffer | undefined {
  return encoded.get(msg);
}

/** ONF EXT-230 `ofp_bundle_add_msg` header: ofp_header, experimenter, exp_type, bundle_id, pad[2], flags. */
const BUNDLE_ADD_PREFIX = 24;

/** The wire bytes of `msg` carrying `xid` (and, for a bundle add, the same xid inside). */
export function encodeWithXid(msg: OfpMessage, xid: number): Buffer {
  if (msg.type === 'bundle_add') {
    const inner = encoded.get(msg.message);
    if (!inner || msg.properties.length > 0) return encodeMessage({ ...msg, xid, message: { ...msg.message, xid } });
    const b = Buffer.allocUnsafe(BUNDLE_ADD_PREFIX + inner.length);
    b[0] = OFP_VERSION;
    b[1] = OFPT.experimenter;
    b.writeUInt16BE(b.length, 2);
    b.writeUInt32BE(xid, 4);
    b.writeUInt32BE(ONF_EXPERIMENTER_ID, 8);
    b.writeUInt32BE(ONF_ET.bundle_add, 12);
    b.writeUInt32BE(msg.bundleId, 16);
    b.writeUInt16BE(0, 20);
    b.writeUInt16BE(msg.flags, 22);
    inner.copy(b, BUNDLE_ADD_PREFIX);
    b.writeUInt32BE(xid, BUNDLE_ADD_PREFIX + 4);
    return b;
  }
  const cached = encoded.get(msg);
  if (cached) {
    const b = Buffer.allocUnsafe(cached.length);
    cached.copy(b);
    b.writeUInt32BE(xid, 4);
    return b;
  }
  return encodeMessage(msg.xid === xid ? msg : { ...msg, xid });
}
