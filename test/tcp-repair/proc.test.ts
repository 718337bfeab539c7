/** /proc parsers (src/tcp-repair/proc.ts) against lines in the kernel's format, and the real /proc. */
import t from 'tap';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { parseProcNetTcp, socketInode, tcpSocketsOf, TCP_STATE } from '../../src/tcp-repair/proc.js';

// Format of net/ipv4/tcp_ipv4.c get_tcp4_sock / tcp6 (little-endian host words).
const TCP4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41122 1 0000000000000000 100 0 0 10 0
   1: 020010AC:1B58 010010AC:C350 01 00000010:00000000 01:00000014 00000000     0        0 41130 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 100 0 0 10 0
`;

t.test('parses tcp and tcp6 tables', async (t) => {
  const v4 = parseProcNetTcp(TCP4, 4, true);
  t.same(v4, [
    { family: 4, local: { address: '127.0.0.1', port: 7000 }, remote: { address: '0.0.0.0', port: 0 }, state: TCP_STATE.LISTEN, inode: 41122 },
    { family: 4, local: { address: '172.16.0.2', port: 7000 }, remote: { address: '172.16.0.1', port: 50000 }, state: TCP_STATE.ESTABLISHED, inode: 41130 },
  ]);
  const v6 = parseProcNetTcp(TCP6, 6, true);
  t.same(v6[0]!.local, { address: '::1', port: 8080 });
  t.equal(socketInode('socket:[41130]'), 41130);
  t.equal(socketInode('pipe:[1]'), undefined);
});

t.test('finds this process sockets through the real /proc', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const c = net.connect(port, '127.0.0.1');
  const s = await accepted;
  t.teardown(() => {
    c.destroy();
    s.destroy();
    srv.close();
  });
  const mine = await tcpSocketsOf(process.pid);
  const listen = mine.find((x) => x.local.port === port && x.state === TCP_STATE.LISTEN);
  const est = mine.filter((x) => (x.local.port === port || x.remote.port === port) && x.state === TCP_STATE.ESTABLISHED);
  t.ok(listen, 'the listener is found');
  t.equal(est.length, 2, 'both ends of the connection are found');
  t.ok(est.every((e) => e.fd > 2), 'with their descriptor numbers');
  // Found through the descriptors themselves; the kernel's tables say the same of each.
  const table = [...parseProcNetTcp(readFileSync('/proc/self/net/tcp', 'utf8'), 4), ...parseProcNetTcp(readFileSync('/proc/self/net/tcp6', 'utf8'), 6)];
  for (const e of [listen!, ...est]) {
    const row = table.find((r) => r.inode === e.inode);
    t.same(row, { family: e.family, local: e.local, remote: e.remote, state: e.state, inode: e.inode }, `inode ${e.inode}: state and addresses as /proc/net/tcp has them`);
  }
  await t.rejects(tcpSocketsOf(2 ** 22 + 12345), { code: 'TCPR_NO_PROCESS' });
});

t.test('IPv6 sockets are found with their addresses, as /proc/net/tcp6 has them', async (t) => {
  const srv = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '::1', resolve);
    });
  } catch (err) {
    t.plan(0, `skip: no IPv6 loopback here: ${(err as Error).message}`); // reported as a skip, not a pass
    return;
  }
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const c = net.connect(port, '::1');
  const s = await accepted;
  t.teardown(() => {
    c.destroy();
    s.destroy();
    srv.close();
  });
  const mine = (await tcpSocketsOf(process.pid)).filter((x) => x.local.port === port || x.remote.port === port);
  t.equal(mine.length, 3, 'listener and both ends');
  t.ok(mine.every((x) => x.family === 6 && x.local.address === '::1'), 'family 6, bound to ::1');
  const table = parseProcNetTcp(readFileSync('/proc/self/net/tcp6', 'utf8'), 6);
  for (const e of mine) t.same(table.find((r) => r.inode === e.inode), { family: 6, local: e.local, remote: e.remote, state: e.state, inode: e.inode }, `inode ${e.inode} as in /proc/net/tcp6`);
});
