/**
 * A real ovs-vswitchd reaching coat over TCP and over TLS (OVS `set-ssl`, mutual certificates),
 * and coat connecting to OVS listening on `ptcp:`. OVS runs in its own namespace (netdev
 * datapath), joined to ours by a veth with link-local addresses.
 */
import t from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { join } from 'node:path';
import { newTag } from '../../lab/tag.js';
import { Controller } from '../../src/controller/index.js';
import { addBridge, linkToSwitchNs, makePki, startSwitchOvs } from './helpers.js';

const DPID = 0xc0a70005n;

t.test('OVS connects to coat over TCP', async (t) => {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const { controllerIp } = await linkToSwitchNs(t, ovs, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const l = await ctl.listen(`ptcp:0:${controllerIp}`);
  const port = /^ptcp:(\d+):/.exec(l.address)![1];
  const up = ctl.waitForSwitch(DPID, 15_000);
  await ovs.vsctl(['set-controller', br, `tcp:${controllerIp}:${port}`]);
  const sw = await up;
  t.match(sw.peer, /^169\.254\./);
  t.ok((await sw.echo()) >= 0);
});

t.test('OVS connects to coat over TLS with certificates from one CA', async (t) => {
  const tag = newTag();
  const pki = await makePki(t);
  const ovs = await startSwitchOvs(t, tag);
  const { controllerIp } = await linkToSwitchNs(t, ovs, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  await ovs.vsctl(['set-ssl', join(pki.dir, 'sw.key'), join(pki.dir, 'sw.crt'), join(pki.dir, 'ca.crt')]);
  const ctl = new Controller({ tls: pki.ctl });
  t.teardown(() => ctl.close());
  const l = await ctl.listen(`pssl:0:${controllerIp}`);
  const port = /^pssl:(\d+):/.exec(l.address)![1];
  const up = ctl.waitForSwitch(DPID, 15_000);
  await ovs.vsctl(['set-controller', br, `ssl:${controllerIp}:${port}`]);
  const sw = await up;
  t.equal(sw.dpid, DPID, 'handshake over TLS');
  t.ok((await sw.echo()) >= 0);
});

t.test('coat connects to OVS listening on ptcp:', async (t) => {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const { switchIp } = await linkToSwitchNs(t, ovs, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  await ovs.vsctl(['set-controller', br, `ptcp:6653:${switchIp}`]);
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  let sw: Awaited<ReturnType<typeof ctl.connect>>;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      sw = await ctl.connect(`tcp:${switchIp}:6653`);
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100)); // OVS opens its listener shortly after set-controller
    }
  }
  t.equal(sw.dpid, DPID);
});

t.test('coat connects to OVS listening on pssl: (mutual TLS); a certificate from another CA is refused', async (t) => {
  const tag = newTag();
  const pki = await makePki(t);
  const ovs = await startSwitchOvs(t, tag);
  const { switchIp } = await linkToSwitchNs(t, ovs, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  await ovs.vsctl(['set-ssl', join(pki.dir, 'sw.key'), join(pki.dir, 'sw.crt'), join(pki.dir, 'ca.crt')]);
  await ovs.vsctl(['set-controller', br, `pssl:6653:${switchIp}`]);

  // A controller whose certificate another CA signed: OVS ends the TLS handshake.
  const rogue = new Controller({ tls: pki.rogue });
  t.teardown(() => rogue.close());
  const ctl = new Controller({ tls: pki.ctl });
  t.teardown(() => ctl.close());
  let sw: Awaited<ReturnType<typeof ctl.connect>>;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      sw = await ctl.connect(`ssl:${switchIp}:6653`, { timeoutMs: 3000 });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100)); // OVS opens its listener shortly after set-controller
    }
  }
  t.equal(sw.dpid, DPID, 'handshake over TLS, coat the active side');
  t.ok((await sw.echo()) >= 0);
  const refused = await rogue.connect(`ssl:${switchIp}:6653`, { timeoutMs: 3000 }).then(
    () => undefined,
    (err: unknown) => err as { code?: string; message?: string },
  );
  t.match(refused, { code: 'OFC_CLOSED', message: /unknown ca/ }, 'the rogue controller got no switch, and says why: OVS did not know its CA');
  t.notOk(rogue.switches.size, 'and has none');
});
