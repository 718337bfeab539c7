/**
 * `coat lab up|down|status`: the embedded multi-host lab (lab/up.ts describes what it builds).
 */
import { readFile } from 'node:fs/promises';
import { labDown } from '../../../lab/down.js';
import { stateDir } from '../../../lab/state.js';
import { labStatus } from '../../../lab/status.js';
import { labUp } from '../../../lab/up.js';
import { runMininet } from '../../../lab/mininet/run.js';
import { hasCode } from '../../errors.js';
import { defaultTopology, parseTopology, TopologyError } from '../../vxlan/topology.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat lab up [FILE] [--state-dir DIR] [--no-controller] [--no-agents] [--json]
       coat lab down [--tag TAG] [--state-dir DIR] [--json]
       coat lab status [--state-dir DIR] [--json]
       coat lab mininet [FILE] [--test] [--json]

Builds COAT's testbed on this machine in network namespaces named after a unique tag: one namespace
per host with its own ovsdb-server + ovs-vswitchd (integration and underlay bridges), an underlay
fabric shaped per link (tbf), a management network to a ctl namespace running nats-server and
\`coat controller\`, a VXLAN mesh, and the endpoints (service on edge-a, client on client).

  up [FILE]        build the lab of topology FILE (YAML or JSON; default: COAT's testbed, see
                   lab/topologies/coat-testbed.yaml). Refused while another lab is up.
  down             remove the lab: processes (by pid), namespaces, interfaces, run directory;
                   works after a crash too (state file plus a sweep by tag, which also takes
                   links named TAG-* here, e.g. netdev taps, and temp dirs coat-TAG-*)
  status           what is up; --json: {tag, hosts:[{name, namespace}], endpoints:[{name, host,
                   namespace, ip, mac}], controller, ...}

  mininet [FILE]   the same overlay in Mininet: one OVS user-space switch per host, joined over
                   VXLAN (a VTEP per host on an underlay bridge), endpoints as Mininet hosts, coat
                   controller as the remote controller; opens Mininet's CLI, or with --test pings
                   every endpoint pair and exits (0 when all pass)

  --state-dir DIR  where state files live (default $COAT_LAB_DIR or /run/coat/labs)
  --tag TAG        down: remove the lab with this tag (also without a state file)
  --no-controller  up: do not start coat controller (bridges stay without flows)
  --no-agents      up: do not start a coat agent per host
  --json           machine-readable output on stdout; progress always goes to stderr
`;

