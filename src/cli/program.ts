// The command line: every command, with --help on each; commander parses it.
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { cancelCommand } from './commands/cancel.js';
import { createCommand } from './commands/create.js';
import { deleteCommand } from './commands/delete.js';
import { extendCommand } from './commands/extend.js';
import { healthCommand } from './commands/health.js';
import { instancesCommand } from './commands/instances.js';
import { logsCommand } from './commands/logs.js';
import { statusCommand } from './commands/status.js';
import { tasksCommand } from './commands/tasks.js';

/** The package's version (this file is src/cli/program.ts, or dist/cli/program.js once built). */
function version(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('ec2-api')
    .description('Launch and terminate EC2 instances through an ec2-api server, and follow its tasks.')
    .version(version(), '-V, --version')
    .helpCommand('help [command]', 'show the help of a command')
    .addHelpText(
      'after',
      `
Environment:
  EC2_API_URL       the server (default http://127.0.0.1:5000; --url overrides it)
  EC2_API_TOKEN     the bearer token, when the server has API_TOKENS (never an argument)
  EC2_API_USERNAME  the default login for \`create\`
  NO_COLOR          no colour

Exit status:
  0  done
  1  the task failed or was canceled, or the server could not do it (unknown task, …)
  2  usage error (a wrong option or argument, or input the server refused)
  3  the server cannot be reached, refuses the token, or is unavailable (retry later)
  130  interrupted (Ctrl-C); a task being followed goes on

Run \`ec2-api <command> --help\` for each command's options.`,
    );
  for (const make of [createCommand, deleteCommand, extendCommand, cancelCommand, statusCommand, tasksCommand, instancesCommand, logsCommand, healthCommand]) {
    program.addCommand(make());
  }
  // Errors are printed by main.ts, one line each; exit statuses are ours, not commander's.
  program.exitOverride();
  program.configureOutput({ outputError: () => undefined });
  for (const sub of program.commands) {
    sub.exitOverride();
    sub.configureOutput({ outputError: () => undefined });
  }
  return program;
}
