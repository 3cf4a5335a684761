// Traffic splits in process memory (the embedded store): every proxy of the process shares them.
import { SplitError, type SplitSpec, type TrafficSplit } from '../../traffic/split.ts';
import type { SplitEvent, SplitStore } from '../types.ts';

export class MemorySplits implements SplitStore {
  readonly #splits = new Map<string, TrafficSplit>();
  /** Versions outlive a delete, so a split set again never reuses a number. */
  readonly #versions = new Map<string, number>();
  readonly #listeners = new Set<(e: SplitEvent) => void>();

  async list(): Promise<TrafficSplit[]> {
    return [...this.#splits.values()];
  }

  async put(service: string, spec: SplitSpec, expectVersion?: number): Promise<TrafficSplit> {
    const current = this.#splits.get(service)?.version ?? 0;
    if (expectVersion !== undefined && expectVersion !== current) {
      throw new SplitError('SPLIT_CONFLICT', `the split of "${service}" is at version ${current}, not ${expectVersion}`);
    }
    const version = (this.#versions.get(service) ?? 0) + 1;
    this.#versions.set(service, version);
    const split: TrafficSplit = Object.freeze({ ...spec, service, version, updatedAt: new Date().toISOString() });
    this.#splits.set(service, split);
    this.#emit({ kind: 'put', split });
    return split;
  }

  async delete(service: string): Promise<boolean> {
    const had = this.#splits.delete(service);
    if (had) this.#emit({ kind: 'delete', service });
    return had;
  }

  watch(listener: (e: SplitEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(e: SplitEvent): void {
    // Asynchronously, as a store's pub/sub would deliver it.
    queueMicrotask(() => {
      for (const l of this.#listeners) l(e);
    });
  }
}
