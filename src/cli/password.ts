// The password of the new instance's login: typed at a prompt that does not
// echo, or read from stdin (--password-stdin). Never an argument: arguments
// show in `ps` and in shell history.
import { CliError, EXIT, usageError } from './errors.js';

/** All of stdin, less one trailing newline (`echo pw |` and files written by editors end with one). */
export async function passwordFromStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (stdin.isTTY) {
    throw usageError('--password-stdin reads the password from a pipe or file, not a terminal: drop it to be prompted');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!password) throw usageError('--password-stdin read an empty password: pipe the password in, e.g. `ec2-api create --password-stdin < file`');
  return password;
}

/** Asks twice at the terminal, without echo; Ctrl-C gives up. */
export async function promptPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    throw usageError('no terminal to ask for the password on: pipe it in with --password-stdin');
  }
  const first = await readHidden('Password for the new login: ');
  if (!first) throw usageError('the password is empty: type one (8–128 characters)');
  const again = await readHidden('Password again: ');
  if (again !== first) throw usageError('the two passwords differ: run the command again');
  return first;
}

function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return finish();
        if (char === '\u0003') return finish(new CliError('canceled at the password prompt; nothing was created', EXIT.interrupted));
        if (char === '\u0004' && typed === '') return finish(new CliError('no password given; nothing was created', EXIT.usage));
        if (char === '\u001b') break; // an arrow or function key: its sequence is not part of the password
        if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
        else if (char === '\u0015') typed = ''; // Ctrl-U
        else if (char >= ' ') typed += char;
      }
    };
    stdin.on('data', onData);
  });
}
