/**
 * `coat openflow decode|roundtrip`, run as a real process (node + tsx on the sources).
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exec } from '../../src/exec.js';
import { main } from '../../src/cli/main.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DATA = '/work/shared/testdata/openflow13';
const dir = mkdtempSync(join(tmpdir(), 'coat-openflow-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** `coat ARGS` as a real process: exit code, stdout and stderr as a user sees them. */
function coatProcess(...args: string[]) {
  const script = `const { main } = await import(${JSON.stringify(join(ROOT, 'src/cli/main.ts'))}); process.exitCode = await main(process.argv.slice(1));`;
  return exec(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], { timeoutMs: 60_000, allowFailure: true });
}

/**
 * `coat ARGS` through the same entry point, in this process (a process costs ~0.7 s of tsx
 * start-up; the first test runs real processes to show exit codes and streams reach the shell).
 */
async function coat(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) => new Writable({ write: (c: Buffer, _e, done) => (into.push(c.toString()), done()) });
  const code = await main(args, { stdout: sink(out), stderr: sink(err) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const names = ['4-4-ofp_packet_in.packet', '4-6-ofp_features_reply.packet', '4-12-ofp_flow_stats_reply.packet', '4-19-ofp_role_request.packet'];
const multi = join(dir, 'multi.bin');
const parts = names.map((n) => readFileSync(join(DATA, n)));
writeFileSync(multi, Buffer.concat(parts));

t.test('decode --json prints an array, one object per message, bigint as decimal strings', async (t) => {
  const r = await coatProcess('openflow', 'decode', multi, '--json');
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>[];
  t.same(out.map((m) => m.type), ['packet_in', 'features_reply', 'multipart_reply', 'role_request']);
  t.equal(out[1]!.datapathId, '9210263729383', 'datapath id as a decimal string');
  t.equal(out[0]!.cookie, '283686884868096');
  t.equal(out[3]!.generationId, '17294086455919964160', 'a value above 2^63 survives');
  t.equal((out[0]!.match as { field: string }[])[0]!.field, 'in_port');
});

t.test('decode without --json prints one line per message with its offset', async (t) => {
  const r = await coat('openflow', 'decode', multi);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 4);
  t.match(lines[1]!, new RegExp(`^@${parts[0]!.length} features_reply xid=0 `));
});

t.test('roundtrip of every golden file prints identical N messages and exits 0', async (t) => {
  const r = await coat('openflow', 'roundtrip', multi);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'identical 4 messages\n');
  const big = await coat('openflow', 'roundtrip', join(DATA, '4-56-ofp_table_features_reply.packet'));
  t.equal(big.stdout, 'identical 1 messages\n');
});

t.test('roundtrip names the first differing offset and exits 1', async (t) => {
  // A non-zero pad byte (port_status pad[7] at offset 9): decodes, but re-encoding writes zero.
  const bytes = Buffer.from(readFileSync(join(DATA, '4-39-ofp_port_status.packet')));
  bytes[9] = 0x77;
  const file = join(dir, 'dirty-pad.bin');
  writeFileSync(file, Buffer.concat([parts[0]!, bytes]));
  const r = await coat('openflow', 'roundtrip', file);
  t.equal(r.code, 1);
  t.equal(r.stdout, `differs at offset ${parts[0]!.length + 9} (in the port_status message at offset ${parts[0]!.length})\n`);
});

t.test('a malformed file exits 2 with the error code and offset', async (t) => {
  const cut = join(dir, 'cut.bin');
  writeFileSync(cut, Buffer.concat([parts[1]!, readFileSync(join(DATA, 'libofproto-OFP13-flow_mod.packet')).subarray(0, 64)]));
  for (const verb of ['decode', 'roundtrip']) {
    const r = await coat('openflow', verb, cut);
    t.equal(r.code, 2, `${verb} exits 2`);
    t.match(r.stderr, new RegExp(`OFP_TRUNCATED \\(offset ${parts[1]!.length}\\)`), `${verb} names code and offset`);
  }
  const viaShell = await coatProcess('openflow', 'decode', cut);
  t.equal(viaShell.code, 2, 'the process exits 2');
  t.match(viaShell.stderr, /OFP_TRUNCATED/);
  const j = await coat('openflow', 'decode', cut, '--json');
  t.same(JSON.parse(j.stdout).error.code, 'OFP_TRUNCATED');
  t.equal(JSON.parse(j.stdout).error.offset, parts[1]!.length);
  const empty = await coat('openflow', 'roundtrip', join(DATA, 'libofproto-OFP13-flow_mod.truncated64'));
  t.equal(empty.code, 2, 'the (empty) truncated golden file is malformed');
  t.match(empty.stderr, /OFP_TRUNCATED \(offset 0\)/);
  const badType = join(dir, 'bad-type.bin');
  writeFileSync(badType, Buffer.from([4, 99, 0, 8, 0, 0, 0, 1]));
  const bt = await coat('openflow', 'decode', badType);
  t.equal(bt.code, 2);
  t.match(bt.stderr, /OFP_BAD_TYPE \(offset 1\)/);
});

t.test('usage errors exit 64', async (t) => {
  t.equal((await coat('openflow')).code, 64);
  t.equal((await coat('openflow', 'decode')).code, 64);
  t.equal((await coat('openflow', 'decode', multi, '--bogus')).code, 64);
  const help = await coat('openflow', '--help');
  t.equal(help.code, 0);
  t.match(help.stdout, /coat openflow roundtrip FILE/);
});
