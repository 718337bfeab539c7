/**
 * Live capture on an interface, optionally inside a network namespace, analysed as it streams.
 *
 * Runs capture-child under `ip netns exec NS` (see that file for why a child), reads its pcap
 * stream, feeds every record to a TcpAnalyser and, if asked, writes the same bytes to a .pcap file
 * that tshark/Wireshark open as they are. `startCapture` resolves only once the child printed
 * "listening on": the packet socket is bound, so traffic started after that is all captured.
 *
 * Time limits: the start (default 10 s), the whole capture (default 10 min, then it is stopped)
 * and the stop (default 10 s, then the child is killed by its pid).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from '../log.js';
import { logger } from '../log.js';
import { CaptureError } from './errors.js';
import { PcapStreamParser, LINKTYPE_ETHERNET } from './pcap-format.js';
import { TcpAnalyser, type AnalysisOptions, type CaptureAnalysis } from './tcp-analysis.js';

export interface CaptureOptions {
  iface: string;
  netns?: string;
  /** A BPF filter (pcap-filter(7)), e.g. "tcp". Default: everything. */
  filter?: string;
  /** Bytes kept per frame (default 256: every header, no payload; the analysis needs no more). */
  snapLength?: number;
  /** Also write the capture here, as a pcap file. */
  file?: string;
  analysis?: AnalysisOptions;
  startTimeoutMs?: number;
  maxDurationMs?: number;
  stopTimeoutMs?: number;
  log?: Logger;
}

export interface KernelStats {
  received: number;
  /** Dropped because the capture did not read fast enough: the analysis missed them. */
  dropped: number;
  ifDropped: number;
}

export interface CaptureResult {
  file?: string;
  packets: number;
  kernel?: KernelStats;
  analysis: CaptureAnalysis;
}

export interface RunningCapture {
  readonly pid: number;
  /** The analysis so far (the capture keeps running). */
  snapshot(): CaptureAnalysis;
  stop(): Promise<CaptureResult>;
}

function childArgv(): string[] {
  const ts = import.meta.url.endsWith('.ts');
  const child = new URL(`./capture-child${ts ? '.ts' : '.js'}`, import.meta.url).pathname;
  // Under tsx (tests, `npm run`), the child needs the same loader to run a .ts file.
  return ts ? ['--import', import.meta.resolve('tsx'), child] : [child];
}

export function startCapture(opts: CaptureOptions): Promise<RunningCapture> {
  const log = (opts.log ?? logger('capture')).child({ iface: opts.iface, netns: opts.netns });
  const snap = opts.snapLength ?? 256;
  const node = [process.execPath, ...childArgv(), opts.iface, opts.filter ?? '', String(snap)];
  const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...node] : node;
  const parser = new PcapStreamParser();
  const analyser = new TcpAnalyser(opts.analysis);
  let packets = 0;
  let kernel: KernelStats | undefined;
  let streamError: CaptureError | undefined;
  let out: WriteStream | undefined;
  if (opts.file) out = createWriteStream(opts.file);

  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => {
    out?.write(b);
    if (streamError) return;
    try {
      for (const rec of parser.push(b)) {
        packets++;
        analyser.add(rec);
      }
      if (parser.header && parser.header.linkType !== LINKTYPE_ETHERNET) {
        throw new CaptureError('CAPTURE_LINKTYPE', `link type ${parser.header.linkType} on ${opts.iface}: only Ethernet (1) is analysed`);
      }
    } catch (err) {
      streamError = err instanceof CaptureError ? err : new CaptureError('CAPTURE_BAD_PCAP', (err as Error).message);
    }
  });

  return new Promise<RunningCapture>((resolve, reject) => {
    let listening = false;
    const fail = (msg: string): void => {
      if (listening) return;
      clearTimeout(startTimer);
      clearTimeout(maxTimer);
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
      out?.end();
      reject(new CaptureError('CAPTURE_START_FAILED', `capture on ${opts.iface}${opts.netns ? ` in ${opts.netns}` : ''}: ${msg}`));
    };
    const startTimer = setTimeout(() => fail(`no "listening on" within ${opts.startTimeoutMs ?? 10_000} ms; stderr: ${stderr.trim().slice(0, 300)}`), opts.startTimeoutMs ?? 10_000);
    child.on('error', (e) => fail(`cannot run ${argv[0]}: ${e.message}`));
    void exited.then(({ code, signal }) => fail(`capture process exited (${signal ?? code}) before listening: ${stderr.trim().slice(0, 500)}`));
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /^stats (\{.*\})$/m.exec(stderr);
      if (m) {
        const s = JSON.parse(m[1]!) as { ps_recv: number; ps_drop: number; ps_ifdrop: number };
        kernel = { received: s.ps_recv, dropped: s.ps_drop, ifDropped: s.ps_ifdrop };
      }
      if (!listening && /^listening on /m.test(stderr)) {
        listening = true;
        clearTimeout(startTimer);
        log.info({ event: 'capture-listening', childPid: child.pid, file: opts.file }, 'capture listening');
        resolve(running);
      }
    });

    let stopped: Promise<CaptureResult> | undefined;
    const maxTimer = setTimeout(() => void running.stop().catch(() => {}), opts.maxDurationMs ?? 600_000);
    const running: RunningCapture = {
      pid: child.pid ?? -1,
      snapshot: () => analyser.result(),
      stop: () => {
        stopped ??= (async () => {
          clearTimeout(maxTimer);
          child.stdin!.end('stop\n');
          const limit = opts.stopTimeoutMs ?? 10_000;
          let killTimer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<'timeout'>((r) => (killTimer = setTimeout(() => r('timeout'), limit)));
          const how = await Promise.race([exited, timedOut]);
          clearTimeout(killTimer);
          if (how === 'timeout') {
            if (child.pid) process.kill(child.pid, 'SIGKILL');
            await exited;
          }
          if (out) await new Promise<void>((r) => out!.end(r));
          if (how === 'timeout') throw new CaptureError('CAPTURE_FAILED', `capture on ${opts.iface} did not stop within ${limit} ms: killed`);
          if (how.code !== 0) throw new CaptureError('CAPTURE_FAILED', `capture on ${opts.iface} exited ${how.signal ?? how.code}: ${stderr.trim().slice(0, 500)}`);
          if (streamError) throw streamError;
          if (parser.leftover > 0) throw new CaptureError('CAPTURE_BAD_PCAP', `capture stream ended inside a record (${parser.leftover} bytes left)`);
          const result: CaptureResult = { ...(opts.file ? { file: opts.file } : {}), packets, ...(kernel ? { kernel } : {}), analysis: analyser.result() };
          log.info({ event: 'capture-stopped', packets, kernel, retransmissions: result.analysis.retransmissions, resets: result.analysis.resets }, 'capture stopped');
          return result;
        })();
        return stopped;
      },
    };
  });
}
