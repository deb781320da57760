import type { Argv, CommandModule } from 'yargs'
import { addKey, changePassword, listKeys, removeKey } from '../index.js'
import { globalOptions, newPassword, openRepo, out, warn, type GlobalArgs } from './common.js'

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

/** Runs `body` on the opened repository and closes it. */
async function withRepo(args: KeyArgs, body: (repo: Awaited<ReturnType<typeof openRepo>>) => Promise<void>): Promise<void> {
  const repo = await openRepo(args)
  try {
    await body(repo)
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
    withRepo(args, async repo => {
      // restic's table (its columns, * for the key in use) or its JSON array, streamed.
      if (args.json) process.stdout.write('[')
      else out([' ID      ', 'User', 'Host', 'Created'].join('  '))
      let n = 0
      for await (const k of listKeys(repo, err => {
        warn(err)
        process.exitCode = 3
      })) {
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
