/**
 * `coat agent` argument handling: help, required flags, exclusive auth kinds, exit codes.
 */
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { ExitCode } from '../../src/cli/command.js';

async function run(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  const saved = { ...process.env };
  Object.assign(process.env, env);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
  try {
    const code = await main(['agent', ...argv], { stdout, stderr });
    return { code, out, err };
  } finally {
    process.env = saved;
  }
}

t.test('coat agent --help documents flags and existing clusters', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, ExitCode.ok);
  for (const flag of ['--host', '--nats', '--token', '--user', '--creds', '--secret-file', '--data-dir', '--listen', 'COAT_AGENT_SECRET', 'Existing NATS cluster', 'allow_responses']) t.match(r.out, flag);
});

t.test('coat agent usage errors', async (t) => {
  const noSecret = { COAT_AGENT_SECRET: undefined };
  t.match(await run([], noSecret), { code: ExitCode.usage, err: /--host is required/ });
  t.match(await run(['--host', 'a'], noSecret), { code: ExitCode.usage, err: /--nats is required/ });
  t.match(await run(['--host', 'a', '--nats', 'nats://127.0.0.1:1'], noSecret), { code: ExitCode.usage, err: /command secret is required/ });
  t.match(await run(['--host', 'a', '--nats', 'nats://127.0.0.1:1', '--token', 'x', '--creds', 'f'], { COAT_AGENT_SECRET: 's' }), { code: ExitCode.usage, err: /at most one of/ });
  t.match(await run(['--host', 'a', '--nats', 'nats://127.0.0.1:1', '--user', 'u'], { COAT_AGENT_SECRET: 's', COAT_NATS_PASSWORD: undefined }), { code: ExitCode.usage, err: /--user needs --password/ });
  t.match(await run(['--host', 'a', '--nats', 'nats://127.0.0.1:1', '--listen', 'nonsense'], { COAT_AGENT_SECRET: 's' }), { code: ExitCode.usage, err: /expected ADDR:PORT/ });
  t.match(await run(['--host', 'a', '--nats', 'nats://127.0.0.1:1', '--executor-module', 'teleport=x.ts'], { COAT_AGENT_SECRET: 's' }), { code: ExitCode.usage, err: /expected NAME=FILE/ });
  t.match(await run(['--bogus']), { code: ExitCode.usage, err: /bogus/ });
});

t.test('a host name that is not a NATS subject token is a usage error', async (t) => {
  const r = await run(['--host', 'a.b', '--nats', 'nats://127.0.0.1:1'], { COAT_AGENT_SECRET: 's' });
  t.equal(r.code, ExitCode.usage);
  t.match(r.err, /--host "a.b": use \[A-Za-z0-9_-\]/);
});
