/**
 * lib/owners.ts: uid/gid ↔ name lookups in passwd and group files, as restic's static build reads
 * them; malformed lines are skipped, a missing file knows no names, and misses are remembered.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { OwnerNames } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const DIR = scratch('owners')

test('names by id and ids by name; a recorded name unknown here falls back to the number', () => {
  fs.writeFileSync(`${DIR}/passwd`, 'root:x:0:0:root:/root:/bin/sh\n# a comment\nbroken line\nann:x:1000:1000::/home/ann:/bin/sh\nbad:x:notanumber:1::/:/bin/false\n')
  fs.writeFileSync(`${DIR}/group`, 'root:x:0:\nstaff:x:50:ann\n')
  const n = new OwnerNames({ passwd: `${DIR}/passwd`, group: `${DIR}/group` })
  assert.equal(n.userName(1000), 'ann')
  assert.equal(n.userName(4242), undefined)
  assert.equal(n.groupName(50), 'staff')
  assert.deepEqual(n.owner({ uid: 7, gid: 8, user: 'ann', group: 'staff' }), { uid: 1000, gid: 50 })
  assert.deepEqual(n.owner({ uid: 7, gid: 8, user: 'nobody-here', group: 'nor-here' }), { uid: 7, gid: 8 })
  assert.deepEqual(n.owner({ uid: 7, gid: 8 }), { uid: 7, gid: 8 })
  assert.deepEqual(n.owner({ uid: 7, gid: 8, user: 'bad' }), { uid: 7, gid: 8 })
  // Answers are cached: the files changing afterwards does not change them (one read per miss).
  fs.writeFileSync(`${DIR}/passwd`, 'other:x:1000:1000::/:/bin/sh\n')
  assert.equal(n.userName(1000), 'ann')
})

test('no database files: no names, numbers kept', () => {
  const n = new OwnerNames({ passwd: `${DIR}/none`, group: `${DIR}/none` })
  assert.equal(n.userName(0), undefined)
  assert.deepEqual(n.owner({ uid: 3, gid: 4, user: 'root', group: 'root' }), { uid: 3, gid: 4 })
})
