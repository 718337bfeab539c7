/**
 * lab/nats-server.ts: the config it writes, a real server started on a random port with token
 * auth (a wrong token is refused by the server), and stopping by pid.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { isAlive } from '../../lab/process.js';
import { connect } from 'nats';
import { natsConfig } from '../../lab/nats-server.js';
import { agentNatsPermissions } from '../../src/agent/protocol.js';
import { startNats } from '../fixtures/nats.js';

t.test('config text', async (t) => {
  const conf = natsConfig({ dir: '/tmp/x', users: [{ user: 'agent-a', password: 'p"w', ...agentNatsPermissions('a') }] });
  t.match(conf, 'port: -1', 'the server picks a free port');
  t.match(conf, 'ports_file_dir: "/tmp/x"');
  t.match(conf, 'password: "p\\"w"', 'strings are quoted');
  t.match(conf, 'subscribe: ["coat.agent.a.cmd.>", "coat.agent.discover"]');
  t.match(conf, 'allow_responses: true');
  t.throws(() => natsConfig({ dir: '/tmp/x', token: 'a', users: [] }), { code: 'NATS_CONFIG' });
});

t.test('a real nats-server with token auth, stopped by pid', async (t) => {
  const token = randomBytes(12).toString('hex');
  const server = await startNats(t, { token });
  t.ok(server.port > 0 && server.port < 65536);
  const pid = await server.pid();
  t.ok(pid, 'pid file written');
  const nc = await connect({ servers: server.url, token });
  await nc.flush();
  await nc.close();
  await t.rejects(connect({ servers: server.url, token: 'wrong', maxReconnectAttempts: 0, reconnect: false }), /Authorization Violation|AUTHORIZATION_VIOLATION/i, 'a wrong token is refused');
  await server.stop();
  t.equal(await server.pid(), undefined, 'stopped');
  t.notOk(isAlive(pid), 'the process is gone (exited; a zombie until reaped)');
});
