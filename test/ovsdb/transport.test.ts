/**
 * Transports against a real ovsdb-server: TCP (`ptcp:`), and TLS (`pssl:`, mutual authentication
 * with a throwaway CA made by openssl). Plus the remote-string parser.
 */
import t from 'tap';
import { createServer } from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newTag } from '../../lab/tag.js';
import { VSWITCH_SCHEMA } from '../../lab/ovs-daemons.js';
import { exec } from '../../src/exec.js';
import { OvsdbClient, parseRemote, VSwitch } from '../../src/ovsdb/index.js';
import { startOvs } from '../fixtures/ovs.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('remote strings in OVS syntax', async (t) => {
  t.same(parseRemote('unix:/run/db.sock'), { kind: 'unix', path: '/run/db.sock' });
  t.same(parseRemote('tcp:10.0.0.1:6641'), { kind: 'tcp', host: '10.0.0.1', port: 6641 });
  t.same(parseRemote('ssl:[fd00::1]:6640'), { kind: 'ssl', host: 'fd00::1', port: 6640 });
  t.same(parseRemote('tcp:10.0.0.1'), { kind: 'tcp', host: '10.0.0.1', port: 6640 }, 'RFC 7047 §6 default port');
  for (const bad of ['db.sock', 'udp:1.2.3.4:5', 'tcp:1.2.3.4:70000', 'unix:']) {
    t.throws(() => parseRemote(bad), { code: 'OVSDB_CONNECT' }, bad);
  }
});

t.test('TCP: ptcp remote of a real ovsdb-server', async (t) => {
  const port = await freePort();
  const ovs = await startOvs(t, { vswitchd: false, remotes: [`ptcp:${port}:127.0.0.1`] });
  const vs = await VSwitch.connect(`tcp:127.0.0.1:${port}`);
  t.teardown(() => vs.close());
  await vs.addBridge('br-tcp');
  t.equal((await ovs.vsctl(['list-br'])).trim(), 'br-tcp');
});

t.test('TLS: pssl remote with mutual authentication', async (t) => {
  const tag = newTag();
  const dir = join(tmpdir(), `coat-${tag}-ovsdb-tls`);
  await mkdir(dir, { recursive: true });
  const pidfile = join(dir, 'ovsdb-server.pid');
  t.teardown(async () => {
    try {
      process.kill(Number((await readFile(pidfile, 'utf8')).trim()), 'SIGTERM');
    } catch {
      /* not running */
    }
    await new Promise((r) => setTimeout(r, 100));
    await rm(dir, { recursive: true, force: true });
  });
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => exec('openssl', args, { timeoutMs: 20_000 });
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=coat-test-ca']);
  for (const who of ['server', 'client']) {
    await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=coat-${who}`]);
  }
  // The server certificate needs the IP in subjectAltName for Node's hostname check.
  await writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await ssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('san.ext')]);
  await ssl(['x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '1']);

  await exec('ovsdb-tool', ['create', f('conf.db'), VSWITCH_SCHEMA], { timeoutMs: 10_000 });
  const port = await freePort();
  await exec(
    'ovsdb-server',
    [
      f('conf.db'),
      `--remote=pssl:${port}:127.0.0.1`,
      `--private-key=${f('server.key')}`,
      `--certificate=${f('server.pem')}`,
      `--ca-cert=${f('ca.pem')}`,
      `--pidfile=${pidfile}`,
      `--log-file=${f('ovsdb-server.log')}`,
      `--unixctl=${f('ovsdb-server.ctl')}`,
      '-vconsole:off',
      '--detach',
      '--no-chdir',
    ],
    { timeoutMs: 10_000 },
  );
  const tls = { key: await readFile(f('client.key')), cert: await readFile(f('client.pem')), ca: await readFile(f('ca.pem')) };
  const c = await OvsdbClient.connect(`ssl:127.0.0.1:${port}`, { tls });
  t.teardown(() => c.close());
  t.same(await c.listDbs(), ['Open_vSwitch', '_Server']);
  const tx = await c.transaction('Open_vSwitch');
  tx.insert('Open_vSwitch', { external_ids: { via: 'tls' } });
  const [r] = await c.transact('Open_vSwitch', tx);
  t.equal(r?.op, 'insert', 'a transaction over TLS');

  // Without a trusted CA the handshake fails: a typed connect or connection error, not a crash.
  let code: string | undefined;
  try {
    const bad = await OvsdbClient.connect(`ssl:127.0.0.1:${port}`, { tls: { key: tls.key, cert: tls.cert } });
    await bad.listDbs().finally(() => bad.close());
  } catch (err) {
    code = (err as { code?: string }).code;
  }
  t.ok(code === 'OVSDB_CONNECT' || code === 'OVSDB_CONNECTION_LOST', `untrusted server refused (${code})`);
});
