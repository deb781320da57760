import type { CommandModule } from 'yargs'
import { SluiceError, copy, openRepository, openStorage, paceMemory, type CopyEvent } from '../index.js'
import { filterOf, filterOptions, type FilterArgs } from './forget.js'
import { formatBytes, documented, globalOptions, memoryOf, memoryOptions, openRepo, out, readPassword, repoWarning, storageOptions, type GlobalArgs } from './common.js'

interface CopyArgs extends GlobalArgs, FilterArgs {
  snapshots?: string[]
  'from-repo'?: string
  'from-password-file'?: string
}

/** The source repository of copy and of init --copy-chunker-params: --from-repo (or
 *  $SLUICE_FROM_REPOSITORY), its password from --from-password-file, $SLUICE_FROM_PASSWORD or
 *  a prompt, as restic's --from-* options. */
export async function openSourceRepo(args: GlobalArgs & { 'from-repo'?: string; 'from-password-file'?: string }) {
  const loc = args['from-repo'] ?? process.env.SLUICE_FROM_REPOSITORY
  if (!loc) throw new SluiceError('ERR_ARGS', 'no source repository given: use --from-repo or set SLUICE_FROM_REPOSITORY')
  const storage = openStorage(loc, storageOptions(args))
  const pw = await readPassword({
    file: args['from-password-file'],
    env: 'SLUICE_FROM_PASSWORD',
    flag: '--from-password-file',
    question: 'enter password for source repository: ',
  })
  return openRepository(storage, pw, { onWarning: repoWarning })
}

export function fromOptions<T>(y: import('yargs').Argv<T>) {
  return y
    .option('from-repo', { type: 'string', describe: 'source repository to copy snapshots from (default: $SLUICE_FROM_REPOSITORY)' })
    .option('from-password-file', { type: 'string', describe: 'read the source repository password from this file (default: $SLUICE_FROM_PASSWORD, else a prompt)' })
}

const time = (iso: string) => iso.replace('T', ' ').slice(0, 19)

export const copyCommand: CommandModule<object, CopyArgs> = {
  command: 'copy [snapshots..]',
  describe: 'copy snapshots from one repository to another',
  builder: y =>
    filterOptions(fromOptions(documented(memoryOptions(globalOptions(y)), [
      ['sluice copy --from-repo /srv/backup -r s3:my-bucket/host1', 'copy every snapshot not yet there (SLUICE_FROM_PASSWORD or a prompt for the source)'],
      ['sluice copy --from-repo /srv/backup --from-password-file ~/.pw --host laptop latest', "copy one host's newest snapshot"],
      ['sluice init -r /mnt/usb --copy-chunker-params --from-repo /srv/backup', 'first make a repository whose chunks deduplicate with the source'],
    ]))).positional('snapshots', {
      type: 'string',
      array: true,
      describe: 'snapshots to copy (ids or latest; default: all that match the filters)',
    }),
  handler: async args => {
    // copy()'s memory policy, before anything is loaded or derived: malloc's arenas are set
    // when the threads that derive the keys and load the AWS SDK first allocate.
    paceMemory('backup')
    const from = await openSourceRepo(args)
    try {
      const to = await openRepo(args)
      try {
        const quiet = !!args.quiet
        const onSnapshot = (e: CopyEvent) => {
          if (args.json) {
            out(JSON.stringify({ message_type: 'snapshot', id: e.id, time: e.snap.time, host: e.snap.host, paths: e.snap.paths, ...(e.copiedTo ? { copied_to: e.copiedTo } : { skipped: true }) }))
          } else if (!quiet) {
            // restic's words.
            if (!e.copiedTo) out(`skipping snapshot ${e.id.slice(0, 8)}, was already copied`)
            else out(`snapshot ${e.id.slice(0, 8)} of [${e.snap.paths.join(' ')}] at ${time(e.snap.time)}\nsnapshot ${e.copiedTo.slice(0, 8)} saved`)
          }
        }
        const r = await copy({ from, to, ...memoryOf(args), snapshots: (args.snapshots ?? []).map(String), filter: filterOf(args), onSnapshot })
        if (args.json) out(JSON.stringify({ message_type: 'summary', snapshots_copied: r.copied, snapshots_skipped: r.skipped, chunks_copied: r.chunksCopied, bytes_copied: r.bytesCopied, chunks_present: r.chunksPresent }))
        else if (!quiet) out(`copied ${r.copied} snapshots (${r.skipped} already there): ${r.chunksCopied} new chunks, ${formatBytes(r.bytesCopied)} stored; ${r.chunksPresent} chunks already there`)
      } finally {
        await to.close()
      }
    } finally {
      await from.close()
    }
  },
}
