/**
 * Batches of work off the main thread, in stream order: the shape prefetch (file contents) and
 * xattr-read (extended attributes) share. Items that need work are gathered into a batch, a
 * batch is handed to `read` (which does it on the thread pool), and every item leaves in the
 * order it came once its batch has been read. An item that needs no work closes the batch being
 * filled, so it is never held back behind one.
 *
 * Memory: at most `maxQueued` items waiting (the head's batch is awaited before more are taken,
 * so a slow read cannot let a fast source queue without limit) and `inFlight` batches read at
 * once; what a batch holds while it is read is the caller's (its arenas).
 */

/** What one stage batches, and how. */
export interface BatchPlan<I, B extends { items: I[] }> {
  /** The cost of `item` towards its batch's limit, or undefined when it needs no work. */
  weigh(item: I): number | undefined
  /** A new, empty batch. */
  open(): B
  /** Whether `b` (holding `cost` so far) must be sent before an item costing `next` joins it. */
  full(b: B, cost: number, next: number): boolean
  /** Does the batch's work: a promise for work sent away, nothing when it was done at once
   *  (the items may then leave at once). It may throw or reject: the stream then fails with
   *  that error when the batch's first item reaches the head. */
  read(b: B): Promise<void> | void
  /** Batches read at once. */
  inFlight: number
  /** Items waiting in order at most, before the head's batch is awaited. */
  maxQueued: number
}

interface Pending<B> {
  batch: B
  cost: number
  done: boolean
  failure?: unknown
  read?: Promise<void>
}

/** `source`'s items, in order, each after its batch's work is done (see the module comment). */
export async function* orderedBatches<I, B extends { items: I[] }>(source: AsyncIterable<I>, plan: BatchPlan<I, B>): AsyncIterable<I> {
  const queue: { item: I; batch: Pending<B> | null }[] = []
  let filling: Pending<B> | null = null
  let running = 0

  const submit = (): void => {
    const p = filling
    if (p === null) return
    filling = null
    let sent: Promise<void> | void = undefined
    try {
      sent = plan.read(p.batch)
    } catch (err) {
      p.failure = err ?? new Error('a batch failed')
    }
    if (sent === undefined) {
      p.done = true
      p.read = Promise.resolve()
      return
    }
    running++
    p.read = sent
      .catch((err: unknown) => {
        p.failure = err ?? new Error('a batch failed')
      })
      .finally(() => {
        p.done = true
        running--
      })
  }

  /** Items at the head whose batch is done (or that need none). */
  function* ready(): Generator<I> {
    while (queue.length > 0) {
      const head = queue[0]!
      if (head.batch !== null) {
        if (!head.batch.done) return
        if (head.batch.failure !== undefined) throw head.batch.failure
      }
      queue.shift()
      yield head.item
    }
  }

  for await (const item of source) {
    const cost = plan.weigh(item)
    if (cost !== undefined) {
      if (filling !== null && plan.full(filling.batch, filling.cost, cost)) submit()
      filling ??= { batch: plan.open(), cost: 0, done: false }
      filling.batch.items.push(item)
      filling.cost += cost
      queue.push({ item, batch: filling })
    } else {
      submit()
      if (queue.length === 0) {
        // Nothing ahead of it (an incremental backup's reused files, mostly): it leaves at once,
        // without a queue slot.
        yield item
        continue
      }
      queue.push({ item, batch: null })
    }
    yield* ready()
    // Enough reads in flight, or enough items waiting behind the oldest one: wait for it.
    while (queue.length > 0 && (running >= plan.inFlight || queue.length >= plan.maxQueued)) {
      const head = queue[0]!.batch!
      if (head === filling) submit()
      await head.read
      yield* ready()
    }
  }
  submit()
  while (queue.length > 0) {
    await queue[0]!.batch?.read
    yield* ready()
  }
}
