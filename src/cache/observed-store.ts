/**
 * Store latency and errors for metrics (issue 11, "Operations"): observeStore() wraps any PolicyStore
 * and reports each backend call once, with its duration and outcome, so one wrapper serves memory,
 * sqlite, redis (single, Sentinel, Cluster) and postgres alike. The wrapped store keeps its lease
 * methods only if the inner one has them (the resolver tells shared stores apart by their presence).
 */
import type { CacheEntry, PolicyStore } from './store.js';

/** The calls counted; `list` is timed to its end (or to the consumer's early return). */
export type StoreOperation = 'get' | 'put' | 'delete' | 'list' | 'count' | 'prune' | 'flush' | 'lease' | 'release';

export interface StoreObserver {
  /**
   * One backend call finished: `ms` since it started, `ok` false when it rejected (for `lease`: the
   * backend could not be reached, not "another daemon holds it"; `release` never rejects and reports
   * true). Must not throw.
   */
  storeOperation(kind: PolicyStore['kind'], op: StoreOperation, ms: number, ok: boolean): void;
}

export function observeStore(inner: PolicyStore, observer: StoreObserver): PolicyStore {
  const kind = inner.kind;
  const timed = async <T>(op: StoreOperation, call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      const value = await call();
      observer.storeOperation(kind, op, performance.now() - t0, true);
      return value;
    } catch (err) {
      observer.storeOperation(kind, op, performance.now() - t0, false);
      throw err;
    }
  };
  const store: PolicyStore = {
    kind,
    get: (domain) => timed('get', () => inner.get(domain)),
    put: (entry) => timed('put', () => inner.put(entry)),
    delete: (domain) => timed('delete', () => inner.delete(domain)),
    count: () => timed('count', () => inner.count()),
    prune: (now, limit) => timed('prune', () => inner.prune(now, limit)),
    flush: () => timed('flush', () => inner.flush()),
    close: () => inner.close(),
    list: () => timedList(inner, observer),
  };
  if (inner.tryLease && inner.releaseLease) {
    const tryLease = inner.tryLease.bind(inner);
    const releaseLease = inner.releaseLease.bind(inner);
    store.tryLease = (key, owner, ttlMs) => timed('lease', () => tryLease(key, owner, ttlMs));
    store.releaseLease = (key, owner) => timed('release', () => releaseLease(key, owner));
  }
  return store;
}

async function* timedList(inner: PolicyStore, observer: StoreObserver): AsyncGenerator<CacheEntry> {
  const t0 = performance.now();
  // A consumer that stops early (break) ends the generator in `finally` without an error: that is ok.
  let ok = true;
  try {
    yield* inner.list();
  } catch (err) {
    ok = false;
    throw err;
  } finally {
    observer.storeOperation(inner.kind, 'list', performance.now() - t0, ok);
  }
}
