import type { CommandModule } from 'yargs'
import { SluiceError, initRepository } from '../index.js'
import { documented, globalOptions, out, password, storageOf, type GlobalArgs } from './common.js'
import { fromOptions, openSourceRepo } from './copy.js'

interface InitArgs extends GlobalArgs {
  'copy-chunker-params'?: boolean
  'from-repo'?: string
  'from-password-file'?: string
}

export const init: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'create a new encrypted repository',
  builder: y =>
    fromOptions(documented(globalOptions(y), [["sluice init --repo /srv/backup", "create a repository in a directory (asks for the password twice)"], ["sluice init -r s3:my-bucket/host1 --password-file ~/.sluice-pw", "create one in an S3 bucket, the password read from a file"]])).option('copy-chunker-params', {
      type: 'boolean',
      describe: "copy the chunker parameters (and chunk id key) of --from-repo, so `copy` moves that repository's chunks as they are",
    }),
  handler: async args => {
    const storage = storageOf(args)
    const source = args['copy-chunker-params'] ? await openSourceRepo(args) : undefined
    if (!source && args['from-repo']) throw new SluiceError('ERR_ARGS', '--from-repo needs --copy-chunker-params here')
    const repo = await initRepository(storage, await password(args, true), source ? { copyChunkerParams: source } : {})
    await source?.close()
    if (args.json) out(JSON.stringify({ id: repo.config.id, location: storage.describe() }))
    else out(`created sluice repository ${repo.config.id.slice(0, 10)} at ${storage.describe()}`)
    await repo.close()
  },
}
