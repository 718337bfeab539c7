/**
 * The controller against a real ovs-vswitchd (netdev datapath, own ovsdb-server): handshake and
 * features, echo, port status, a coat flow seen by ovs-ofctl, packet-in from a namespace,
 * packet-out captured in a namespace, a typed error tied to a bad flow-mod, roles and async config.
 */
import t, { type Test } from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { Controller, coatFlowMods, OfpErrorReply, COAT_COOKIE, type SwitchConnection } from '../../src/controller/index.js';
import { applyActions, output, match, flowMod, OFPP, OFPPR, OFPFF, OFPRR, type FlowRemoved, type PacketIn, type PortStatus } from '../../src/openflow/index.js';
import { addBridge, addNsPort, dumpFlows, startSwitchOvs } from './helpers.js';

const DPID = 0x00000000c0a70001n;

async function setup(t: Test) {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  const ctl = new Controller({ echoIntervalMs: 200, deadAfterMs: 2000 });
  t.teardown(() => ctl.close());
  const sock = join(ovs.dir, 'coat-ctl.sock');
  await ctl.listen(`punix:${sock}`);
  const up = ctl.waitForSwitch(DPID, 10_000);
  await ovs.vsctl(['set-controller', br, `unix:${sock}`]);
  const sw = await up;
  return { tag, ovs, br, ctl, sw };
}


