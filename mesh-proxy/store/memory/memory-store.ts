import type { Store, StoreStatus } from '../types.ts';
import { MemoryBreakerBoard } from './memory-breaker-board.ts';
import { MemoryRateLimits } from './memory-rate-limits.ts';
import { MemoryRegistry } from './memory-registry.ts';
import { MemorySplits } from './memory-splits.ts';

/** The embedded store: always up, shared by every proxy in this process. */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly status: StoreStatus = 'up';
  readonly registry = new MemoryRegistry();
  readonly breakers = new MemoryBreakerBoard();
  readonly rateLimits = new MemoryRateLimits();
  readonly splits = new MemorySplits();

  onStatus(): void {}

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.registry.close();
  }
}
