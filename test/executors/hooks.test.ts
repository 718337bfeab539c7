/**
 * The hooks executor for real: shell scripts in a temp dir run as each step, with the documented
 * environment; failures, deadlines, cancellation and bad results are typed errors, and a deadline
 * kills the hook's whole process group.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { logger } from '../../src/log.js';
import { createExecutor, type ExecutorContext } from '../../src/migration/executor.js';
import { HookError, hookArgv, hookEnv, parseHookResult } from '../../src/executors/hooks.js';
import { isAlive } from '../../src/executors/criu-proc.js';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-hooks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function ctx(root: string, stepName: string, signal?: AbortSignal): ExecutorContext {
  const c: ExecutorContext = {
    migrationId: 'mig-42',
    service: { name: 'svc', netns: 'c0test-svc', ip: '10.0.0.7', mac: '02:00:00:00:00:07', pid: 4242, stateDir: '/var/lib/svc', command: ['svc', '--port', '80'], env: { SVC_MODE: 'fast' } },
    imageDir: join(root, 'img'),
    stepDir: join(root, 'img', stepName),
    stepName,
    log: logger('test-hooks'),
  };
  if (signal) c.signal = signal;
  return c;
}

async function script(dir: string, name: string, body: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, `#!/bin/sh\nset -e\n${body}\n`);
  await chmod(p, 0o755);
  return p;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

t.test('pure parts: argv, environment, result', async (t) => {
  t.same(hookArgv('echo hi'), ['/bin/sh', '-c', 'echo hi']);
  t.same(hookArgv(['/x/dump', 'a b']), ['/x/dump', 'a b']);
  t.same(hookArgv('echo hi', 'ns1'), ['ip', 'netns', 'exec', 'ns1', '/bin/sh', '-c', 'echo hi']);
  t.throws(() => hookArgv([]), RangeError);
  const env = hookEnv(ctx('/r', 'pre-1'), 'preDump', 'source', '/r/res.json', { PATH: '/bin' }, 1);
  t.same(env, {
    PATH: '/bin',
    SVC_MODE: 'fast',
    COAT_MIGRATION_ID: 'mig-42',
    COAT_STEP: 'pre-dump',
    COAT_ROLE: 'source',
    COAT_IMAGE_DIR: '/r/img',
    COAT_STEP_DIR: '/r/img/pre-1',
    COAT_STEP_NAME: 'pre-1',
    COAT_RESULT_FILE: '/r/res.json',
    COAT_SERVICE_NAME: 'svc',
    COAT_SERVICE_NETNS: 'c0test-svc',
    COAT_SERVICE_IP: '10.0.0.7',
    COAT_SERVICE_MAC: '02:00:00:00:00:07',
    COAT_SERVICE_PID: '4242',
    COAT_SERVICE_STATE_DIR: '/var/lib/svc',
    COAT_SERVICE_COMMAND: '["svc","--port","80"]',
    COAT_ROUND: '1',
  });
  t.same(parseHookResult('dump', '{"pages": 3, "timings": {"x": 1.5}}'), { pages: 3, timings: { x: 1.5 } });
  for (const bad of ['nope', '[1]', '{"pages": -1}', '{"pages": "3"}', '{"timings": {"x": "y"}}', '{"timings": 3}']) {
    const e = (() => {
      try {
        parseHookResult('dump', bad);
      } catch (err) {
        return err;
      }
    })();
    t.ok(e instanceof HookError && e.code === 'HOOK_BAD_RESULT', `${bad}: ${String(e)}`);
  }
});

t.test('a whole migration through shell scripts, with the documented environment', async (t) => {
  const root = await tempDir(t);
  const hooks = join(root, 'hooks');
  const seen = join(root, 'seen');
  await mkdir(hooks);
  await mkdir(seen);
  const record = `env | grep -E '^(COAT_|SVC_)' | sort > "${seen}/$COAT_STEP.$COAT_ROLE.env"`;
  await script(hooks, 'prepare', record);
  await script(hooks, 'pre-dump', `${record}\nhead -c 8192 /dev/zero > "$COAT_STEP_DIR/pages-$COAT_ROUND"\necho '{"pages": 2, "dirtyPages": 2}' > "$COAT_RESULT_FILE"`);
  await script(hooks, 'dump', `${record}\nprintf 'state' > "$COAT_STEP_DIR/state"\necho '{"pages": 1, "frozenMs": 3.5, "sockets": 1, "timings": {"save": 1.25}}' > "$COAT_RESULT_FILE"`);
  // The restore hook starts a long-running process (the service) and reports its pid: it must survive.
  await script(hooks, 'restore', `${record}\ncat "$COAT_IMAGE_DIR/dump/state" > "${seen}/restored-state"\nsleep 60 > /dev/null 2>&1 &\necho "{\\"pid\\": $!, \\"sockets\\": 1}" > "$COAT_RESULT_FILE"`);
  await script(hooks, 'resume', record);
  await script(hooks, 'release', record);
  await script(hooks, 'abort', record);

  const ex = await createExecutor('hooks', { dir: hooks, timeoutMs: 10_000 });
  t.equal(ex.name, 'hooks');
  t.same(ex.capabilities, { preCopy: true, tcpEstablished: false });
  await ex.prepare(ctx(root, 'prepare'), 'source');
  const pre = await ex.preDump(ctx(root, 'pre-0'), 0);
  t.equal(pre.bytes, 8192, 'bytes counted from what the hook wrote into COAT_STEP_DIR');
  t.equal(pre.pages, 2);
  t.equal(pre.dirtyPages, 2);
  const dump = await ex.dump(ctx(root, 'dump'));
  t.equal(dump.bytes, 5);
  t.equal(dump.frozenMs, 3.5);
  t.equal(dump.sockets, 1);
  t.equal(dump.timings.save, 1.25);
  t.ok(dump.timings.hookMs! > 0);
  const restored = await ex.restore(ctx(root, 'restore'));
  t.teardown(() => {
    if (restored.pid && isAlive(restored.pid)) process.kill(restored.pid, 'SIGKILL');
  });
  t.ok(restored.pid && isAlive(restored.pid), `the process the restore hook started (pid ${restored.pid}) is still running`);
  t.equal(await readFile(join(seen, 'restored-state'), 'utf8'), 'state', 'restore saw the dump under COAT_IMAGE_DIR');
  await ex.resume(ctx(root, 'resume'));
  await ex.release(ctx(root, 'release'));
  await ex.abort(ctx(root, 'abort'), 'destination');

  const env = async (f: string) => Object.fromEntries((await readFile(join(seen, f), 'utf8')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const preEnv = await env('pre-dump.source.env');
  t.equal(preEnv.COAT_ROUND, '0');
  t.equal(preEnv.COAT_STEP_DIR, join(root, 'img', 'pre-0'));
  t.equal(preEnv.COAT_SERVICE_PID, '4242');
  t.equal(preEnv.SVC_MODE, 'fast', 'the service env is passed');
  t.equal((await env('restore.destination.env')).COAT_STEP, 'restore');
  t.equal((await env('prepare.source.env')).COAT_ROLE, 'source');
  t.equal((await env('abort.destination.env')).COAT_ROLE, 'destination');
  t.equal((await env('release.source.env')).COAT_MIGRATION_ID, 'mig-42');
  t.notOk('COAT_ROUND' in (await env('dump.source.env')), 'no round outside pre-dump');
});

t.test('explicit commands; optional hooks may be missing, required ones may not', async (t) => {
  const root = await tempDir(t);
  const ex = await createExecutor('hooks', { hooks: { dump: 'echo x > "$COAT_STEP_DIR/f"', restore: ['/bin/true'] }, tcpEstablished: true });
  t.same(ex.capabilities, { preCopy: false, tcpEstablished: true });
  await ex.prepare(ctx(root, 'prepare'), 'destination');
  t.equal((await ex.dump(ctx(root, 'dump'))).bytes, 2);
  await ex.resume(ctx(root, 'resume')); // no resume hook: no-op
  const pre = await caught(ex.preDump(ctx(root, 'pre-0'), 0));
  t.ok(pre instanceof HookError && pre.code === 'HOOK_MISSING', String(pre));
  const none = await createExecutor('hooks', { hooks: { restore: '/bin/true' } });
  const miss = await caught(none.prepare(ctx(root, 'prepare'), 'source'));
  t.ok(miss instanceof HookError && miss.code === 'HOOK_MISSING' && miss.step === 'dump', String(miss));
});

t.test('failures: exit status, deadline (whole process group killed), cancel, bad result, spawn', async (t) => {
  const root = await tempDir(t);
  const pidFile = join(root, 'grandchild.pid');
  const ex = await createExecutor('hooks', {
    hooks: {
      dump: 'echo "disk full on /var/lib/svc" >&2; exit 3',
      restore: `sleep 30 & echo $! > "${pidFile}"; wait`,
      resume: 'sleep 30',
      release: 'echo not-json > "$COAT_RESULT_FILE"',
      abort: ['/nonexistent/coat-hook'],
    },
    stepTimeoutMs: { restore: 300 },
  });
  const failed = await caught(ex.dump(ctx(root, 'dump')));
  t.ok(failed instanceof HookError, String(failed));
  t.equal((failed as HookError).code, 'HOOK_FAILED');
  t.equal((failed as HookError).exitCode, 3);
  t.match((failed as HookError).message, /exit 3: disk full on \/var\/lib\/svc/);

  const t0 = Date.now();
  const slow = await caught(ex.restore(ctx(root, 'restore')));
  t.ok(slow instanceof HookError && slow.code === 'HOOK_TIMEOUT', String(slow));
  t.ok(Date.now() - t0 < 5000, 'the deadline ended it');
  const grandchild = Number((await readFile(pidFile, 'utf8')).trim());
  await new Promise((r) => setTimeout(r, 100));
  // Killed means gone or a zombie waiting for init to reap it (its parent shell was killed too).
  const state = await readFile(`/proc/${grandchild}/stat`, 'utf8').then((s) => s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3), () => 'gone');
  t.ok(state === 'gone' || state === 'Z', `the hook's background child ${grandchild} was killed with it (state ${state})`);

  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const cancelled = await caught(ex.resume(ctx(root, 'resume', ac.signal)));
  t.ok(cancelled instanceof HookError && cancelled.code === 'HOOK_ABORTED', String(cancelled));

  const bad = await caught(ex.release(ctx(root, 'release')));
  t.ok(bad instanceof HookError && bad.code === 'HOOK_BAD_RESULT', String(bad));

  const spawnErr = await caught(ex.abort(ctx(root, 'abort'), 'source'));
  t.ok(spawnErr instanceof HookError && spawnErr.code === 'HOOK_SPAWN', String(spawnErr));
});
