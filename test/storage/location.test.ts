import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import { openStorage, parseLocation } from '../../lib/storage/location.js'

function argsError(err: unknown): boolean {
  assert.ok(err instanceof SluiceError, String(err))
  assert.equal(err.code, 'ERR_ARGS')
  return true
}

describe('repository locations', () => {
  test('paths, absolute and relative, are local directories', () => {
    assert.deepEqual(parseLocation('/srv/backup'), { kind: 'local', dir: '/srv/backup' })
    assert.deepEqual(parseLocation('repo'), { kind: 'local', dir: resolve('repo') })
    assert.deepEqual(parseLocation('./a/b'), { kind: 'local', dir: resolve('a/b') })
    assert.deepEqual(parseLocation('../up'), { kind: 'local', dir: resolve('../up') })
  })

  test('local:PATH is a local directory, colons and all', () => {
    assert.deepEqual(parseLocation('local:/srv/backup'), { kind: 'local', dir: '/srv/backup' })
    assert.deepEqual(parseLocation('local:rel/x'), { kind: 'local', dir: resolve('rel/x') })
    assert.deepEqual(parseLocation('local:a:b'), { kind: 'local', dir: resolve('a:b') })
    assert.deepEqual(parseLocation('./a:b'), { kind: 'local', dir: resolve('a:b') })
    assert.throws(() => parseLocation('local:'), argsError)
  })

  test('s3:BUCKET/PREFIX is AWS, virtual-hosted unless told otherwise', () => {
    assert.deepEqual(parseLocation('s3:my-bucket/hosts/web1'), {
      kind: 's3',
      options: { bucket: 'my-bucket', prefix: 'hosts/web1' },
    })
    assert.deepEqual(parseLocation('s3:my-bucket'), { kind: 's3', options: { bucket: 'my-bucket', prefix: '' } })
    assert.deepEqual(parseLocation('s3:my-bucket/p/'), { kind: 's3', options: { bucket: 'my-bucket', prefix: 'p' } })
    // The aws-cli spelling.
    assert.deepEqual(parseLocation('s3://my-bucket/p'), { kind: 's3', options: { bucket: 'my-bucket', prefix: 'p' } })
    assert.deepEqual(parseLocation('s3:b/p', { s3PathStyle: true }), {
      kind: 's3',
      options: { bucket: 'b', prefix: 'p', forcePathStyle: true },
    })
  })

  test('s3:http(s)://ENDPOINT/BUCKET/PREFIX is an S3-compatible service, path-style by default', () => {
    assert.deepEqual(parseLocation('s3:http://127.0.0.1:9000/bkt/some/prefix'), {
      kind: 's3',
      options: { bucket: 'bkt', prefix: 'some/prefix', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
    })
    assert.deepEqual(parseLocation('s3:HTTPS://minio.example.org/bkt'), {
      kind: 's3',
      options: { bucket: 'bkt', prefix: '', endpoint: 'https://minio.example.org', forcePathStyle: true },
    })
    assert.deepEqual(parseLocation('s3:https://s3.example.org/bkt/p', { s3PathStyle: false }), {
      kind: 's3',
      options: { bucket: 'bkt', prefix: 'p', endpoint: 'https://s3.example.org', forcePathStyle: false },
    })
  })

  test('malformed S3 locations and unknown schemes are ERR_ARGS', () => {
    for (const bad of [
      '',
      '   ',
      's3:',
      's3:/',
      's3:http://host:9000',
      's3:http://host:9000/',
      's3:bucket/a//b',
      's3:bucket/a/../b',
      's3:ftp://host/bkt',
      's3:bad bucket/x',
      'sftp:user@host:/srv/repo',
      'rclone:remote:path',
      'b2:bucket/path',
    ]) {
      assert.throws(() => parseLocation(bad), argsError, JSON.stringify(bad))
    }
    assert.throws(() => parseLocation('sftp:host:/x'), /unknown repository scheme "sftp:"/)
  })

  test('openStorage opens the backend the location names', async () => {
    const local = openStorage('local:/tmp/sluice-location-test-never-created')
    assert.equal(local.describe(), '/tmp/sluice-location-test-never-created')
    const s3 = openStorage('s3:http://127.0.0.1:9/bkt/pre')
    assert.equal(s3.describe(), 's3:http://127.0.0.1:9/bkt/pre')
    await s3.close()
    const aws = openStorage('s3:bkt/pre')
    assert.equal(aws.describe(), 's3:bkt/pre')
    await aws.close()
  })
})
