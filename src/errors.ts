/**
 * The root of coat's error hierarchy.
 *
 * Every error coat raises on purpose is a `CoatError` with a stable, documented `code` (undici's
 * shape: `lib/core/errors.js`). Callers branch on `code`, never on message text. Subsystems derive
 * their own classes (OpenFlow codec, OVSDB, TCP repair, agent, migration) and document their codes
 * beside them.
 */
export class CoatError extends Error {
  /** Stable machine-readable identifier, e.g. `OFP_TRUNCATED`. Never changes once released. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** A plain object for logs and `--json` output. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [k, v] of Object.entries(this)) {
      if (k !== 'code' && k !== 'name' && k !== 'message') out[k] = typeof v === 'bigint' ? v.toString() : v;
    }
    return out;
  }
}

/** True when `err` is a CoatError carrying `code`. */
export function hasCode(err: unknown, code: string): err is CoatError {
  return err instanceof CoatError && err.code === code;
}
