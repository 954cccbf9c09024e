// The modules' pure helpers (input rules, ClientToken, result entries),
// unit-tested in Python on the interpreter Ansible runs modules with.
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';

t.test('python unit tests of plugins/module_utils (ec2_api_rules.py, ec2_api_pace.py)', async (t) => {
  const run = await execa('/usr/bin/python3', ['-m', 'unittest', 'discover', '-s', 'test/python', '-v'], { cwd: projectRoot, all: true, reject: false });
  t.equal(run.exitCode, 0, 'all pass', { output: run.all });
  t.match(run.all, /^OK$/m);
});
