/** The typo helper of the command line: the known command closest to what was typed. */

/** Edit distance (insertions, deletions, substitutions) between two short words. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = row
  }
  return prev[b.length]!
}

/** The command `word` was probably meant to be: one that starts with it, or the nearest within
 *  a third of its length (at least 2 edits); undefined when none is close. */
export function suggestCommand(word: string, commands: string[]): string | undefined {
  const w = word.toLowerCase()
  const prefixed = commands.filter(c => c.startsWith(w) || w.startsWith(c))
  if (prefixed.length === 1) return prefixed[0]
  let best: string | undefined
  let bestD = Math.max(2, Math.floor(w.length / 3)) + 1
  for (const c of commands) {
    const d = distance(w, c)
    if (d < bestD) [best, bestD] = [c, d]
  }
  return best
}
