/**
 * Writes bytes to a Node Writable (a file, a pipe, process.stdout) with backpressure, and turns
 * the reader going away (EPIPE, as with `| head -c 100`) into a quiet stop instead of a crash:
 * after it, writes are dropped and `closed` is true. Holds nothing but the caller's piece.
 */
import type { Writable } from 'node:stream'
import { SluiceError, isErrno } from './errors.js'

export class OutputPort {
  /** True once the reader went away: what is written after that is dropped. */
  closed = false
  private failure: SluiceError | null = null
  private wake: (() => void) | null = null

  /** `onClosed` is called once when the reader goes away, so a caller can stop producing. */
  constructor(private readonly out: Writable, private readonly onClosed?: () => void) {
    out.on('error', (err) => {
      if (isErrno(err, 'EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED')) this.markClosed()
      else if (!this.closed) this.failure ??= new SluiceError('ERR_WRITE', `cannot write the output: ${err.message}`, { cause: err })
      this.poke()
    })
    out.on('close', () => this.poke())
  }

  private markClosed(): void {
    if (this.closed) return
    this.closed = true
    this.onClosed?.()
  }

  private poke(): void {
    const w = this.wake
    this.wake = null
    w?.()
  }

  private check(): boolean {
    if (this.failure) throw this.failure
    if (!this.closed && (this.out.destroyed || this.out.writableEnded)) this.markClosed()
    return !this.closed
  }

  /** Writes one piece; resolves when the output can take more. */
  async write(piece: Uint8Array): Promise<void> {
    if (!this.check() || piece.length === 0) return
    if (this.out.write(piece)) return
    await new Promise<void>((resolve) => {
      this.wake = resolve
      this.out.once('drain', () => this.poke())
    })
    this.check()
  }

  /** Ends the output and waits until it is flushed (or the reader went away). */
  async end(): Promise<void> {
    if (!this.check()) return
    await new Promise<void>((resolve) => {
      this.wake = resolve
      this.out.end(() => this.poke())
    })
    this.check()
  }
}
