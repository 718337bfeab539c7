/**
 * The agent's small on-disk journal: what it holds for each migration (role, executor, service,
 * image dir, namespace, steps done and a step in flight). Written before and after every step
 * (atomically: temp file + rename), so an agent that restarts mid-migration can tell the controller
 * exactly what it holds and the controller can roll back (abort at the source, clear at the
 * destination) or forget it.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { MigrationHold } from './protocol.js';

interface JournalFile {
  version: 1;
  migrations: Record<string, MigrationHold>;
}

export class Journal {
  private data: JournalFile = { version: 1, migrations: {} };
  readonly path: string;

  constructor(readonly dir: string) {
    this.path = join(dir, 'journal.json');
  }

  /** Loads the journal; a missing file is an empty journal, a corrupt one is kept aside. */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      return;
    }
    try {
      const parsed = JSON.parse(text) as JournalFile;
      if (parsed.version === 1 && typeof parsed.migrations === 'object' && parsed.migrations !== null) this.data = parsed;
    } catch {
      await rename(this.path, `${this.path}.corrupt-${Date.now()}`);
    }
  }

  all(): MigrationHold[] {
    return Object.values(this.data.migrations);
  }

  get(migrationId: string): MigrationHold | undefined {
    return this.data.migrations[migrationId];
  }

  /** Applies `fn` to the entry (creating it with `init` when absent) and persists. */
  async update(migrationId: string, init: () => MigrationHold, fn: (h: MigrationHold) => void): Promise<MigrationHold> {
    const h = this.data.migrations[migrationId] ?? init();
    fn(h);
    h.updatedAt = new Date().toISOString();
    this.data.migrations[migrationId] = h;
    await this.persist();
    return h;
  }

  async remove(migrationId: string): Promise<boolean> {
    if (!(migrationId in this.data.migrations)) return false;
    delete this.data.migrations[migrationId];
    await this.persist();
    return true;
  }

  /**
   * Writes the whole journal (temp file + rename, so it lands whole). Synchronous on purpose: the
   * journal is a few KB and is written before and after every step, including the dump, restore
   * and resume steps inside the service's downtime; two thread-pool round trips per write
   * (writeFile, rename) cost more there than the write itself, and a busy pool (image streams)
   * made them wait. Being synchronous also serialises the writes: each lands whole, latest last.
   */
  private persist(): Promise<void> {
    const text = JSON.stringify(this.data, null, 1);
    const tmp = `${this.path}.tmp`;
    try {
      writeFileSync(tmp, text);
      renameSync(tmp, this.path);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve();
  }
}
