import type { Argv, CommandModule } from 'yargs'
import { addKey, changePassword, listKeys, openRepository, removeKey, type Repository, type SluiceError } from '../index.js'
import { KEY_FILES_MAX } from '../lib/limits.js'
import { documented, globalOptions, newPassword, out, password, repoWarning, storageOf, type GlobalArgs } from './common.js'

interface KeyArgs extends GlobalArgs {
  id?: string
  'new-password-file'?: string
  host?: string
  user?: string
}

/** Exit codes of the key commands: a damaged key file is skipped with a warning. */
const KEY_EXIT_CODES: [string, string][] = [
  ['0', 'success'],
  ['1', 'failure: one line on stderr (wrong password, the key in use or the last key, an unknown id, ...)'],
  ['3', 'done, but a damaged key file was skipped (named in a warning)'],
]
const KEY_EXAMPLES: Record<string, [string, string][]> = {
  list: [['sluice key list', 'id, user, host and creation time of every key; * marks the one in use'], ['sluice key list --json', 'the same as a JSON array']],
  add: [['sluice key add --new-password-file ~/.pw-colleague', 'let a second password open the repository'], ['sluice key add --host nas --user backup', 'asks for the new password twice; records who it is for']],
  remove: [['sluice key remove 5b8f1c2a', 'remove a key by its id (a unique prefix; not the one in use)'], ['sluice key list --json | jq -r \'.[] | select(.current | not) | .id\'', 'the ids a remove may take']],
  passwd: [['sluice key passwd', 'change the password in use (asked twice); the master key stays'], ['sluice key passwd --new-password-file ~/.pw-new', 'the new password from a file']],
}

function newKeyOptions<T>(y: Argv<T>, name: 'add' | 'passwd') {
  return documented(globalOptions(y), KEY_EXAMPLES[name]!, KEY_EXIT_CODES)
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
  builder: y => documented(globalOptions(y), KEY_EXAMPLES.list!, KEY_EXIT_CODES),
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
  builder: y => newKeyOptions(y, 'add'),
  handler: args =>
    withRepo(args, async repo => {
      const id = await addKey(repo, await newPassword(args['new-password-file']), owner(args))
      out(args.json ? JSON.stringify({ id }) : `saved new key with ID ${id}`)
    }),
}

const remove: CommandModule<object, KeyArgs> = {
  command: 'remove <id>',
  describe: 'remove a key (by id prefix); the key in use cannot be removed',
  builder: y => documented(globalOptions(y), KEY_EXAMPLES.remove!, KEY_EXIT_CODES).positional('id', { type: 'string', describe: 'key id (a unique prefix)' }),
  handler: args =>
    withRepo(args, async repo => {
      const id = await removeKey(repo, args.id!)
      out(args.json ? JSON.stringify({ removed: id }) : `removed key ${id}`)
    }),
}

const passwd: CommandModule<object, KeyArgs> = {
  command: 'passwd',
  describe: 'change the password: adds a new key, then removes the one in use (the master key stays)',
  builder: y => newKeyOptions(y, 'passwd'),
  handler: args =>
    withRepo(args, async repo => {
      const r = await changePassword(repo, await newPassword(args['new-password-file']), owner(args))
      out(args.json ? JSON.stringify(r) : `saved new key as ${r.id}`)
    }),
}

export const keyCommand: CommandModule<object, GlobalArgs> = {
  command: 'key <command>',
  describe: 'manage keys (passwords): list, add, remove, passwd',
  builder: y => documented(y, [...KEY_EXAMPLES.list!.slice(0, 1), ...KEY_EXAMPLES.add!.slice(0, 1), ...KEY_EXAMPLES.passwd!.slice(0, 1)], KEY_EXIT_CODES).command(list).command(add).command(remove).command(passwd).demandCommand(1, 'give a key command: list, add, remove or passwd'),
  handler: () => {},
}
