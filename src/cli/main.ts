#!/usr/bin/env node
// ec2-api: the command-line client of the ec2-api service (package.json `bin`).
// Talks to the service over HTTP only; nothing here imports the service.
import { CommanderError } from 'commander';
import { CliError, EXIT } from './errors.js';
import { buildProgram } from './program.js';

/** Runs one command line; resolves with the exit status. */
async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
      // `ec2-api` alone: the help went to stderr; that is a usage error.
      if (error.code === 'commander.help') return EXIT.usage;
      const command = program.commands.find((c) => argv.slice(2).includes(c.name()));
      const message = error.message.replace(/^error: /, '').replace(/\n+/g, ' ').trim().replace(/\.$/, '');
      say(`${message}; see \`ec2-api ${command ? `${command.name()} ` : ''}--help\``);
      return EXIT.usage;
    }
    if (error instanceof CliError) {
      say(error.message);
      return error.exitCode;
    }
    say(`unexpected error: ${error instanceof Error ? error.message : String(error)}; please report it with the command you ran`);
    if (process.env.EC2_API_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return EXIT.failed;
  }
}

function say(message: string): void {
  process.stderr.write(`ec2-api: ${message}\n`);
}

/** Exits once stdout and stderr have taken everything written to them (pipes may be asynchronous). */
async function exit(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((resolve) => stream.write('', resolve))));
  process.exit(code);
}

// `ec2-api tasks | head`: a reader that stops early is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  throw error;
});

await exit(await run(process.argv));
