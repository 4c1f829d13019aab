/**
 * One queue per key: `run(key, fn)` starts `fn` once every earlier call for the same key has
 * settled, so a check and the write that depends on it cannot interleave with another's.
 * Keys with nothing queued are forgotten.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(fn);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
