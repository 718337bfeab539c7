/**
 * `npm run bench -- transfer [--mb N] [--pings N]`: image streaming and the NATS control plane,
 * each beside a peer measured in the same run on the same path.
 *
 * - Image throughput over an unshaped veth between two tagged namespaces: coat (agent A streams a
 *   step directory to agent B: framed, sha256 per chunk and per image, written to disk, renamed)
 *   beside `cat FILE | nc` of the same file, written to disk at B as well.
 * - Command round trip over NATS: `ping` through AgentClient (signed, verified, journal-free)
 *   beside a bare NATS request/reply to a responder in B's namespace (no coat code at all).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newTag } from '../lab/tag.js';
import { AgentRegistry } from '../src/agent/client.js';
import { agentNatsPermissions } from '../src/agent/protocol.js';
import { exec } from '../src/exec.js';
import { NatsServer } from '../lab/nats-server.js';
import { createNsPair } from '../test/agent/helpers/netns-pair.js';
import { spawnAgent } from '../test/agent/helpers/spawn-agent.js';
import { percentile, type Bench, type BenchRow } from './harness.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
// The bench's own registry logs (agent registered, ...) would interleave with the table.
process.env.COAT_LOG_LEVEL ??= 'warn';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
}

function median(v: number[]): number {
  return percentile(v, 50);
}

/** Times `cat FILE | nc` from namespace A into `nc -l` writing a file in namespace B. */
async function ncCopy(a: string, b: string, bIp: string, file: string, out: string): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const listener = spawn('ip', ['netns', 'exec', b, 'sh', '-c', `exec nc -l ${bIp} ${port} > ${out}`], { stdio: 'ignore' });
  const done = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => {
      listener.kill('SIGKILL');
      rej(new Error('nc copy did not finish in 120 s'));
    }, 120_000);
    listener.once('exit', () => {
      clearTimeout(timer);
      res();
    });
  });
  for (let i = 0; i < 100; i++) {
    const ss = await exec('ss', ['-ltnH', `sport = :${port}`], { netns: b, timeoutMs: 5000 });
    if (ss.stdout.trim()) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const t0 = performance.now();
  await exec('sh', ['-c', `cat ${file} | nc -N ${bIp} ${port}`], { netns: a, timeoutMs: 120_000 });
  await done;
  return performance.now() - t0;
}

/** A bare NATS echo responder in namespace B, written against nats.js only. */
function bareResponder(netns: string, url: string, user: string, pass: string, subject: string) {
  const code = `import { connect } from 'nats';
const nc = await connect({ servers: ${JSON.stringify(url)}, user: ${JSON.stringify(user)}, pass: ${JSON.stringify(pass)} });
nc.subscribe(${JSON.stringify(subject)}, { callback: (_e, m) => m.respond(m.data) });
await nc.flush(); console.log('ready');`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--input-type=module', '-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((res) => child.stdout!.once('data', () => res()));
  return { child, ready };
}

