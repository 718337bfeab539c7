/**
 * `coat agent`: runs the per-host agent until SIGTERM or SIGINT (see docs/agent.md).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, type ExecutorFactory, type NatsAuth } from '../../agent/agent.js';
import { isSafeName } from '../../agent/protocol.js';
import { createExecutor, EXECUTOR_NAMES, type ExecutorModule, type ExecutorName } from '../../migration/executor.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat agent --host NAME --nats URL[,URL...] [options]

Runs the per-host coat agent (one per host): registers with the controller over NATS,
heartbeats every 500 ms, runs signed commands (service namespaces, executor steps, profiling,
image streams), and receives image streams from peer agents on --listen.

required:
  --host NAME            this host's name, [A-Za-z0-9_-] (a NATS subject token)
  --nats URL[,URL...]    NATS server(s); several URLs of one cluster for failover,
                         e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222
  command secret         --secret-file FILE, or COAT_AGENT_SECRET in the environment:
                         the HMAC key the controller signs every command with

NATS authentication (whatever your server or cluster requires; at most one kind):
  --token T              server token (authorization { token })
  --user U --password P  user/password (authorization { users }); P may also come from
                         COAT_NATS_PASSWORD
  --creds FILE           a .creds file (JWT + nkey), for operator/account-managed clusters

options:
  --data-dir DIR         journal and images (default ./coat-agent-NAME)
  --listen ADDR:PORT     image stream listener on the underlay (default 0.0.0.0:0 = any port)
  --advertise ADDR       address peers use for streams (default: the --listen address)
  --executor-module NAME=FILE
                         load executor NAME from FILE (a module exporting createExecutor),
                         instead of src/executors/NAME; may be repeated
  --json                 print the agent's announcement as JSON once it is running
  -h, --help             this help

Existing NATS cluster: point --nats at its URLs (any members; the client fails over) and give
the agent an identity allowed to publish coat.agent.register, coat.agent.NAME.health,
coat.agent.NAME.bye and coat.migration.*.events, to subscribe to coat.agent.NAME.cmd.> and
coat.agent.discover, with allow_responses (answers to commands). Only the controller may
publish to coat.agent.*.cmd.>. The controller takes the same --nats/--token/--user/--creds
flags and the same command secret. Details: docs/agent.md.
`;

function parseListen(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = i > 0 ? s.slice(0, i).replace(/^\[|\]$/g, '') : '';
  const port = Number(s.slice(i + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--listen ${s}: expected ADDR:PORT`);
  return { host, port };
}

async function executorFactory(overrides: string[]): Promise<ExecutorFactory> {
  const mods = new Map<ExecutorName, ExecutorModule>();
  for (const o of overrides) {
    const eq = o.indexOf('=');
    const name = o.slice(0, eq) as ExecutorName;
    const file = o.slice(eq + 1);
    if (eq < 1 || !EXECUTOR_NAMES.includes(name) || !file) throw new UsageError(`--executor-module ${o}: expected NAME=FILE with NAME one of ${EXECUTOR_NAMES.join(', ')}`);
    mods.set(name, (await import(pathToFileURL(isAbsolute(file) ? file : resolve(file)).href)) as ExecutorModule);
  }
  return async (name, options) => mods.get(name)?.createExecutor(options) ?? createExecutor(name, options);
}

export const command: Command = {
  summary: 'run the per-host agent (NATS control plane, executor steps, image streams)',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseFlags(argv, {
      host: { type: 'string' },
      nats: { type: 'string' },
      token: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      creds: { type: 'string' },
      'secret-file': { type: 'string' },
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      advertise: { type: 'string' },
      'executor-module': { type: 'string', multiple: true },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    const host = values.host as string | undefined;
    const nats = values.nats as string | undefined;
    if (!host) throw new UsageError('--host is required');
    if (!isSafeName(host)) throw new UsageError(`--host ${JSON.stringify(host)}: use [A-Za-z0-9_-], at most 64 characters (it is a NATS subject token)`);
    if (!nats) throw new UsageError('--nats is required');
    const secretFile = values['secret-file'] as string | undefined;
    const secretText = secretFile ? readFileSync(secretFile, 'utf8').trim() : process.env.COAT_AGENT_SECRET;
    if (!secretText) throw new UsageError('a command secret is required: --secret-file FILE or COAT_AGENT_SECRET');
    const kinds = [values.token !== undefined, values.user !== undefined, values.creds !== undefined].filter(Boolean).length;
    if (kinds > 1) throw new UsageError('give at most one of --token, --user/--password, --creds');
    const auth: NatsAuth = { servers: nats.split(',').map((s) => s.trim()).filter(Boolean) };
    if (values.token !== undefined) auth.token = values.token as string;
    if (values.user !== undefined) {
      auth.user = values.user as string;
      const pass = (values.password as string | undefined) ?? process.env.COAT_NATS_PASSWORD;
      if (pass === undefined) throw new UsageError('--user needs --password or COAT_NATS_PASSWORD');
      auth.pass = pass;
    }
    if (values.creds !== undefined) auth.credsFile = values.creds as string;

    const agent = new Agent({
      host,
      nats: auth,
      secret: Buffer.from(secretText, 'utf8'),
      dataDir: (values['data-dir'] as string | undefined) ?? resolve(`coat-agent-${host}`),
      ...(values.listen ? { listen: parseListen(values.listen as string) } : {}),
      ...(values.advertise ? { advertise: values.advertise as string } : {}),
      executorFactory: await executorFactory((values['executor-module'] as string[] | undefined) ?? []),
    });
    await agent.start();
    if (values.json) writeJson(io.stdout, { host, pid: process.pid, stream: agent.streamEndpoint });
    else io.stderr.write(`coat agent ${host}: running (pid ${process.pid}, streams on ${agent.streamEndpoint?.host}:${agent.streamEndpoint?.port})\n`);
    const signal = await new Promise<NodeJS.Signals>((res) => {
      process.once('SIGTERM', () => res('SIGTERM'));
      process.once('SIGINT', () => res('SIGINT'));
    });
    io.stderr.write(`coat agent ${host}: ${signal}, stopping\n`);
    await agent.stop();
    return ExitCode.ok;
  },
};
