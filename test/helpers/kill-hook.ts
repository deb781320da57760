/**
 * A module to preload (`node --import FILE`) that SIGKILLs the process the moment it is about to
 * unlink a file whose path contains `marker`: a kill at an exact step of a spawned command.
 */
import fs from 'node:fs'

export function killOnUnlinkHook(dir: string, marker: string): string {
  fs.mkdirSync(dir, { recursive: true })
  const file = `${dir}/kill-on-unlink.mjs`
  fs.writeFileSync(file, `
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
const unlink = fs.promises.unlink
fs.promises.unlink = function (p, ...rest) {
  if (String(p).includes(${JSON.stringify(marker)})) process.kill(process.pid, 'SIGKILL')
  return unlink.call(this, p, ...rest)
}
const unlinkSync = fs.unlinkSync
fs.unlinkSync = function (p, ...rest) {
  if (String(p).includes(${JSON.stringify(marker)})) process.kill(process.pid, 'SIGKILL')
  return unlinkSync.call(this, p, ...rest)
}
syncBuiltinESMExports()
`)
  return file
}