export const bench: Bench = {
  summary: 'image streaming between agents vs cat|nc over a veth; command round trip over NATS vs bare request/reply',
  async run(ctx) {
    const mb = arg(ctx.args, 'mb', 100);
    const pings = arg(ctx.args, 'pings', 1000);
    const runs = arg(ctx.args, 'runs', 3);
    const teardowns: (() => unknown)[] = [];
    const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
    const tag = newTag();
    try {
      const pair = await createNsPair(t, tag);
      const ctlPass = randomBytes(12).toString('hex');
      const agentPass = randomBytes(12).toString('hex');
      const secret = randomBytes(32).toString('hex');
      const work = await mkdtemp(join(tmpdir(), `coat-${tag}-bench-`));
      t.teardown(() => rm(work, { recursive: true, force: true }));
      const nats = new NatsServer({
        dir: join(work, 'nats'),
        netns: pair.a,
        host: '0.0.0.0',
        users: [
          { user: 'controller', password: ctlPass },
          { user: 'agent', password: agentPass, ...agentNatsPermissions('*') },
        ],
      });
      t.teardown(() => nats.stop());
      await nats.start();
      const hostA = `${tag}-a`;
      const hostB = `${tag}-b`;
      const stateA = join(work, 'state-a');
      await mkdir(stateA);
      await writeFile(join(stateA, 'small'), 'x');
      const common = { user: 'agent', password: agentPass, secret, env: { COAT_AGENT_LOG_LEVEL: 'warn', COAT_LOG_LEVEL: 'warn' } };
      spawnAgent(t, { ...common, host: hostA, netns: pair.a, nats: nats.url, dataDir: join(work, 'a'), listen: `${pair.aIp}:0` });
      spawnAgent(t, { ...common, host: hostB, netns: pair.b, nats: `nats://${pair.aIp}:${nats.port}`, dataDir: join(work, 'b'), listen: `${pair.bIp}:0` });
      const reg = await AgentRegistry.connect({ nats: { servers: `nats://${pair.aMgmtIp}:${nats.port}`, user: 'controller', pass: ctlPass }, secret: Buffer.from(secret), events: false });
      t.teardown(() => reg.close());
      await reg.waitFor(hostA, 30_000);
      const infoB = await reg.waitFor(hostB, 30_000);
      const a = reg.agent(hostA);
      const b = reg.agent(hostB);

      ctx.progress(`writing a ${mb} MB image at agent A`);
      const mid = `${tag}-bench`;
      const service = { name: 'svc', netns: 'n/a', ip: '10.0.0.10', mac: '02:00:00:00:00:10', stateDir: stateA };
      await a.request('executor.step', { migrationId: mid, executor: 'hooks', executorOptions: { dumpBytes: mb * 1024 * 1024 }, service, role: 'source', step: 'dump' }, { deadlineMs: 120_000 });
      const memFile = join(work, 'a', 'images', mid, 'dump', 'memory.bin');
      const imageBytes = (await stat(memFile)).size + 1;

      const coatMBps: number[] = [];
      const ncMBps: number[] = [];
      for (let i = 0; i < runs; i++) {
        const token = randomBytes(16).toString('hex');
        await b.request('stream.expect', { migrationId: mid, token });
        const r = await a.request('stream.send', { migrationId: mid, token, peer: infoB.stream!, stepName: 'dump' }, { deadlineMs: 120_000 });
        coatMBps.push(r.bytes / 1e6 / (r.elapsedMs / 1000));
        await b.request('forget', { migrationId: mid, removeImage: true });
        const ncMs = await ncCopy(pair.a, pair.b, pair.bIp, memFile, join(work, 'nc-out.bin'));
        ncMBps.push(imageBytes / 1e6 / (ncMs / 1000));
        await rm(join(work, 'nc-out.bin'), { force: true });
        ctx.progress(`run ${i + 1}/${runs}: coat ${coatMBps[i]!.toFixed(1)} MB/s, cat|nc ${ncMBps[i]!.toFixed(1)} MB/s`);
      }

      ctx.progress(`${pings} command round trips`);
      const echo = bareResponder(pair.b, `nats://${pair.aIp}:${nats.port}`, 'controller', ctlPass, `bench.${tag}.echo`);
      t.teardown(() => void echo.child.kill('SIGKILL'));
      await echo.ready;
      const coatRtt: number[] = [];
      const bareRtt: number[] = [];
      const payload = new TextEncoder().encode('{}');
      for (let i = 0; i < 50; i++) await b.ping(); // warm up
      for (let i = 0; i < pings; i++) {
        let t0 = performance.now();
        await b.ping({ deadlineMs: 2000 });
        coatRtt.push(performance.now() - t0);
        t0 = performance.now();
        await reg.nc.request(`bench.${tag}.echo`, payload, { timeout: 2000 });
        bareRtt.push(performance.now() - t0);
      }
      const note = 'shared 2-core VM, other jobs running: noisy';
      const rows: BenchRow[] = [
        { metric: `image stream, ${mb} MB over veth (median of ${runs})`, unit: 'MB/s', coat: median(coatMBps), peer: median(ncMBps), peerName: 'cat FILE | nc (same bytes, to disk)', note },
        { metric: 'command round trip over NATS, median', unit: 'ms', coat: median(coatRtt), peer: median(bareRtt), peerName: 'bare nats.js request/reply', note: `${pings} sequential` },
        { metric: 'command round trip over NATS, p99', unit: 'ms', coat: percentile(coatRtt, 99), peer: percentile(bareRtt, 99), peerName: 'bare nats.js request/reply' },
      ];
      return rows;
    } finally {
      for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch(() => {});
    }
  },
};
