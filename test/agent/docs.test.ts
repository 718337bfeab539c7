/**
 * docs/agent.md and the code agree: every transfer error code and every agent error code the code
 * defines is documented, and the docs name none that the code lacks (undici's practice).
 */
import { readFile } from 'node:fs/promises';
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
});
