/**
 * Lab fixture for the end-to-end migration tests: a lab up (default topology: edge-a, edge-b,
 * client, agents, NATS) without its own controller, since the scenario is the controller; torn
 * down at the end of the test whatever happened.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown } from '../../lab/down.js';
import { labUp } from '../../lab/up.js';
import { defaultTopology } from '../../src/vxlan/topology.js';

export async function labForMigration(t: { teardown(fn: () => unknown): void; comment(...m: unknown[]): void }): Promise<{ stateDir: string; tag: string }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'coat-e2e-'));
  t.teardown(async () => {
    await labDown(stateDir).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  });
  const st = await labUp(defaultTopology(), { stateDir, controller: false });
  t.comment(`lab ${st.tag} up in ${st.buildMs} ms`);
  return { stateDir, tag: st.tag };
}
