/**
 * `coat workload server|client`: the demo workload (src/workload/). The server is coat-aware
 * (state file + restored sockets through the SDK); the client verifies every byte and prints its
 * statistics as JSON when it stops (after --duration, or on SIGTERM/SIGINT).
 */
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';
import { runServer } from '../../workload/server.js';
import { runClient, type ClientStats } from '../../workload/client.js';
import { MIN_RECORD_SIZE } from '../../workload/protocol.js';

const HELP = `usage: coat workload server [flags]
       coat workload client [flags]

server (runs until SIGTERM; prints one JSON event per line):
  --host IP              address to listen on (default 0.0.0.0)
  --port N               stream port (default 7000); ping port is --ping-port (default port+1)
  --state-dir DIR        where state.bin lives (required)
  --state-bytes M        state size in bytes, e.g. 8388608 or 8M (default 1M)
  --dirty-rate R         pages dirtied per second (default 100)
  --stream-rate B        stream bytes per second per connection, 0 = unlimited (default 1M)
  --stream-tick-ms N     the stream writes every N ms, 1..1000 (default 1)
  --record-size N        stream record size in bytes (default 256, min ${MIN_RECORD_SIZE})

client (prints statistics JSON on exit; --json is accepted and implied):
  --host IP --port N --ping-port N --record-size N   as for the server
  --ping-rate N          pings per second, 0 = no ping connection (default 50)
  --read-rate B          read at most B stream bytes per second, 0 = unlimited (default 0)
  --duration MS          stop after MS milliseconds, 0 = until SIGTERM (default 0)
  --stats-file PATH      also keep the statistics in PATH, rewritten every 200 ms
`;

function size(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const m = /^(\d+)([kKmMgG]?)$/.exec(String(v));
  if (!m) throw new UsageError(`--${name}: ${String(v)} is not a size`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

function tickMs(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--stream-tick-ms: ${String(v)} is not a whole number of ms in 1..1000`);
  return n;
}

export const command: Command = {
  summary: 'demo workload: coat-aware TCP server with M bytes of state dirtied at R pages/s, verifying client',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      host: { type: 'string' },
      port: { type: 'string' },
      'ping-port': { type: 'string' },
      'state-dir': { type: 'string' },
      'state-bytes': { type: 'string' },
      'dirty-rate': { type: 'string' },
      'stream-rate': { type: 'string' },
      'stream-tick-ms': { type: 'string' },
      'record-size': { type: 'string' },
      'ping-rate': { type: 'string' },
      'read-rate': { type: 'string' },
      duration: { type: 'string' },
      'stats-file': { type: 'string' },
    });
    const verb = positionals[0];
    if (values.help || !verb) {
      io.stdout.write(HELP);
      return values.help ? ExitCode.ok : ExitCode.usage;
    }
    const port = size(values.port, 'port', 7000);
    const common = {
      streamPort: port,
      pingPort: size(values['ping-port'], 'ping-port', port + 1),
      recordSize: size(values['record-size'], 'record-size', 256),
    };
    if (common.recordSize < MIN_RECORD_SIZE) throw new UsageError(`--record-size must be at least ${MIN_RECORD_SIZE}`);
    if (verb === 'server') {
      const stateDir = values['state-dir'];
      if (typeof stateDir !== 'string') throw new UsageError('server needs --state-dir');
      const server = await runServer({
        ...common,
        host: typeof values.host === 'string' ? values.host : '0.0.0.0',
        stateDir,
        stateBytes: size(values['state-bytes'], 'state-bytes', 1024 ** 2),
        dirtyRate: size(values['dirty-rate'], 'dirty-rate', 100),
        streamRate: size(values['stream-rate'], 'stream-rate', 1024 ** 2),
        streamTickMs: tickMs(values['stream-tick-ms']),
        events: (e) => io.stdout.write(JSON.stringify(e) + '\n'),
      });
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await server.close();
      return ExitCode.ok;
    }
    if (verb === 'client') {
      if (typeof values.host !== 'string') throw new UsageError('client needs --host');
      const client = await runClient({
        ...common,
        host: values.host,
        pingRate: size(values['ping-rate'], 'ping-rate', 50),
        readRate: size(values['read-rate'], 'read-rate', 0),
        durationMs: size(values.duration, 'duration', 0),
        ...(typeof values['stats-file'] === 'string' ? { statsFile: values['stats-file'] } : {}),
      });
      const onSignal = () => void client.stop();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      const stats: ClientStats = await client.done;
      writeJson(io.stdout, stats);
      return stats.stream.firstBadOffset === null && stats.ping.errors === 0 ? ExitCode.ok : ExitCode.negative;
    }
    throw new UsageError(`unknown verb '${verb}' (server | client)`);
  },
};
