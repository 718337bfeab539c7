/**
 * `coat openflow`: the OpenFlow 1.3 codec on files of concatenated messages (see docs/openflow.md).
 *
 *   coat openflow decode FILE [--json]   print every message (JSON: an array, bigint as decimal strings)
 *   coat openflow roundtrip FILE         decode, re-encode, compare: exit 0 identical, 1 differs, 2 malformed
 */
import { readFileSync } from 'node:fs';
import { decodeMessage, encodeMessage, OfpError, type OfpMessage } from '../../openflow/index.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat openflow decode FILE [--json]
       coat openflow roundtrip FILE [--json]

FILE holds whole OpenFlow 1.3 messages back to back, header included (a capture's TCP
payload, a Ryu/Open vSwitch test vector); "-" reads standard input.

  decode      print every message: one line each, or with --json an array of objects, each
              with a "type" field; 64-bit fields as decimal strings, byte fields as hex
  roundtrip   decode, re-encode, compare with the file: prints "identical N messages" and
              exits 0, or names the first differing offset and exits 1

A malformed file (truncated, bad length, unknown type, ...) exits 2 and prints the error's
code, the byte offset and the check that failed.
`;

/** JSON-ready copy: bigint as decimal string, bytes as lower-case hex. */
export function toJsonValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJsonValue(x)]));
  return v;
}

interface Located {
  offset: number;
  length: number;
  message: OfpMessage;
}

/** Decodes a file of concatenated messages; an empty file is malformed (no header at offset 0). */
function decodeFile(bytes: Buffer): Located[] {
  const out: Located[] = [];
  let offset = 0;
  do {
    const message = decodeMessage(bytes, offset);
    const length = bytes.readUInt16BE(offset + 2);
    out.push({ offset, length, message });
    offset += length;
  } while (offset < bytes.length);
  return out;
}

function readInput(path: string): Buffer {
  return path === '-' ? readFileSync(0) : readFileSync(path);
}

function malformed(err: OfpError, json: boolean, io: CliIO): number {
  io.stderr.write(`coat openflow: malformed: ${err.code} (offset ${err.offset}): ${err.message}\n`);
  if (json) writeJson(io.stdout, { error: { code: err.code, offset: err.offset, check: err.check, message: err.message } });
  return ExitCode.badInput;
}

function summary(m: OfpMessage): string {
  const { type, xid, ...rest } = m;
  return `${type} xid=${xid} ${JSON.stringify(toJsonValue(rest))}`;
}

export const command: Command = {
  summary: 'decode or round-trip a file of OpenFlow 1.3 messages',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {});
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    const [verb, file, ...extra] = positionals;
    if (verb !== 'decode' && verb !== 'roundtrip') throw new UsageError(`expected 'decode' or 'roundtrip', got ${verb ?? 'nothing'} (coat openflow --help)`);
    if (file === undefined || extra.length > 0) throw new UsageError(`${verb} takes exactly one FILE`);
    const json = values.json === true;
    let bytes: Buffer;
    try {
      bytes = readInput(file);
    } catch (err) {
      io.stderr.write(`coat openflow: cannot read ${file}: ${(err as Error).message}\n`);
      return ExitCode.badInput;
    }
    let located: Located[];
    try {
      located = decodeFile(bytes);
    } catch (err) {
      if (err instanceof OfpError) return malformed(err, json, io);
      throw err;
    }

    if (verb === 'decode') {
      if (json) writeJson(io.stdout, located.map((l) => toJsonValue(l.message)));
      else for (const l of located) io.stdout.write(`@${l.offset} ${summary(l.message)}\n`);
      return ExitCode.ok;
    }

    const again = Buffer.concat(located.map((l) => encodeMessage(l.message)));
    let diff = -1;
    for (let i = 0; i < Math.max(again.length, bytes.length); i++) {
      if (again[i] !== bytes[i]) {
        diff = i;
        break;
      }
    }
    if (diff < 0) {
      if (json) writeJson(io.stdout, { identical: true, messages: located.length });
      else io.stdout.write(`identical ${located.length} messages\n`);
      return ExitCode.ok;
    }
    const where = located.find((l) => diff >= l.offset && diff < l.offset + l.length) ?? located[located.length - 1]!;
    if (json) writeJson(io.stdout, { identical: false, messages: located.length, firstDifferingOffset: diff, messageOffset: where.offset, messageType: where.message.type });
    else io.stdout.write(`differs at offset ${diff} (in the ${where.message.type} message at offset ${where.offset})\n`);
    return ExitCode.negative;
  },
};
