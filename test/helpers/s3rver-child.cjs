'use strict'
// Runs s3rver for test/helpers/s3rver.ts in its own process: s3rver's list continuation tokens
// use DES, which Node 20's OpenSSL 3 only offers with --openssl-legacy-provider, and that flag
// must not leak into the test process. Prints {"port":N} once listening; exits when stdin closes,
// so a test process that dies cannot leave it running.
const S3rver = require('s3rver')

const [directory, bucket] = process.argv.slice(2)
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
})

server.run().then(
  (addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\n'),
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n')
    process.exit(1)
  },
)

process.stdin.on('end', () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(0),
  )
})
process.stdin.resume()
