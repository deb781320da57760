/**
 * A fresh temporary folder per test file (and per call), removed when the process exits, so two
 * checkouts running the suite on one machine never share a path.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function scratch(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${name}-`))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}
