import type { CommandModule } from 'yargs'
import { check, SluiceError } from '../index.js'
import { formatBytes, documented, globalOptions, openRepo, out, type GlobalArgs } from './common.js'

export const checkCommand: CommandModule<object, GlobalArgs & { 'read-data'?: boolean }> = {
  command: 'check',
  describe: 'verify that every snapshot can be restored',
  builder: y => documented(globalOptions(y), [["sluice check", "check that every snapshot's metadata is readable and every chunk it names exists"], ["sluice check --read-data --json", "also decrypt and verify every chunk; one JSON line per problem"]], [["0", "no problems"], ["1", "problems found (listed above, then sluice: ERR_CHECK), or check could not run"]]).option('read-data', { type: 'boolean', describe: 'also decrypt and verify every stored chunk' }),
  handler: async args => {
    const repo = await openRepo(args)
    let result
    try {
      result = await check({
        repo,
        readData: !!args['read-data'],
        // --json: restic's error lines on stdout, with what each problem is about.
        onProblem: (m, p) => (args.json ? out(JSON.stringify({ message_type: 'error', ...p, message: m })) : process.stderr.write(`sluice: problem: ${m}\n`)),
      })
    } finally {
      await repo.close()
    }
    if (result.leftovers.files > 0 && !args.json) {
      out(`${result.leftovers.files} leftover temporary files (${formatBytes(result.leftovers.bytes)}) of interrupted writes: the next backup removes them`)
    }
    if (args.json) out(JSON.stringify({ message_type: 'summary', num_errors: result.problems, ...result }))
    else out(`checked ${result.snapshots} snapshots${args['read-data'] ? ` and ${result.chunks} chunks` : ''}: ${result.problems === 0 ? 'no problems' : `${result.problems} problems`}`)
    if (result.problems > 0) throw new SluiceError('ERR_CHECK', `check found ${result.problems} problems`)
  },
}
