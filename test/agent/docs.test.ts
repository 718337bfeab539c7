/**
 * docs/agent.md and the code agree: every transfer error code and every agent error code the code
 * defines is documented, and the docs name none that the code lacks (undici's practice).
 */
import { readdir, readFile } from 'node:fs/promises';
import t from 'tap';
import { TRANSFER_ERROR_CODES } from '../../src/transfer/errors.js';
import { COMMAND_NAMES } from '../../src/agent/protocol.js';

t.test('error codes and commands in docs/agent.md match the code', async (t) => {
  const doc = await readFile(new URL('../../docs/agent.md', import.meta.url), 'utf8');
  const agentSrc = await readFile(new URL('../../src/agent/errors.ts', import.meta.url), 'utf8');
  const documentedTransfer = new Set(doc.match(/TRANSFER_[A-Z_]+/g));
  t.same([...documentedTransfer].sort(), [...TRANSFER_ERROR_CODES].sort(), 'transfer codes');
  const agentCodes = new Set(agentSrc.match(/'AGENT_[A-Z_]+'/g)?.map((c) => c.slice(1, -1)));
  const documentedAgent = new Set(doc.match(/`AGENT_(TIMEOUT|GONE|REFUSED|REMOTE_FAILURE|UNKNOWN|BAD_REPLY|ABORTED)`/g)?.map((c) => c.slice(1, -1)));
  t.same([...documentedAgent].sort(), [...agentCodes].sort(), 'agent client error codes');
  for (const c of COMMAND_NAMES) t.match(doc, `| \`${c}\` |`, `command ${c} documented`);
  // The agent's own codes (seen as remoteCode): every one it raises is documented.
  const raised = new Set<string>();
  const dir = new URL('../../src/agent/', import.meta.url);
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.ts'))) {
    const src = await readFile(new URL(f, dir), 'utf8');
    for (const m of src.matchAll(/new AgentCommandError\('(AGENT_[A-Z_]+)'/g)) raised.add(m[1]!);
  }
  t.ok(raised.has('AGENT_NOT_RESTORED') && raised.has('AGENT_CANCELLED'), 'found the raised codes');
  for (const c of raised) t.match(doc, `\`${c}\``, `agent code ${c} documented`);
});
