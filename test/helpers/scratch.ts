/**
 * A fresh temporary folder per test file (and per call), removed when the process exits, so two
 * checkouts running the suite on one machine never share a path.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function scratch(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${name}-`))
  process.on('exit', () => {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // A folder a test left busy (a mount) stays behind rather than failing the run.
    }
  })
  return dir
}
