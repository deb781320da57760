import yargs from './yargs.js'
import type { CommandModule } from 'yargs'
import { SluiceError } from '../index.js'
import { documented } from './common.js'

/**
 * `sluice completion bash|zsh`: yargs' completion script for that shell. The script calls back
 * `sluice --get-yargs-completions WORDS...`, which yargs answers from the commands and options
 * of the command line as parsed (every sluice has it, no setup needed).
 */
export const completionCommand: CommandModule<object, { shell?: string }> = {
  command: 'completion <shell>',
  describe: 'print a shell completion script: source it, or save it where your shell loads completions',
  builder: y =>
    documented(y, [
      ['source <(sluice completion bash)', 'complete sluice in this bash session'],
      ['sluice completion bash > /etc/bash_completion.d/sluice', 'for every bash session'],
      ['sluice completion zsh > "${fpath[1]}/_sluice"', 'for zsh'],
    ], [['0', 'the script was printed'], ['1', 'failure: one line on stderr (an unknown shell)']], [['(none)', 'completion reads no variables; the script it prints runs sluice, which reads those of sluice help']])
      .positional('shell', { type: 'string', describe: 'bash or zsh' }),
  handler: args => {
    if (args.shell !== 'bash' && args.shell !== 'zsh') throw new SluiceError('ERR_ARGS', `no completion for shell "${String(args.shell)}": use bash or zsh`)
    // yargs picks the script by $SHELL when an instance is made: make one for the shell asked.
    const before = process.env.SHELL
    process.env.SHELL = `/bin/${args.shell}`
    try {
      (yargs([]).scriptName('sluice') as unknown as { showCompletionScript(app: string, cmd: string): void }).showCompletionScript('sluice', `completion ${args.shell}`)
    } finally {
      if (before === undefined) delete process.env.SHELL
      else process.env.SHELL = before
    }
  },
}
