/**
 * A store with some of its methods replaced (to count what a server reads, delay a watch,
 * lose a transaction's answer), everything else passed to the real store underneath.
 */
import type { Store } from '../../src/store/store.js';

export function storeWith(store: Store, overrides: (real: Store) => Partial<Store>): Store {
  const replaced = overrides(store) as Record<PropertyKey, unknown>;
  return new Proxy(store, {
    get(target, prop) {
      if (prop in replaced) return replaced[prop];
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
