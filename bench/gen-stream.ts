/**
 * A seeded, non-repeating byte stream for stdin benchmarks: `node --import tsx
 * bench/gen-stream.ts MIB [SEED] | sluice backup --stdin`. Each MiB is half AES-CTR noise
 * (incompressible) and half text drawn from that noise (compresses to about a half), so
 * neither dedup nor compression makes a long stream trivial. Runs at several hundred MB/s,
 * well above the backup it feeds.
 */
import { createCipheriv, createHash } from 'node:crypto'

const mib = Number(process.argv[2] ?? '100')
const seed = process.argv[3] ?? 'sluice'
if (!(mib > 0)) {
  process.stderr.write('usage: gen-stream.ts MIB [SEED]\n')
  process.exit(2)
}
const key = createHash('sha256').update(seed).digest()
const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
const zeros = Buffer.alloc(1 << 20)
const ALPHABET = Buffer.from('etaoin shrdlu cmfwypvbgkqjxz\n,.ETAOINSHRDLU0123456789 the and of ')
const TEXT = Uint8Array.from({ length: 256 }, (_, b) => ALPHABET[b % ALPHABET.length]!)

let left = mib
function write(): void {
  while (left > 0) {
    const block = cipher.update(zeros)
    for (let i = block.length >> 1; i < block.length; i++) block[i] = TEXT[block[i]!]!
    left--
    if (!process.stdout.write(block)) {
      process.stdout.once('drain', write)
      return
    }
  }
}
write()
