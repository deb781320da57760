import type { CommandModule } from 'yargs'
import { check, parseDataSubset, SluiceError } from '../index.js'
import { formatBytes, globalOptions, openRepo, out, type GlobalArgs } from './common.js'

export const checkCommand: CommandModule<object, GlobalArgs & { 'read-data'?: boolean; 'read-data-subset'?: string }> = {
  command: 'check',
  describe: 'verify that every snapshot can be restored',
  builder: y =>
    globalOptions(y)
      .option('read-data', { type: 'boolean', describe: 'also decrypt and verify every stored chunk' })
      .option('read-data-subset', { type: 'string', describe: "read a subset of the chunks: 'n/t' for group n of t (1/t … t/t cover all once), 'x%' for a random x%, or a size (500M, 2G) for random chunks until that much is read" }),
  handler: async args => {
    const subsetText = args['read-data-subset']
    if (args['read-data'] && subsetText !== undefined) throw new SluiceError('ERR_ARGS', 'check flags --read-data and --read-data-subset cannot be used together')
    const readDataSubset = subsetText === undefined ? undefined : parseDataSubset(subsetText)
    const repo = await openRepo(args)
    let result
    try {
      result = await check({
        repo, readData: !!args['read-data'], ...(readDataSubset ? { readDataSubset } : {}),
        onProblem: m => process.stderr.write(`sluice: problem: ${m}\n`),
      })
    } finally {
      await repo.close()
    }
    if (result.leftovers.files > 0 && !args.json) {
      out(`${result.leftovers.files} leftover temporary files (${formatBytes(result.leftovers.bytes)}) of interrupted writes: the next backup removes them`)
    }
    if (args.json) out(JSON.stringify(result))
    else {
      const read = args['read-data'] || readDataSubset ? ` and ${result.chunks} chunks${readDataSubset ? ` (subset ${subsetText}, ${formatBytes(result.bytesRead)})` : ''}` : ''
      out(`checked ${result.snapshots} snapshots${read}: ${result.problems === 0 ? 'no problems' : `${result.problems} problems`}`)
    }
    if (result.problems > 0) throw new SluiceError('ERR_CHECK', `check found ${result.problems} problems`)
  },
}
