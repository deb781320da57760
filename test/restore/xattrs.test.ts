/**
 * Restore's extended attributes: a small file's are set by its write batch on the thread pool
 * (packed into the batch's arena, native/restorebatch.c); those that cannot be packed (a name
 * with no bytes, more than an arena with the content) or that fail there are set one by one on
 * the main thread, each failure a warning naming the file and the attribute. Whichever way,
 * content, mode, mtime and every other xattr come out as recorded.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import type { EntryMeta } from '../../lib/entry.js'
import { lgetxattrs } from '../../lib/native.js'
import { encodeTarHeader, tarPadding } from '../../lib/tar.js'
import { cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'
import { seededBytes } from '../helpers/tree.js'

const BASE = scratch('restore-xattrs')
const MTIME = 1609556645

interface Member {
  entry: EntryMeta
  content: Buffer
}

function member(path: string, type: 'file' | 'dir', content: Buffer, mode: number, xattrs: [string | Buffer, Buffer][], nsec = 0): Member {
  return {
    entry: {
      path: Buffer.from(path), type, mode, uid: 0, gid: 0, size: content.length, mtimeSec: MTIME, mtimeNsec: nsec,
      ctimeSec: 0, ctimeNsec: 0, ino: 0, dev: 0, nlink: 1,
      ...(xattrs.length > 0 ? { xattrs: xattrs.map(([n, v]) => ({ name: Buffer.from(n), value: v })) } : {}),
    },
    content,
  }
}

function tarOf(members: Member[]): Buffer {
  const parts: Buffer[] = []
  for (const m of members) {
    parts.push(encodeTarHeader(m.entry).header, m.content, Buffer.alloc(tarPadding(m.content.length)))
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

test('small files restore their xattrs, content, mode and mtime exactly; the ones that cannot be set are named', async () => {
  const members: Member[] = [member('d', 'dir', Buffer.alloc(0), 0o755, [])]
  // Over two batches of files (RESTORE_BATCH_FILES 256), most with two xattrs (one of ~1.5 KB,
  // binary; some empty), some with none: a batch holds files with and without.
  for (let i = 0; i < 600; i++) {
    const xattrs: [string, Buffer][] = i % 7 === 3 ? [] : [
      ['user.big', seededBytes(`x${i}`, 1000 + (i % 900))],
      ['user.small', i % 5 === 0 ? Buffer.alloc(0) : Buffer.from([0, 255, i & 255])],
    ]
    members.push(member(`d/f${String(i).padStart(3, '0')}`, 'file', seededBytes(`c${i}`, (i * 37) % 3000), [0o644, 0o600, 0o755, 0o640][i % 4]!, xattrs, i * 1000 + 7))
  }
  // A namespace the filesystem refuses (the batch fails it: set again one by one and named), a
  // name with no bytes (never packed), and more xattr bytes than a batch's arena holds with the
  // content (set one by one; ext4 has no room for them, tmpfs has).
  members.push(member('d/g-bad-namespace', 'file', Buffer.from('bad ns'), 0o644, [['bogus.x', Buffer.from('1')], ['user.ok', Buffer.from('kept')]]))
  members.push(member('d/g-empty-name', 'file', Buffer.from('empty name'), 0o644, [['', Buffer.from('1')], ['user.ok', Buffer.from('kept')]]))
  const huge: [string, Buffer][] = []
  for (let k = 0; k < 13; k++) huge.push([`user.h${String(k).padStart(2, '0')}`, seededBytes(`h${k}`, 65536)])
  members.push(member('d/g-huge', 'file', seededBytes('huge', 200_000), 0o644, huge))
  members.push(member('d/h-after', 'file', Buffer.from('after'), 0o644, [['user.after', Buffer.from('yes')]]))

  fs.mkdirSync(`${BASE}/home`, { recursive: true })
  const run = cliFor(`${BASE}/home`, `${BASE}/repo`, 'pw')
  assert.equal((await run(['init'])).code, 0)
  const b = await run(['backup', '--tar', '--stdin-filename', 't'], { input: tarOf(members) })
  assert.equal(b.code, 0, b.stderr)
  const r = await run(['restore', 'latest', '--target', `${BASE}/out`])
  assert.equal(r.code, 3, r.stderr)

  const warnings = r.stderr.split('\n').filter(l => l.startsWith('sluice: '))
  assert.ok(warnings.some(l => /^sluice: warning: ERR_WRITE: t\/d\/g-bad-namespace: cannot set xattr bogus\.x: /.test(l)), r.stderr)
  assert.ok(warnings.some(l => /^sluice: warning: ERR_WRITE: t\/d\/g-empty-name: cannot set xattr : /.test(l)), r.stderr)
  for (const l of warnings) assert.match(l, /^sluice: warning: ERR_WRITE: t\/d\/g-(bad-namespace|empty-name|huge): cannot set xattr /, 'no other warning')

  for (const m of members) {
    const p = `${BASE}/out/t/${m.entry.path}`
    const st = fs.lstatSync(p, { bigint: true })
    assert.equal(Number(st.mode & 0o7777n), m.entry.mode, `${m.entry.path}: mode`)
    assert.equal(st.mtimeNs, BigInt(m.entry.mtimeSec) * 1_000_000_000n + BigInt(m.entry.mtimeNsec), `${m.entry.path}: mtime`)
    if (m.entry.type !== 'file') continue
    assert.ok(fs.readFileSync(p).equals(m.content), `${m.entry.path}: content`)
    const got = lgetxattrs(Buffer.from(p)).filter(x => x.name.toString().startsWith('user.'))
    const want = (m.entry.xattrs ?? []).filter(x => x.name.toString().startsWith('user.'))
    if (m.entry.path.toString() === 'd/g-huge') {
      // Each is set exactly, or a warning names it (ext4 holds some 4 KB of them, tmpfs all).
      for (const w of want) {
        const set = got.find(x => x.name.equals(w.name))
        if (set) assert.ok(set.value.equals(w.value), `g-huge: ${w.name}`)
        else assert.ok(warnings.some(l => l.startsWith(`sluice: warning: ERR_WRITE: t/d/g-huge: cannot set xattr ${w.name}: `)), `g-huge: ${w.name} neither set nor named`)
      }
      continue
    }
    assert.deepEqual(got.map(x => [x.name.toString(), x.value.toString('hex')]), want.map(x => [x.name.toString(), x.value.toString('hex')]), `${m.entry.path}: xattrs`)
  }
})
