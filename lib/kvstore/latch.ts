/** A yes/no state that can be awaited: the `synced` of the kvstore stores. */
export class Latch {
  private open = false;
  private readonly waiters: Array<() => void> = [];

  get isOpen(): boolean {
    return this.open;
  }

  /** Resolves once the latch is open (at once when it already is). */
  wait(): Promise<void> {
    return this.open ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Opens the latch and releases every waiter. */
  release(): void {
    this.open = true;
    this.waiters.splice(0).forEach((resolve) => resolve());
  }

  /** Closed again: later wait() calls wait for the next release(). */
  reset(): void {
    this.open = false;
  }
}
