/**
 * `coat controller`: the long-running controller process. A small composition: the OpenFlow
 * listener (src/controller), the overlay (src/vxlan: one OVSDB session per host, the policy, the
 * ARP responder), with --nats the registry of the hosts' agents (src/agent), and a status file.
 * Runs until SIGTERM or SIGINT.
 */
import { readFile } from 'node:fs/promises';
import type { NatsAuth } from '../../agent/agent.js';
import { AgentRegistry } from '../../agent/client.js';
import { Controller } from '../../controller/index.js';
import { logger } from '../../log.js';
import { OverlayController } from '../../vxlan/overlay-controller.js';
import { parseTopology, TopologyError } from '../../vxlan/topology.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat controller --topology FILE [--listen METHOD] [--prefix NAME] [--status FILE]
                       [--tls-key FILE --tls-cert FILE --tls-ca FILE] [--no-ovsdb]
                       [--nats URL[,URL...] [--token T | --user U --password P | --creds FILE]
                        --secret-file FILE] [--json]

Runs coat's controller: listens for Open vSwitch bridges over OpenFlow 1.3, configures every host of
the topology over OVSDB (bridges, uplink, VXLAN tunnels, endpoint ports, controller target), keeps
each bridge's flows equal to the overlay policy (reconciled on every connect) and answers ARP for
overlay endpoints. \`coat lab up\` starts one in the lab's ctl namespace.

  --topology FILE   topology (YAML or JSON); every host needs \`ovsdb\` (e.g. tcp:10.0.0.11:6640)
                    and controller.openflow the target OVS should connect to (e.g. tcp:10.0.0.1:6653)
  --listen METHOD   where to accept switches (default ptcp:PORT with controller.port, 6653)
  --prefix NAME     prefix of the OVS objects' names (default coat; a lab passes its tag)
  --status FILE     keep FILE holding the status as JSON (switches, reconciled, ARP counters)
  --tls-key FILE, --tls-cert FILE, --tls-ca FILE
                    TLS for pssl: listeners and ssl: OVSDB remotes (OVS's PKI: ovs-pki; on the
                    hosts \`ovs-vsctl set-ssl\`, \`set-manager pssl:6640\`)
  --no-ovsdb        do not configure hosts; only program the flows of bridges that connect
  --nats URL[,URL]  keep a registry of the hosts' \`coat agent\`s over NATS (the status lists them);
                    NATS auth as for coat agent (--token, --user/--password or
                    COAT_NATS_PASSWORD, --creds) and the agents' command secret (--secret-file
                    FILE or COAT_AGENT_SECRET)
  --json            print the status as JSON once everything is programmed
`;