t.test('handshake, features, ports, echo, flows, packet-in/out, errors against real OVS', async (t) => {
  const { tag, ovs, br, ctl, sw } = await setup(t);

  t.test('features: dpid as bigint, port descriptions', async (t) => {
    t.equal(sw.dpid, DPID, 'dpid from FEATURES_REPLY, as bigint');
    t.equal(typeof sw.dpid, 'bigint');
    t.ok(sw.features!.nTables > 0);
    t.ok([...sw.ports.values()].some((p) => p.portNo === OFPP.local && p.name === br), 'the bridge LOCAL port is described');
  });

  t.test('echo round trip and keepalive traffic', async (t) => {
    const rtt = await sw.echo(Buffer.from('ping'));
    t.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt} ms`);
  });

  // Ports are made here, not in a subtest: their teardown belongs to the whole test.
  const seen = new Promise<PortStatus>((resolve) => sw.on('port_status', (m) => m.reason === OFPPR.add && m.port.portNo === 1 && resolve(m)));
  const a = await addNsPort(t, ovs, br, tag, 1, 1);
  const b = await addNsPort(t, ovs, br, tag, 2, 2);

  t.test('port status for a port added to the bridge', async (t) => {
    const ps = await seen;
    t.equal(ps.port.name, a.brIf);
    t.equal(sw.ports.get(1)?.name, a.brIf, 'ports map follows PORT_STATUS');
  });

  t.test('a coat flow is seen by ovs-ofctl dump-flows', async (t) => {
    const desired = coatFlowMods([
      { band: 'forward', rank: 1, match: match({ in_port: 1 }), instructions: [applyActions(output('controller'))] },
      { band: 'forward', rank: 1, match: match({ in_port: 2 }), instructions: [applyActions(output(1))] },
    ]);
    const r = await ctl.setDesiredFlows(DPID, desired);
    t.match(r, { added: 2, deleted: 0, kept: 0 });
    const flows = await dumpFlows(ovs, br);
    t.equal(flows.length, 2, flows.join('\n'));
    t.ok(flows.some((f) => /priority=1001,in_port=1 actions=CONTROLLER:65535/.test(f) && f.includes(`cookie=0x${desired[0]!.cookie.toString(16)}`)), flows.join('\n'));
    t.ok(flows.every((f) => f.includes('cookie=0xc0a7')), 'in coat cookie space');
    const again = await sw.reconcile(desired);
    t.match(again, { added: 0, deleted: 0, kept: 2, mode: 'none' }, 'reconciling again changes nothing');
  });

  t.test('a packet sent into a bridge port arrives as packet-in', async (t) => {
    const got = new Promise<PacketIn>((resolve) => ctl.on('packet_in', (_sw, m) => resolve(m)));
    // An ARP request for a neighbour: the namespace's first frame out of its port 1.
    await exec('ping', ['-c', '1', '-W', '1', '10.99.0.99'], { netns: a.ns, allowFailure: true, timeoutMs: 5000 });
    const pin = await got;
    const inPort = pin.match.find((f) => f.field === 'in_port');
    t.equal(inPort && 'value' in inPort ? inPort.value : undefined, 1, 'in_port 1');
    t.equal(pin.data.subarray(6, 12).toString('hex'), a.mac.replace(/:/g, ''), 'source MAC is the namespace interface');
    t.equal(pin.data.readUInt16BE(12), 0x0806, 'ARP');
  });

  t.test('a packet-out leaves by the port asked, and only by it', async (t) => {
    const marker = `coat-${tag}-pktout`;
    /** tcpdump in a namespace, started and listening before the packet is sent (Faucet's rule). */
    const capture = async (ns: string, ifname: string) => {
      const p = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-l', '-n', '-i', ifname, '-A', 'ether proto 0x88b5'], { stdio: ['ignore', 'pipe', 'pipe'] });
      t.teardown(() => p.kill('SIGKILL'));
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
        p.stderr.on('data', (d: Buffer) => d.toString().includes('listening on') && (clearTimeout(timer), resolve()));
      });
      return { text: () => out, stop: () => p.kill('SIGINT') };
    };
    const onB = await capture(b.ns, b.nsIf);
    const onA = await capture(a.ns, a.nsIf);
    const frame = Buffer.concat([Buffer.from('ffffffffffff' + '020000000099' + '88b5', 'hex'), Buffer.from(marker.padEnd(50, '.'))]);
    // A broadcast frame "from port 1" sent out of port 2 only.
    sw.packetOut(frame, [output(2)], 1);
    await sw.barrier();
    const deadline = Date.now() + 5000;
    while (!onB.text().includes(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // time for a wrong copy to reach port 1, if any
    onA.stop();
    onB.stop();
    t.match(onB.text(), marker, 'the frame was captured on port 2');
    t.notMatch(onA.text(), marker, 'and not on port 1');
  });

  t.test('a flow that times out comes back as flow-removed, cookie and reason intact', async (t) => {
    const [fm] = coatFlowMods([{ band: 'redirect', match: match({ in_port: 2, eth_type: 0x88b5 }), instructions: [], hardTimeout: 1, flags: OFPFF.send_flow_rem }]);
    const removed = new Promise<FlowRemoved>((resolve) => ctl.on('flow_removed', (_sw, m) => m.cookie === fm!.cookie && resolve(m)));
    await sw.sendConfirmed([fm!]);
    const m = await removed;
    t.equal(m.reason, OFPRR.hard_timeout);
    t.equal(m.priority, fm!.priority);
    t.same(m.match, fm!.match);
  });

  t.test('an OFPT_ERROR from a bad flow-mod is a typed error tied to that flow-mod', async (t) => {
    // tcp_dst without ip_proto=6: OpenFlow 1.3.5 §7.2.3.6 prerequisite missing -> BAD_MATCH/BAD_PREREQ.
    const bad = flowMod({ priority: 5, match: match({ tcp_dst: 80 }), instructions: [applyActions(output(1))] });
    const events: OfpErrorReply[] = [];
    sw.on('ofp_error', (e) => events.push(e));
    const err = await sw.sendConfirmed([flowMod({ priority: 6, cookie: COAT_COOKIE | 1n, match: match({ in_port: 2 }), instructions: [] }), bad]).catch((e: unknown) => e);
    t.match(err, { code: 'OFC_FLOW_MODS' });
    const first = (err as { errors: OfpErrorReply[] }).errors[0]!;
    t.ok(first instanceof OfpErrorReply);
    t.equal(first.code, 'OFC_ERROR_REPLY');
    t.match(first.errorName, /^bad_match\//);
    t.equal(first.request?.type, 'flow_mod');
    t.same((first.request as typeof bad).match, bad.match, 'the error carries the offending request');
    t.equal(events.length, 1, 'and is emitted as an ofp_error event');
    await sw.sendConfirmed([{ ...flowMod({ command: 'delete_strict', priority: 6, match: match({ in_port: 2 }) }), tableId: 0 }]);
  });

  t.test('request/reply: role and async config', async (t) => {
    const role = await ctl.requestRole(DPID, 'master');
    t.equal(role.role, 'master');
    const stale = await sw.requestRole('master', role.generationId - 10n).catch((e: unknown) => e);
    t.match(stale, { code: 'OFC_ERROR_REPLY', errorName: 'role_request_failed/stale' }, 'older generation id refused');
    const eq = await sw.requestRole('equal');
    t.equal(eq.role, 'equal');
    sw.setAsync({ packetIn: [0x7, 0x0], portStatus: [0x7, 0x7], flowRemoved: [0xf, 0x0] });
    const cfg = await sw.getAsync();
    t.same(cfg.packetInMask, [0x7, 0x0]);
    t.same(cfg.flowRemovedMask, [0xf, 0x0]);
  });
});

export type { SwitchConnection };
