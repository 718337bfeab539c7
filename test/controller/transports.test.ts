/**
 * Transports: passive TCP and TLS (mutual certificates from a CA made for the test), active TCP
 * to a switch that listens, and active unix-socket connection to a real ovs-vswitchd listening
 * on `punix:` that reconnects after the switch is killed and restarted.
 */
import t, { type Test } from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../../src/exec.js';
import { newTag } from '../../lab/tag.js';
import { Controller, coatFlowMods, type TlsOptions } from '../../src/controller/index.js';
import { applyActions, match, output } from '../../src/openflow/index.js';
import { FakeSwitch } from './fake-switch.js';
import { addBridge, dumpFlows, startSwitchOvs } from './helpers.js';

/** A CA and two certificates it signed (controller, switch), EC P-256, valid one day. */
async function makePki(t: Test): Promise<{ ctl: TlsOptions; sw: TlsOptions; rogue: TlsOptions }> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ossl = (args: string[]) => exec('openssl', args, { timeoutMs: 20_000 });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = async (name: string) => ossl(['req', '-x509', ...key, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-days', '1', '-subj', `/CN=${name}`]);
  await ca('ca');
  await ca('rogue-ca');
  for (const [name, caName] of [['ctl', 'ca'], ['sw', 'ca'], ['rogue', 'rogue-ca']] as const) {
    await ossl(['req', ...key, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    await ossl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, `${caName}.crt`), '-CAkey', join(dir, `${caName}.key`), '-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '1']);
  }
  const load = async (name: string, caName: string): Promise<TlsOptions> => ({
    key: await readFile(join(dir, `${name}.key`)),
    cert: await readFile(join(dir, `${name}.crt`)),
    ca: await readFile(join(dir, `${caName}.crt`)),
  });
  return { ctl: await load('ctl', 'ca'), sw: await load('sw', 'ca'), rogue: await load('rogue', 'ca') };
}

t.test('passive TCP on an ephemeral loopback port', async (t) => {
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const l = await ctl.listen('ptcp:0:127.0.0.1');
  const port = Number(/^ptcp:(\d+):/.exec(l.address)![1]);
  t.ok(port > 0, l.address);
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  const fake = FakeSwitch.over(s, { dpid: 0x7001n });
  t.teardown(() => fake.close());
  const sw = await ctl.waitForSwitch(0x7001n);
  t.match(sw.peer, /^127\.0\.0\.1:\d+$/);
  t.ok((await sw.echo()) >= 0);
});

t.test('passive TLS with mutual certificates; a certificate from another CA is refused', async (t) => {
  const pki = await makePki(t);
  const ctl = new Controller({ tls: pki.ctl });
  t.teardown(() => ctl.close());
  const l = await ctl.listen('pssl:0:127.0.0.1');
  const port = Number(/^pssl:(\d+):/.exec(l.address)![1]);
  const s = tls.connect({ host: '127.0.0.1', port, ...pki.sw, checkServerIdentity: () => undefined });
  await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
  t.equal(s.getPeerCertificate().subject.CN, 'ctl', 'the switch sees the controller certificate');
  const fake = FakeSwitch.over(s, { dpid: 0x7002n });
  t.teardown(() => fake.close());
  const sw = await ctl.waitForSwitch(0x7002n);
  t.equal(sw.dpid, 0x7002n);
  t.ok((await sw.echo()) >= 0, 'echo over TLS');

  const rogue = tls.connect({ host: '127.0.0.1', port, key: pki.rogue.key, cert: pki.rogue.cert, ca: pki.sw.ca, checkServerIdentity: () => undefined });
  const outcome = await new Promise<string>((resolve) => {
    rogue.once('error', (e) => resolve(`error: ${e.message}`));
    rogue.once('close', () => resolve('closed'));
    rogue.once('data', () => resolve('data'));
  });
  t.notMatch(outcome, 'data', `rogue switch got nowhere (${outcome})`);
  t.equal(ctl.switches.size, 1);
});

t.test('active TCP to a switch that listens', async (t) => {
  const server = net.createServer((s) => fakes.push(FakeSwitch.over(s, { dpid: 0x7003n })));
  const fakes: FakeSwitch[] = [];
  t.teardown(() => (fakes.forEach((f) => f.close()), server.close()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const sw = await ctl.connect(`tcp:127.0.0.1:${port}`);
  t.equal(sw.dpid, 0x7003n);
  t.equal(ctl.switch(0x7003n), sw);
  await t.rejects(ctl.listen(`tcp:127.0.0.1:${port}`), { code: 'OFC_ENDPOINT' }, 'listen wants a passive method');
});

t.test('active unix connection to a real ovs-vswitchd on punix:, reconnecting after a restart', async (t) => {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const dpid = 0xc0a70003n;
  const br = await addBridge(ovs, { dpid: dpid.toString(16).padStart(16, '0') });
  // OVS accepts punix: controller targets only as RUNDIR/BRIDGE.* (so it never overwrites a file).
  const sock = join(ovs.dir, `${br}.coat`);
  await ovs.vsctl(['set-controller', br, `punix:${sock}`]);
  const { OvsInstance } = await import('../../lab/ovs-daemons.js');
  await OvsInstance.waitFor('the punix socket', () => OvsInstance.exists(sock), 10_000);
  const ctl = new Controller({ reconnectMinMs: 50, reconnectMaxMs: 500 });
  t.teardown(() => ctl.close());
  const desired = coatFlowMods([{ band: 'control', match: match({ eth_type: 0x0806 }), instructions: [applyActions(output('controller'))] }]);
  await ctl.setDesiredFlows(dpid, desired);
  const sw = await ctl.connect(`unix:${sock}`, { reconnect: true });
  t.equal(sw.dpid, dpid);
  await OvsInstance.waitFor('coat flow installed', async () => (await dumpFlows(ovs, br)).length === 1, 5000);

  const up = new Promise<{ reconnect: boolean; resync?: { added: number } }>((resolve) => ctl.once('switch_up', (_sw, info) => resolve(info)));
  await ovs.stopDaemon('ovs-vswitchd', 'SIGKILL');
  await ovs.startVswitchd();
  const info = await up;
  t.equal(info.reconnect, true, 'the retry loop reconnected and recognised the dpid');
  t.match(info.resync, { added: 1 });
  t.match((await dumpFlows(ovs, br))[0], /priority=40000,arp actions=CONTROLLER:65535/);
});
