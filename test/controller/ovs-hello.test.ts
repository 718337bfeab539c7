/**
 * Version negotiation against a real ovs-vswitchd (OpenFlow 1.3.5 §6.3.1), and the controller's
 * log lines: three bridges of one OVS dial coat, each on its own socket. The one allowing only
 * OpenFlow 1.0 and the one allowing only 1.4 are refused with OFPT_ERROR HELLO_FAILED/INCOMPATIBLE
 * (OVS logs receiving it); the one allowing 1.0 and 1.3 negotiates 1.3 and comes up. Every line the
 * controller logs is JSON from a pino child logger; the lines about the switch that came up carry
 * its dpid as 16 hex digits.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { pino } from 'pino';
import { newTag } from '../../lab/tag.js';
import { Controller, coatFlowMods, type CloseReason } from '../../src/controller/index.js';
import { applyActions, match, output } from '../../src/openflow/index.js';
import { addBridge, dumpFlows, startSwitchOvs } from './helpers.js';

interface LogLine {
  level: number;
  component?: string;
  endpoint?: string;
  dpid?: string;
  event?: string;
  reason?: string;
  msg?: string;
}

t.test('HELLO: 1.0-only and 1.4-only bridges refused with HELLO_FAILED, 1.0+1.3 negotiates 1.3; logs carry the dpid', async (t) => {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink).child({ component: 'controller' });
  const ctl = new Controller({ logger: log });
  t.teardown(() => ctl.close());

  const bridges = [
    { name: 'br10', protocols: 'OpenFlow10', dpid: 0xc0a70010n },
    { name: 'br14', protocols: 'OpenFlow14', dpid: 0xc0a70014n },
    { name: 'br13', protocols: 'OpenFlow10,OpenFlow13', dpid: 0xc0a70013n },
  ];
  const failures = new Map<string, CloseReason>();
  const refused = new Promise<void>((resolve) =>
    ctl.on('connection_failed', (peer, reason) => {
      if (!failures.has(peer)) failures.set(peer, reason);
      if (failures.size >= 2) resolve();
    }),
  );
  const up = ctl.waitForSwitch(0xc0a70013n, 15_000);
  for (const b of bridges) {
    const sock = join(ovs.dir, `coat-${b.name}.sock`);
    await ctl.listen(`punix:${sock}`);
    await addBridge(ovs, { name: b.name, dpid: b.dpid.toString(16).padStart(16, '0'), protocols: b.protocols });
    await ovs.vsctl(['set-controller', b.name, `unix:${sock}`]);
  }

  const sw = await up;
  t.equal(sw.dpid, 0xc0a70013n, 'the bridge offering 1.0 and 1.3 came up (1.3 negotiated)');
  let guard: NodeJS.Timeout | undefined;
  await Promise.race([refused, new Promise((_r, reject) => (guard = setTimeout(() => reject(new Error('two refusals not seen in 15 s')), 15_000)))]).finally(() => clearTimeout(guard));
  const f10 = failures.get(`unix:${join(ovs.dir, 'coat-br10.sock')}`);
  const f14 = failures.get(`unix:${join(ovs.dir, 'coat-br14.sock')}`);
  t.match(f10, { code: 'OFC_HANDSHAKE', message: /version negotiation failed: .*peer offered (version 1|versions \[1\])/ }, 'the 1.0-only bridge');
  t.match(f14, { code: 'OFC_HANDSHAKE', message: /version negotiation failed: .*peer offered versions \[5\]/ }, 'the 1.4-only bridge');
  t.equal(ctl.switches.size, 1, 'only the 1.3 bridge is a switch');
  t.notOk(ctl.switches.has(0xc0a70010n));
  t.notOk(ctl.switches.has(0xc0a70014n));

  // OVS's own view: it read coat's HELLO and found no common version (coat offers 1.3 only).
  const vlog = await readFile(join(ovs.dir, 'ovs-vswitchd.log'), 'utf8');
  t.match(vlog, /coat-br10\.sock: version negotiation failed \(we support version 0x01, peer supports version 0x04\)/);
  t.match(vlog, /coat-br14\.sock: version negotiation failed \(we support version 0x05, peer supports version 0x04\)/);

  // The exact bytes coat answers a 1.0 HELLO with, decoded by Open vSwitch's own printer: our
  // HELLO (bitmap 1.3), then OFPT_ERROR HELLO_FAILED/INCOMPATIBLE with the explanation, then EOF.
  const rawPath = join(ovs.dir, 'coat-raw.sock');
  await ctl.listen(`punix:${rawPath}`);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(rawPath, () => s.write(Buffer.from('0100000800000042', 'hex'))); // OF1.0 HELLO, xid 0x42
    const timer = setTimeout(() => (s.destroy(), reject(new Error('coat did not close the connection within 5 s'))), 5000);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => (clearTimeout(timer), resolve(Buffer.concat(chunks))));
    s.on('error', (err) => (clearTimeout(timer), reject(err)));
  });
  const printed: string[] = [];
  for (let off = 0; off < raw.length; off += raw.readUInt16BE(off + 2)) {
    printed.push(await ovs.ofctl(['ofp-print', raw.subarray(off, off + raw.readUInt16BE(off + 2)).toString('hex')]));
  }
  t.equal(printed.length, 2, printed.join('\n'));
  t.match(printed[0], /^OFPT_HELLO \(OF1\.3\).*\n\s*version bitmap: 0x04\s*$/s, 'HELLO offering 1.3 only');
  t.match(printed[1], /^OFPT_ERROR \(OF1\.3\) \(xid=0x42\): OFPHFC_INCOMPATIBLE\nwe speak OpenFlow 1\.3 \(0x04\) only; peer offered version 1/, 'HELLO_FAILED tied to the HELLO, with the reason');

  // The negotiated channel works: a flow goes in and is read back.
  await ctl.setDesiredFlows(sw.dpid, coatFlowMods([{ band: 'control', match: match({ eth_type: 0x0806 }), instructions: [applyActions(output('controller'))] }]));
  t.equal((await dumpFlows(ovs, 'br13')).length, 1);

  // Logs: JSON lines from child loggers; the up switch's lines carry its dpid.
  const dpidHex = '00000000c0a70013';
  const upLine = lines.find((l) => l.event === 'switch_up');
  t.match(upLine, { component: 'controller', dpid: dpidHex, endpoint: `unix:${join(ovs.dir, 'coat-br13.sock')}` }, 'switch_up names dpid and endpoint');
  const reconciled = lines.find((l) => l.event === 'reconciled');
  t.match(reconciled, { dpid: dpidHex, component: 'controller' }, 'reconciled names the dpid');
  const failed = lines.filter((l) => l.event === 'connection_failed');
  t.ok(failed.length >= 3, 'each refusal logged');
  t.ok(failed.every((l) => l.reason === 'OFC_HANDSHAKE' && l.dpid === undefined && /version negotiation failed/.test(l.msg ?? '')), 'with the reason, and no dpid (none was learned)');
  t.equal(lines.filter((l) => l.event === 'listening').length, 4, 'one listening line per socket');
});
