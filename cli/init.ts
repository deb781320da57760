import type { CommandModule } from 'yargs'
import { initRepository } from '../index.js'
import { documented, globalOptions, out, password, storageOf, type GlobalArgs } from './common.js'

export const init: CommandModule<object, GlobalArgs> = {
  command: 'init',
  describe: 'create a new encrypted repository',
  builder: y => documented(globalOptions(y), [["sluice init --repo /srv/backup", "create a repository in a directory (asks for the password twice)"], ["sluice init -r s3:my-bucket/host1 --password-file ~/.sluice-pw", "create one in an S3 bucket, the password read from a file"]]),
  handler: async args => {
    const storage = storageOf(args)
    const repo = await initRepository(storage, await password(args, true))
    if (args.json) out(JSON.stringify({ id: repo.config.id, location: storage.describe() }))
    else out(`created sluice repository ${repo.config.id.slice(0, 10)} at ${storage.describe()}`)
    await repo.close()
  },
}
