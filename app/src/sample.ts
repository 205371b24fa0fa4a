// Random choice of sockets, for the drain (all of them, in random order) and
// the rebalancer (a few of them): no group of clients, say the oldest, always
// moves first.

/**
 * `n` distinct elements of `items` in random order: a partial Fisher–Yates
 * shuffle, in place (`items` is reordered). `n = items.length` shuffles all.
 */
export function randomSample<T>(items: T[], n: number, random: () => number): T[] {
  const count = Math.max(0, Math.min(n, items.length));
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (items.length - i));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return count === items.length ? items : items.slice(0, count);
}
