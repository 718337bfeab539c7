/**
 * `coat lab status`: what the state file says, checked against the machine (are the namespaces
 * there, are the processes alive), plus the controller's status file.
 */
import { readFile } from 'node:fs/promises';
import { listNetns } from '../src/netns/index.js';
import { isAlive } from './process.js';
import { activeTag, listStates, readState, type LabState } from './state.js';
import type { ControllerStatusFile } from './up.js';

export interface LabStatus {
  tag: string;
  status: LabState['status'];
  /** False when some namespace of the lab is missing or the controller died. */
  healthy: boolean;
  createdAt: string;
  hosts: { name: string; namespace: string; mgmtIp: string; underlayIp: string; integrationBridge: string; underlayBridge: string; ovsdb: string; ovsDir: string }[];
  endpoints: LabState['endpoints'];
  controller: (NonNullable<LabState['controller']> & { alive: boolean; switches?: ControllerStatusFile['switches']; arp?: ControllerStatusFile['arp'] }) | null;
  nats: LabState['nats'];
  agents: (LabState['agents'][number] & { alive: boolean })[];
  agentSecretFile: string | null;
  missingNamespaces: string[];
  runDir: string;
}


export async function labStatus(dir: string, tag?: string): Promise<LabStatus | undefined> {
  const t = tag ?? (await activeTag(dir)) ?? (await listStates(dir))[0];
  if (!t) return undefined;
  const s = await readState(dir, t);
  if (!s) return undefined;
  const present = new Set(await listNetns());
  const missingNamespaces = s.namespaces.filter((n) => !present.has(n));
  let controller: LabStatus['controller'] = null;
  if (s.controller) {
    let cs: ControllerStatusFile | undefined;
    try {
      cs = JSON.parse(await readFile(s.controller.status, 'utf8')) as ControllerStatusFile;
    } catch {
      cs = undefined;
    }
    controller = { ...s.controller, alive: isAlive(s.controller.pid), ...(cs ? { switches: cs.switches, arp: cs.arp } : {}) };
  }
  return {
    tag: s.tag,
    status: s.status,
    healthy: missingNamespaces.length === 0 && (controller === null || controller.alive) && (s.agents ?? []).every((a) => isAlive(a.pid)),
    createdAt: s.createdAt,
    hosts: s.hosts.map((h) => ({ name: h.name, namespace: h.namespace, mgmtIp: h.mgmtIp, underlayIp: h.underlayIp, integrationBridge: h.integrationBridge, underlayBridge: h.underlayBridge, ovsdb: h.ovsdb, ovsDir: h.ovsDir })),
    endpoints: s.endpoints,
    controller,
    nats: s.nats,
    agents: (s.agents ?? []).map((a) => ({ ...a, alive: isAlive(a.pid) })),
    agentSecretFile: s.agentSecretFile ?? null,
    missingNamespaces,
    runDir: s.runDir,
  };
}
