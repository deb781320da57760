/**
 * An HTTP proxy on a free loopback port that injects the faults a real S3 endpoint shows:
 * connections dropped mid-request (before the server saw the request, or after it acted but
 * before the answer arrived), 503 SlowDown answers, slow responses, and bodies cut off halfway. Seeded, so a run
 * injects the same mix each time (which request gets which fault depends on arrival order).
 *
 * With `ifNoneMatch`, it also enforces `If-None-Match: *` on PutObject the way S3 does (412 when
 * the key exists), which s3rver ignores: such PUTs are serialised per key, each preceded by an
 * anonymous HEAD (s3rver answers those), and are never given a fault.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rng } from './rng.js'

export interface FaultRates {
  /** Fraction of requests whose connection is destroyed. */
  drop: number
  /** Fraction answered 503 SlowDown without reaching the server. */
  slowDown: number
  /** Fraction whose response is held back `delayMs` before it is sent. */
  delay: number
  delayMs: number
  /** Fraction whose response body is cut off halfway (the connection then closes). */
  truncate: number
}

export interface ProxyOptions {
  seed: number
  /** Enforce `If-None-Match: *` on PUT (see above). */
  ifNoneMatch?: boolean
}

export interface FaultStats {
  requests: number
  droppedBefore: number
  droppedAfter: number
  slowDown: number
  delayed: number
  truncated: number
  forwarded: number
  /** Conditional PUTs answered 412 because the key existed. */
  preconditionFailed: number
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` */
  endpoint: string
  stats: FaultStats
  /** Changes the rates for requests that arrive from now on. */
  setRates(rates: Partial<FaultRates>): void
  stop(): Promise<void>
}


const SLOW_DOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>' +
  '<Message>Please reduce your request rate.</Message><RequestId>FAULTPROXY</RequestId></Error>'

const PRECONDITION_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
  '<Message>At least one of the pre-conditions you specified did not hold</Message>' +
  '<Condition>If-None-Match</Condition><RequestId>FAULTPROXY</RequestId></Error>'

/** Starts a proxy to `target` (`http://host:port`). */
export async function startFaultProxy(
  target: string,
  opts: Partial<FaultRates> & ProxyOptions,
): Promise<FaultProxy> {
  const upstream = new URL(target)
  const random = rng(opts.seed)
  const rates: FaultRates = { drop: 0, slowDown: 0, delay: 0, delayMs: 0, truncate: 0 }
  const setRates = (r: Partial<FaultRates>): void => {
    for (const [k, v] of Object.entries(r)) if (v !== undefined && k in rates) rates[k as keyof FaultRates] = v
  }
  setRates(opts)
  const stats: FaultStats = {
    requests: 0,
    droppedBefore: 0,
    droppedAfter: 0,
    slowDown: 0,
    delayed: 0,
    truncated: 0,
    forwarded: 0,
    preconditionFailed: 0,
  }
  /** Per object path: the tail of the chain of conditional PUTs on it. */
  const locks = new Map<string, Promise<void>>()

  function forward(req: IncomingMessage, res: ServerResponse, fate: 'ok' | 'drop-after' | 'delay' | 'truncate'): void {
    const up = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upRes) => {
        if (fate === 'drop-after') {
          // The server acted on the request; the client never learns how it went.
          upRes.resume()
          req.socket.destroy()
          return
        }
        const send = (): void => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers)
          const length = Number(upRes.headers['content-length'] ?? 0)
          if (fate === 'truncate' && length > 1) {
            // Headers promise `length` bytes; half of them arrive, then the connection dies.
            let sent = 0
            upRes.on('data', (chunk: Buffer) => {
              if (sent >= length / 2) return
              const part = chunk.subarray(0, Math.ceil(length / 2) - sent)
              sent += part.length
              res.write(part)
              if (sent >= length / 2) setImmediate(() => req.socket.destroy())
            })
            return
          }
          upRes.pipe(res)
        }
        if (fate === 'delay') setTimeout(send, rates.delayMs)
        else send()
      },
    )
    up.on('error', () => req.socket.destroy())
    req.pipe(up)
  }

  /** A PUT with If-None-Match: * — one at a time per path: HEAD, then 412 or the PUT itself. */
  async function conditionalPut(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The object's path without the query (the SDK adds ?x-id=PutObject).
    const path = (req.url ?? '/').split('?')[0]!
    const before = locks.get(path) ?? Promise.resolve()
    let release!: () => void
    const mine = before.then(() => new Promise<void>((r) => (release = r)))
    locks.set(path, mine)
    await before
    try {
      const head = await new Promise<number>((resolve, reject) => {
        const h = httpRequest({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path }, (r) => {
          r.resume()
          resolve(r.statusCode ?? 0)
        })
        h.on('error', reject)
        h.end()
      })
      if (head === 200) {
        stats.preconditionFailed++
        req.resume()
        await new Promise<void>((r) => req.on('end', () => r()))
        res.writeHead(412, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(PRECONDITION_XML) })
        res.end(PRECONDITION_XML)
        return
      }
      stats.forwarded++
      await new Promise<void>((resolve) => {
        res.on('close', () => resolve())
        forward(req, res, 'ok')
      })
    } catch {
      req.socket.destroy()
    } finally {
      release()
      if (locks.get(path) === mine) locks.delete(path)
    }
  }

  const server = createServer((req, res) => {
    stats.requests++
    if (opts.ifNoneMatch && req.method === 'PUT' && req.headers['if-none-match'] === '*' && !/[?&](uploadId|partNumber)=/.test(req.url ?? '')) {
      void conditionalPut(req, res)
      return
    }
    const r = random()
    if (r < rates.drop) {
      if (random() < 0.5) {
        stats.droppedBefore++
        req.socket.destroy()
      } else {
        stats.droppedAfter++
        forward(req, res, 'drop-after')
      }
      return
    }
    if (r < rates.drop + rates.slowDown) {
      stats.slowDown++
      req.resume()
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN_XML) })
        res.end(SLOW_DOWN_XML)
      })
      return
    }
    if (r < rates.drop + rates.slowDown + rates.delay) {
      stats.delayed++
      forward(req, res, 'delay')
      return
    }
    if (r < rates.drop + rates.slowDown + rates.delay + rates.truncate) {
      stats.truncated++
      forward(req, res, 'truncate')
      return
    }
    stats.forwarded++
    forward(req, res, 'ok')
  })
  server.on('clientError', (_err, socket) => socket.destroy())

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setRates,
    async stop() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
