// A task's log keeps the beginning and the end of the playbook's output
// (the first 64 KiB, the last 1 MiB) with a line saying how much was left
// out; offsets count the whole output, so a follower stays right.
import t from 'tap';
import { CappedOutput, HEAD_LIMIT, TAIL_LIMIT, outputFrom, outputText } from '../src/ansible/output.js';

t.test('a short output is kept whole', async (t) => {
  const output = new CappedOutput();
  output.append('PLAY [x]\n');
  output.append('PLAY RECAP\n');
  t.same(output.snapshot, { head: 'PLAY [x]\nPLAY RECAP\n', tail: '', size: 20 });
  t.equal(outputText(output.snapshot), 'PLAY [x]\nPLAY RECAP\n');
  t.equal(outputFrom(output.snapshot, 9), 'PLAY RECAP\n');
});

t.test('a long output keeps its head and its tail, and says how much is left out', async (t) => {
  const output = new CappedOutput();
  const chunk = 'y'.repeat(100_000);
  output.append('BEGIN\n');
  for (let i = 0; i < 30; i++) output.append(chunk); // 3 MB, in pieces as a pipe gives them
  const end = '\nPLAY RECAP ok=1 failed=1\nTHE END\n';
  output.append(end);
  const log = output.snapshot;
  const total = 'BEGIN\n'.length + 30 * chunk.length + end.length;
  t.equal(log.size, total, 'the size counts everything written');
  t.equal(log.head.length, HEAD_LIMIT);
  t.equal(log.tail.length, TAIL_LIMIT);
  const text = outputText(log);
  t.ok(text.startsWith('BEGIN\n'), 'the beginning is kept');
  t.ok(text.endsWith('PLAY RECAP ok=1 failed=1\nTHE END\n'), 'the end (the recap, the final error) is kept');
  const omitted = total - HEAD_LIMIT - TAIL_LIMIT;
  t.match(text, new RegExp(`\\n… ${omitted.toLocaleString('en-US')} characters of output left out here`), 'a marker line says how much was left out');

  t.equal(outputFrom(log, 0), text, 'from the start: everything kept');
  t.equal(outputFrom(log, total - 8), 'THE END\n', 'a follower at the end gets only what is new');
  t.match(outputFrom(log, HEAD_LIMIT + 10), /^\n… [\d,]+ characters of output left out here/, 'an offset in the part left out gets the marker, then the tail');
  t.equal(outputFrom(log, total), '', 'at the end: nothing');
});

t.test('appending to a stored log goes on from it', async (t) => {
  const first = new CappedOutput();
  first.append('z'.repeat(HEAD_LIMIT + 10));
  const second = new CappedOutput(first.snapshot);
  second.append('--- cleanup after cancel ---\n');
  t.equal(second.snapshot.size, HEAD_LIMIT + 10 + 29);
  t.ok(outputText(second.snapshot).endsWith('zzzzzzzzzz--- cleanup after cancel ---\n'));
});
