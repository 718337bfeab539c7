/**
 * The netlink worker: started inside a namespace (`ip netns exec NAME node worker.js`), it opens
 * one rtnetlink socket there and runs the operations a `NetnsClient` sends, one JSON object per
 * line on stdin: `{"id":1,"op":"addAddress","args":["eth0","10.0.0.1/24"]}`; answers on stdout
 * `{"id":1,"ok":true,"result":...}` or `{"id":1,"ok":false,"error":{code,message,errno}}`.
 * It exits when stdin closes, so it never outlives the process that started it.
 */
import { createInterface } from 'node:readline';
import { Rtnl, RTNL_OPS, type RtnlOp } from './rtnl.js';

const rtnl = new Rtnl();
const rl = createInterface({ input: process.stdin });

function reply(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

rl.on('line', (line) => {
  let msg: { id: number; op: RtnlOp; args: unknown[] };
  try {
    msg = JSON.parse(line) as typeof msg;
  } catch {
    reply({ id: -1, ok: false, error: { code: 'NETNS_WORKER', message: 'request is not JSON' } });
    return;
  }
  if (!RTNL_OPS.includes(msg.op)) {
    reply({ id: msg.id, ok: false, error: { code: 'NETNS_WORKER', message: `unknown op ${String(msg.op)}` } });
    return;
  }
  const fn = rtnl[msg.op] as (...a: unknown[]) => Promise<unknown>;
  fn.apply(rtnl, msg.args).then(
    (result) => reply({ id: msg.id, ok: true, result: result ?? null }),
    (e: { code?: string; message?: string; errno?: string }) =>
      reply({ id: msg.id, ok: false, error: { code: e.code ?? 'NETNS_WORKER', message: e.message ?? String(e), errno: e.errno } }),
  );
});
rl.on('close', () => {
  rtnl.close();
  process.exit(0);
});
reply({ id: 0, ok: true, result: 'ready' });
