/**
 * yargs without its help renderer until help is shown. yargs' own ESM entry loads cliui and
 * string-width eagerly, and string-width builds an Intl.Segmenter and Unicode-property regexes
 * when it loads: ~6 MB of RSS in every command for text only `--help` and usage errors print
 * (docs/TUNING.md "The memory budget"). This is yargs' ESM platform shim (yargs/lib/platform-
 * shims/esm.mjs) with those two loaded on demand: `loadHelp()` before anything can print help.
 * Every module is resolved from yargs' own directory, as its entry would.
 */
import { notStrictEqual, strictEqual } from 'node:assert'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, extname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { inspect } from 'node:util'
import type { Argv } from 'yargs'

const fromYargs = createRequire(createRequire(import.meta.url).resolve('yargs/package.json'))
const root = dirname(fromYargs.resolve('yargs/package.json'))
/** A module of yargs' (a path inside its package, or a dependency it resolves). */
const load = async (what: string): Promise<any> =>
  import(pathToFileURL(what.startsWith('./') ? join(root, what) : fromYargs.resolve(what)).href)

const [{ YargsFactory }, { getProcessArgvBin, hideBin: yargsHideBin }, escalade, parser, y18n, getCallerFile] = await Promise.all([
  load('./build/lib/yargs-factory.js'),
  load('./build/lib/utils/process-argv.js'),
  load('escalade/sync'),
  load('yargs-parser'),
  load('y18n'),
  load('get-caller-file'),
])

let cliui: ((opts: unknown) => unknown) | undefined
let stringWidth: ((s: string) => number) | undefined

/** Loads the help renderer; call it before a parse that may print help or usage (without it,
 *  help is empty). */
export async function loadHelp(): Promise<void> {
  if (cliui) return
  const [ui, width] = await Promise.all([load('cliui'), load('string-width')])
  cliui = ui.default
  stringWidth = width.default
}

/** What yargs gets without the renderer: it renders (and caches) the help text after every
 *  command's handler starts, to print only if that command then fails a certain way; Sluice's
 *  failures print no help, so that text is empty. */
const noUi = { div() {}, span() {}, toString: () => '' }

const shim = {
  assert: { notStrictEqual, strictEqual },
  cliui: (opts: unknown) => cliui ? cliui(opts) : noUi,
  findUp: escalade.default,
  getEnv: (key: string) => process.env[key],
  inspect,
  getProcessArgvBin,
  mainFilename: root.substring(0, root.lastIndexOf('node_modules')) || process.cwd(),
  Parser: parser.default,
  path: { basename, dirname, extname, relative, resolve, join },
  process: {
    argv: () => process.argv,
    cwd: process.cwd,
    emitWarning: (warning: string, type: string) => process.emitWarning(warning, type),
    execPath: () => process.execPath,
    exit: (code: number) => process.exit(code),
    nextTick: process.nextTick,
    stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null,
  },
  readFileSync,
  readdirSync,
  require: fromYargs,
  getCallerFile: () => {
    const callerFile: string = getCallerFile.default(3)
    return callerFile.match(/^file:\/\//) ? fileURLToPath(callerFile) : callerFile
  },
  stringWidth: (s: string) => stringWidth ? stringWidth(s) : s.length,
  y18n: y18n.default({ directory: join(root, 'locales'), updateFiles: false }),
}

/** The arguments after node and the script (yargs/helpers' hideBin, whose module loads the help
 *  renderer too). */
export const hideBin: (argv: string[]) => string[] = yargsHideBin

/** yargs(argv), as `import yargs from 'yargs'` gives it. */
const yargs: (argv: string[]) => Argv = YargsFactory(shim)
export default yargs