export const command: Command = {
  summary: 'build, inspect or remove the multi-host lab (namespaces, OVS, VXLAN overlay)',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      'state-dir': { type: 'string' },
      tag: { type: 'string' },
      'no-controller': { type: 'boolean' },
      test: { type: 'boolean' },
      'no-agents': { type: 'boolean' },
    });
    const [verb, ...rest] = positionals;
    if (values.help || verb === undefined) {
      io.stdout.write(HELP);
      return values.help ? ExitCode.ok : ExitCode.usage;
    }
    const dir = stateDir(values['state-dir'] as string | undefined);
    const json = !!values.json;
    switch (verb) {
      case 'up': {
        if (rest.length > 1) throw new UsageError(`lab up takes at most one topology file (got ${rest.join(' ')})`);
        let topo;
        try {
          topo = rest[0] ? parseTopology(await readFile(rest[0], 'utf8'), rest[0]) : defaultTopology();
        } catch (e) {
          if (e instanceof TopologyError) {
            io.stderr.write(`coat lab up: ${e.message}\n`);
            return ExitCode.badInput;
          }
          throw new UsageError(`cannot read ${rest[0]}: ${(e as Error).message}`);
        }
        try {
          const s = await labUp(topo, { stateDir: dir, ...(rest[0] ? { topologyFile: rest[0] } : {}), controller: !values['no-controller'], agents: !values['no-agents'], progress: (l) => io.stderr.write(l + '\n') });
          const st = await labStatus(dir, s.tag);
          if (json) writeJson(io.stdout, st);
          else io.stdout.write(`lab ${s.tag} is up: ${s.hosts.map((h) => `${h.name} (${h.namespace})`).join(', ')}\n` + s.endpoints.map((e) => `  ${e.name}: ${e.ip} ${e.mac} on ${e.host}, namespace ${e.namespace}\n`).join(''));
          return ExitCode.ok;
        } catch (e) {
          if (hasCode(e, 'LAB_ALREADY_UP')) {
            io.stderr.write(`coat lab up: ${(e as Error).message}\n`);
            return ExitCode.negative;
          }
          throw e;
        }
      }
      case 'down': {
        if (rest.length) throw new UsageError(`lab down takes no arguments (got ${rest.join(' ')})`);
        let reports;
        try {
          reports = await labDown(dir, values.tag as string | undefined);
        } catch (e) {
          if (hasCode(e, 'LAB_BAD_TAG')) throw new UsageError(`--tag: ${(e as Error).message}`);
          throw e;
        }
        if (json) writeJson(io.stdout, reports);
        else if (reports.length === 0) io.stdout.write('no lab to remove\n');
        else for (const r of reports) io.stdout.write(`lab ${r.tag} removed: ${r.killed.length} processes, ${r.namespaces.length} namespaces, ${r.links.length} stray links\n`);
        const errors = reports.flatMap((r) => r.errors.map((e) => `lab ${r.tag}: ${e}`));
        for (const e of errors) io.stderr.write(`coat lab down: could not remove ${e}\n`);
        return errors.length === 0 ? ExitCode.ok : ExitCode.negative;
      }
      case 'status': {
        if (rest.length) throw new UsageError(`lab status takes no arguments (got ${rest.join(' ')})`);
        const st = await labStatus(dir, values.tag as string | undefined);
        if (!st) {
          if (json) writeJson(io.stdout, null);
          else io.stdout.write('no lab is up\n');
          return ExitCode.negative;
        }
        if (json) writeJson(io.stdout, st);
        else {
          io.stdout.write(`lab ${st.tag}: ${st.status}${st.healthy ? '' : ' (UNHEALTHY: ' + [...st.missingNamespaces.map((n) => `namespace ${n} missing`), st.controller && !st.controller.alive ? 'controller not running' : ''].filter(Boolean).join(', ') + ')'}\n`);
          for (const h of st.hosts) io.stdout.write(`  host ${h.name}: namespace ${h.namespace}, underlay ${h.underlayIp}, management ${h.mgmtIp}\n`);
          for (const e of st.endpoints) io.stdout.write(`  endpoint ${e.name}: ${e.ip} ${e.mac} on ${e.host}, namespace ${e.namespace}\n`);
          for (const a of st.agents) io.stdout.write(`  agent ${a.host}: pid ${a.pid} ${a.alive ? 'running' : 'NOT running'}, streams on ${a.stream ?? '?'}\n`);
          if (st.controller) io.stdout.write(`  controller: pid ${st.controller.pid} ${st.controller.alive ? 'running' : 'NOT running'}, ${st.controller.switches?.filter((s) => s.reconciled).length ?? 0} bridges programmed, ARP replies ${st.controller.arp?.replies ?? 0}\n`);
        }
        return st.healthy ? ExitCode.ok : ExitCode.negative;
      }
      case 'mininet': {
        if (rest.length > 1) throw new UsageError(`lab mininet takes at most one topology file (got ${rest.join(' ')})`);
        let topo;
        try {
          topo = rest[0] ? parseTopology(await readFile(rest[0], 'utf8'), rest[0]) : defaultTopology();
        } catch (e) {
          if (e instanceof TopologyError) {
            io.stderr.write(`coat lab mininet: ${e.message}\n`);
            return ExitCode.badInput;
          }
          throw new UsageError(`cannot read ${rest[0]}: ${(e as Error).message}`);
        }
        const r = await runMininet(topo, { test: !!values.test, progress: (l) => io.stderr.write(l + '\n') });
        if (values.test) {
          if (json) writeJson(io.stdout, { tag: r.tag, exitCode: r.exitCode, ...r.result, arp: r.controller?.arp });
          else io.stdout.write(`mininet ${r.tag}: ${r.result?.pairs ?? 0} endpoint pairs reached each other${r.result?.failures.length ? `; FAILED: ${r.result.failures.join(', ')}` : ''}; coat answered ${r.controller?.arp.replies ?? 0} ARP requests\n`);
          if (r.exitCode !== 0 && !r.result) io.stderr.write(r.output.slice(-2000));
        }
        return r.exitCode === 0 ? ExitCode.ok : ExitCode.negative;
      }
      default:
        throw new UsageError(`unknown lab verb '${verb}' (up, down, status, mininet)`);
    }
  },
};
