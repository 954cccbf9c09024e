// A private PostgreSQL cluster for the nodes phase, started as the tests
// start theirs (test/helpers/postgres.ts): Debian's server binaries, run as
// the postgres user, on a free port, trust authentication on 127.0.0.1 only.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { treeCpu } from './procfs.mjs';
import { freePort, tempDir } from './procs.mjs';

function bin() {
  const root = '/usr/lib/postgresql';
  const version = fs.existsSync(root)
    ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0]
    : undefined;
  if (!version) throw new Error('PostgreSQL is not installed: apt-get install postgresql');
  return path.join(root, version, 'bin');
}

const asPostgres = (command, args) => execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

export async function startPostgres() {
  const dir = bin();
  const home = tempDir('ec2-api-bench-pg-');
  execFileSync('chown', ['postgres:', home]);
  fs.chmodSync(home, 0o700);
  const data = path.join(home, 'data');
  asPostgres(path.join(dir, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync']);
  const port = await freePort();
  // Durable as a real deployment would be (fsync on): the bench measures what nodes pay for sharing.
  asPostgres(path.join(dir, 'pg_ctl'), ['-D', data, '-w', '-t', '60', '-l', path.join(home, 'log'), '-o', `-p ${port} -k ${home} -c listen_addresses=127.0.0.1 -c max_connections=200`, 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let databases = 0;
  return {
    /** A new empty database; its URL. */
    async database() {
      const name = `bench_${++databases}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    /** The server's CPU seconds so far: the postmaster, its live backends, and those that have exited. */
    cpuSeconds() {
      const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return treeCpu(pid);
    },
    stop() {
      try {
        asPostgres(path.join(dir, 'pg_ctl'), ['-D', data, '-w', '-m', 'fast', 'stop']);
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    },
  };
}
