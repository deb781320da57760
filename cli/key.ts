import type { Argv, CommandModule } from 'yargs'
import { addKey, changePassword, listKeys, openRepository, removeKey, type Repository, type SluiceError } from '../index.js'
import { KEY_FILES_MAX } from '../lib/limits.js'
import { globalOptions, newPassword, out, password, repoWarning, storageOf, type GlobalArgs } from './common.js'

interface KeyArgs extends GlobalArgs {
  id?: string
  'new-password-file'?: string
  host?: string
  user?: string
}

function newKeyOptions<T>(y: Argv<T>) {
  return globalOptions(y)
    .option('new-password-file', { type: 'string', describe: 'read the new password from this file (default: a prompt, twice)' })
    .option('host', { type: 'string', describe: 'the host name recorded in the new key (default: this host)' })
    .option('user', { type: 'string', describe: 'the user name recorded in the new key (default: this user)' })
}

/** Runs `body` on the opened repository and closes it. Each damaged key file is named once,
 *  whether opening or the body met it (exit 3). */
async function withRepo(args: KeyArgs, body: (repo: Repository, onWarning: (err: SluiceError) => void) => Promise<void>): Promise<void> {
  const named = new Set<string>()
  const onWarning = (err: SluiceError) => {
    if (named.has(err.message)) return
    if (named.size < KEY_FILES_MAX) named.add(err.message)
    repoWarning(err)
  }
  const storage = storageOf(args)
  const repo = await openRepository(storage, await password(args), { onWarning })
  try {
    await body(repo, onWarning)
  } finally {
    await repo.close()
  }
}

const owner = (args: KeyArgs) => ({ ...(args.host !== undefined ? { host: args.host } : {}), ...(args.user !== undefined ? { username: args.user } : {}) })

const list: CommandModule<object, KeyArgs> = {
  command: 'list',
  describe: 'list keys (passwords); * marks the one in use',
  builder: y => globalOptions(y),
  handler: args =>
    withRepo(args, async (repo, onWarning) => {
      // restic's table (its columns, * for the key in use) or its JSON array, streamed.
      if (args.json) process.stdout.write('[')
      else out([' ID      ', 'User', 'Host', 'Created'].join('  '))
      let n = 0
      for await (const k of listKeys(repo, onWarning)) {
        if (args.json) process.stdout.write((n++ > 0 ? ',' : '') + JSON.stringify(k))
        else out([`${k.current ? '*' : ' '}${k.id.slice(0, 8)}`, k.userName, k.hostName, k.created.replace('T', ' ').slice(0, 19)].join('  '))
      }
      if (args.json) out(']')
    }),
}

const add: CommandModule<object, KeyArgs> = {
  command: 'add',
  describe: 'add a key (password) to the repository; prints the new key id',
  builder: y => newKeyOptions(y),
  handler: args =>
    withRepo(args, async repo => {
      const id = await addKey(repo, await newPassword(args['new-password-file']), owner(args))
      out(args.json ? JSON.stringify({ id }) : `saved new key with ID ${id}`)
    }),
}

const remove: CommandModule<object, KeyArgs> = {
  command: 'remove <id>',
  describe: 'remove a key (by id prefix); the key in use cannot be removed',
  builder: y => globalOptions(y).positional('id', { type: 'string', describe: 'key id (a unique prefix)' }),
  handler: args =>
    withRepo(args, async repo => {
      const id = await removeKey(repo, args.id!)
      out(args.json ? JSON.stringify({ removed: id }) : `removed key ${id}`)
    }),
}

const passwd: CommandModule<object, KeyArgs> = {
  command: 'passwd',
  describe: 'change the password: adds a new key, then removes the one in use (the master key stays)',
  builder: y => newKeyOptions(y),
  handler: args =>
    withRepo(args, async repo => {
      const r = await changePassword(repo, await newPassword(args['new-password-file']), owner(args))
      out(args.json ? JSON.stringify(r) : `saved new key as ${r.id}`)
    }),
}

export const keyCommand: CommandModule<object, GlobalArgs> = {
  command: 'key <command>',
  describe: 'manage keys (passwords): list, add, remove, passwd',
  builder: y => y.command(list).command(add).command(remove).command(passwd).demandCommand(1, 'give a key command: list, add, remove or passwd'),
  handler: () => {},
}