export const command: Command = {
  summary: 'run the controller: OpenFlow listener, OVSDB per host, overlay flows, ARP responder',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      topology: { type: 'string' },
      listen: { type: 'string' },
      prefix: { type: 'string' },
      status: { type: 'string' },
      'no-ovsdb': { type: 'boolean' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-ca': { type: 'string' },
      nats: { type: 'string' },
      token: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      creds: { type: 'string' },
      'secret-file': { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (coat controller --help)`);
    const file = values.topology as string | undefined;
    if (!file) throw new UsageError('missing --topology FILE (coat controller --help)');
    let topology;
    try {
      topology = parseTopology(await readFile(file, 'utf8'), file);
    } catch (e) {
      if (e instanceof TopologyError) {
        io.stderr.write(`coat controller: ${e.message}\n`);
        return ExitCode.badInput;
      }
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const tlsFiles = [values['tls-key'], values['tls-cert'], values['tls-ca']].filter((v) => v !== undefined) as string[];
    if (tlsFiles.length !== 0 && tlsFiles.length !== 3) throw new UsageError('--tls-key, --tls-cert and --tls-ca go together');
    const tls = tlsFiles.length === 3 ? { key: await readFile(tlsFiles[0]!), cert: await readFile(tlsFiles[1]!), ca: await readFile(tlsFiles[2]!) } : undefined;
    const agentsAuth = natsAuth(values);
    const secretText = agentsAuth ? (values['secret-file'] ? (await readFile(values['secret-file'] as string, 'utf8')).trim() : process.env.COAT_AGENT_SECRET) : undefined;
    if (agentsAuth && !secretText) throw new UsageError('--nats needs the agents\' command secret: --secret-file FILE or COAT_AGENT_SECRET');
    const log = logger('controller-main');
    const controller = new Controller({ logger: logger('openflow'), ...(tls ? { tls } : {}) });
    const overlay = new OverlayController(controller, {
      topology,
      prefix: (values.prefix as string | undefined) ?? 'coat',
      ovsdb: !values['no-ovsdb'],
      log: logger('overlay'),
      ...(tls ? { tls } : {}),
    });
    if (values.status) overlay.writeStatusTo(values.status as string);
    const listen = (values.listen as string | undefined) ?? `ptcp:${topology.controller.port}`;
    const l = await controller.listen(listen);
    log.info({ event: 'controller_listening', endpoint: l.address, hosts: topology.hosts.length }, 'controller listening');

    // The agents' registry connects in the background: NATS being late must not delay the flows.
    let registry: AgentRegistry | undefined;
    let registryClosed = false;
    if (agentsAuth && secretText) {
      void AgentRegistry.connect({ nats: agentsAuth, secret: Buffer.from(secretText, 'utf8'), log: logger('agent-registry') }).then(
        async (r) => {
          if (registryClosed) return r.close();
          registry = r;
          const changed = () => overlay.statusChanged();
          r.on('registered', changed);
          r.on('gone', changed);
          overlay.reportAgents(() => r.list().map((a) => ({ host: a.host, alive: a.alive, stream: a.stream ? `${a.stream.host}:${a.stream.port}` : null })));
          log.info({ event: 'agent_registry_up', nats: agentsAuth.servers }, 'agent registry connected');
        },
        (e: Error) => log.error({ event: 'agent_registry_failed', err: e.message }, 'cannot connect to NATS for the agents'),
      );
    }

    let stopping = false;
    const stopped = new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ event: 'controller_stopping', signal: sig }, 'stopping');
        registryClosed = true;
        void (registry?.close() ?? Promise.resolve())
          .catch(() => undefined)
          .then(() => overlay.close())
          .then(() => controller.close())
          .finally(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    try {
      await overlay.start();
    } catch (e) {
      log.error({ event: 'overlay_start_failed', err: (e as Error).message }, 'overlay start failed');
      registryClosed = true;
      await registry?.close().catch(() => undefined);
      await overlay.close();
      await controller.close();
      io.stderr.write(`coat controller: ${(e as Error).message}\n`);
      return ExitCode.unavailable;
    }
    if (values.json) writeJson(io.stdout, overlay.status());
    await stopped;
    return ExitCode.ok;
  },
};

/** NATS credentials from the flags, as `coat agent` takes them; undefined without --nats. */
function natsAuth(values: Record<string, unknown>): NatsAuth | undefined {
  const urls = values.nats as string | undefined;
  const kinds = [values.token !== undefined, values.user !== undefined, values.creds !== undefined].filter(Boolean).length;
  if (!urls) {
    if (kinds > 0 || values['secret-file'] !== undefined) throw new UsageError('--token, --user, --creds and --secret-file go with --nats');
    return undefined;
  }
  if (kinds > 1) throw new UsageError('give at most one of --token, --user/--password, --creds');
  const auth: NatsAuth = { servers: urls.split(',').map((s) => s.trim()).filter(Boolean) };
  if (values.token !== undefined) auth.token = values.token as string;
  if (values.user !== undefined) {
    const pass = (values.password as string | undefined) ?? process.env.COAT_NATS_PASSWORD;
    if (pass === undefined) throw new UsageError('--user needs --password or COAT_NATS_PASSWORD');
    auth.user = values.user as string;
    auth.pass = pass;
  }
  if (values.creds !== undefined) auth.credsFile = values.creds as string;
  return auth;
}
