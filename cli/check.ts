import type { CommandModule } from 'yargs'
import { check, parseDataSubset, SluiceError } from '../index.js'
import { PROGRESS_JSON_INTERVAL_MS, PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'
import { clock, PhaseClock } from './progress.js'
import { formatBytes, documented, globalOptions, memoryOf, memoryOptions, openRepo, out, startProgress, warnLine, type GlobalArgs } from './common.js'

export const checkCommand: CommandModule<object, GlobalArgs & { 'read-data'?: boolean; 'read-data-subset'?: string }> = {
  command: 'check',
  describe: 'verify that every snapshot can be restored',
  builder: y =>
    documented(memoryOptions(globalOptions(y)), [["sluice check", "check that every snapshot's metadata is readable and every chunk it names exists"], ["sluice check --read-data --json", "also decrypt and verify every chunk; one JSON line per problem"]], [["0", "no problems"], ["1", "problems found (listed above, then sluice: ERR_CHECK), or check could not run"]])
      .option('read-data', { type: 'boolean', describe: 'also decrypt and verify every stored chunk' })
      .option('read-data-subset', { type: 'string', describe: "read a subset of the chunks: 'n/t' for group n of t (1/t … t/t cover all once), 'x%' for a random x%, or a size (500M, 2G) for random chunks until that much is read" }),
  handler: async args => {
    const subsetText = args['read-data-subset']
    if (args['read-data'] && subsetText !== undefined) throw new SluiceError('ERR_ARGS', 'check flags --read-data and --read-data-subset cannot be used together')
    const readDataSubset = subsetText === undefined ? undefined : parseDataSubset(subsetText)
    const repo = await openRepo(args)
    const started = Date.now()
    // Progress: snapshots checked of those listed (the check counts the names beside), then
    // with --read-data(-subset) chunks and bytes read of those to read.
    const phases = new PhaseClock(started)
    const stop = startProgress(() => {
      const p = phases.p
      if (p?.phase === 'read-data') return phases.line('read data')
      const [done, total] = [p?.done ?? 0, p?.total]
      const of = total !== undefined ? `${total > 0 ? `${((100 * Math.min(done, total)) / total).toFixed(2)}% ` : ''}${done} of ${total}` : `${done}`
      return `[${clock((Date.now() - started) / 1000)}] ${of} snapshots checked, ${p?.errors ?? 0} problems`
    }, { quiet: !!args.quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    // --json: status lines as backup's, one at once and then on the interval.
    const status = () => out(JSON.stringify(phases.status()))
    if (args.json && !args.quiet) status()
    const statusTimer = args.json && !args.quiet ? setInterval(status, PROGRESS_JSON_INTERVAL_MS) : undefined
    statusTimer?.unref()
    let result
    try {
      result = await check({ ...memoryOf(args),
        repo, readData: !!args['read-data'], ...(readDataSubset ? { readDataSubset } : {}),
        onProgress: phases.update,
        // --json: restic's error lines on stdout, with what each problem is about.
        onProblem: (m, p) => {
          if (args.json) out(JSON.stringify({ message_type: 'error', ...p, message: m }))
          else warnLine(`sluice: problem: ${m}`)
        },
      })
      clearInterval(statusTimer)
      // On a terminal the finished state is drawn once before the line is cleared.
      stop(!!process.stderr.isTTY)
    } finally {
      clearInterval(statusTimer)
      stop()
      await repo.close()
    }
    if (result.leftovers.files > 0 && !args.json) {
      out(`${result.leftovers.files} leftover temporary files (${formatBytes(result.leftovers.bytes)}) of interrupted writes: the next backup removes them`)
    }
    if (args.json) out(JSON.stringify({ message_type: 'summary', num_errors: result.problems, ...result }))
    else {
      const read = args['read-data'] || readDataSubset ? ` and ${result.chunks} chunks${readDataSubset ? ` (subset ${subsetText}, ${formatBytes(result.bytesRead)})` : ''}` : ''
      out(`checked ${result.snapshots} snapshots${read}: ${result.problems === 0 ? 'no problems' : `${result.problems} problems`}`)
    }
    if (result.problems > 0) throw new SluiceError('ERR_CHECK', `check found ${result.problems} problems`)
  },
}
