/**
 * The lab's state file and its one-lab-at-a-time lock, in a state directory (default
 * /run/coat/labs, or $COAT_LAB_DIR): `TAG.json` records everything a lab made, written before
 * each thing is made, so that `lab down` can undo a lab whose builder or processes died at any
 * point; `active` holds the tag of the lab that is up (created with O_EXCL, so two concurrent
 * `lab up` cannot both win).
 */
import { mkdir, readFile, readdir, rename, rm, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { CoatError } from '../src/errors.js';
import type { Topology } from '../src/vxlan/topology.js';

export const DEFAULT_STATE_DIR = '/run/coat/labs';

export function stateDir(explicit?: string): string {
  return explicit ?? process.env.COAT_LAB_DIR ?? DEFAULT_STATE_DIR;
}

export class LabError extends CoatError {
  constructor(code: 'LAB_ALREADY_UP' | 'LAB_NOT_UP' | 'LAB_BUILD_FAILED' | 'LAB_STATE' | 'LAB_CONTROLLER' | 'LAB_BAD_TAG', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface LabState {
  tag: string;
  status: 'building' | 'up' | 'failed';
  createdAt: string;
  topologyFile: string | null;
  /** The topology as the lab resolved it (OVSDB remotes, uplinks and controller filled in). */
  topology: Topology;
  runDir: string;
  namespaces: string[];
  hosts: { name: string; namespace: string; mgmtIp: string; underlayIp: string; ovsDir: string; ovsdb: string; integrationBridge: string; underlayBridge: string }[];
  endpoints: { name: string; host: string; namespace: string; ip: string; mac: string; interface: string; hostInterface: string }[];
  controller: { namespace: string; ip: string; openflow: string; pid: number | null; log: string; status: string } | null;
  /** nats-server in ctl; the token (file, mode 0600) is what the controller and agents authenticate with. */
  nats: { url: string; dir: string; tokenFile: string } | null;
  /** `coat agent` per host; `secretFile` holds the HMAC key the controller signs commands with. */
  agents: { host: string; pid: number; namespace: string; stream: string | null; dataDir: string; log: string }[];
  agentSecretFile: string | null;
  buildMs?: number;
  error?: string;
}

export function stateFile(dir: string, tag: string): string {
  return join(dir, `${tag}.json`);
}

export async function writeState(dir: string, s: LabState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const f = stateFile(dir, s.tag);
  await writeFile(f + '.tmp', JSON.stringify(s, null, 2) + '\n');
  await rename(f + '.tmp', f); // atomic: a reader never sees half a file
}

export async function readState(dir: string, tag: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile(dir, tag), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** Tags that have a state file in `dir`. */
export async function listStates(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^c[0-9a-z]{5}\.json$/.test(n)).map((n) => n.slice(0, -5));
}

const lockFile = (dir: string) => join(dir, 'active');

/** Takes the lock for `tag`, or throws LAB_ALREADY_UP naming the lab that holds it. */
export async function acquireLock(dir: string, tag: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    const fh = await open(lockFile(dir), 'wx');
    await fh.writeFile(tag + '\n');
    await fh.close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const holder = (await readFile(lockFile(dir), 'utf8').catch(() => '?')).trim();
    throw new LabError('LAB_ALREADY_UP', `a lab is already up (tag ${holder}, state in ${dir}); run \`coat lab down\` first`);
  }
}

export async function activeTag(dir: string): Promise<string | undefined> {
  const t = (await readFile(lockFile(dir), 'utf8').catch(() => '')).trim();
  return t || undefined;
}

export async function releaseLock(dir: string, tag: string): Promise<void> {
  if ((await activeTag(dir)) === tag) await rm(lockFile(dir), { force: true });
}
