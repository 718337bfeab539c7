/**
 * The never-sent tail is written without waiting even when the restored send buffer is too small
 * for it (the addon grows SO_SNDBUF and tries again): a loopback connection in a namespace this
 * test creates, the peer's ACKs dropped by iptables there, so nothing frees the queue. The old
 * write waited up to 2 s here and then failed TCPR_UNSENT_SHORT (docs/executors.md).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { exec } from '../../src/exec.js';
import { newTag } from '../../lab/tag.js';
import { REPO } from './fixture.js';

t.test('resume writes the whole tail at once with no ACK and a send buffer too small for it', async (t) => {
  const ns = `${newTag()}-tail`;
  await exec('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
  t.teardown(() => exec('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 }));
  await exec('ip', ['link', 'set', 'lo', 'up'], { netns: ns, timeoutMs: 10_000 });
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(REPO, 'test', 'tcp-repair', 'helpers', 'tail-child.ts')], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(timer);
  t.equal(code, 0, `child exited cleanly ${err.slice(-500)}`);
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { unacked: number; unsent: number; sndbuf: number; resumeMs: number; error: string | null; outq: number; queued: number };
  t.ok(r.unacked > 0 && r.unsent > 0, `send queue: ${r.unacked} bytes sent-unacked, ${r.unsent} never sent, restored SO_SNDBUF ${r.sndbuf}`);
  t.equal(r.error, null, 'resume did not fail');
  t.equal(r.outq, r.queued, `all ${r.queued} saved bytes are in the restored send queue, none acknowledged`);
  t.ok(r.resumeMs < 1000, `resume took ${r.resumeMs.toFixed(1)} ms (it does not wait for ACKs)`);
});
