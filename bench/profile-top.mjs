#!/usr/bin/env node
// Top self-time functions of .cpuprofile files: node bench/profile-top.mjs FILE… [--limit N]
import { topSelfTime, formatTop } from './lib/profile.mjs';

const args = process.argv.slice(2);
const at = args.indexOf('--limit');
const limit = at >= 0 ? Number(args.splice(at, 2)[1]) : 20;
if (!args.length) {
  console.error('usage: node bench/profile-top.mjs FILE.cpuprofile… [--limit N]');
  process.exit(2);
}
for (const file of args) console.log(formatTop(topSelfTime(file, limit)));
