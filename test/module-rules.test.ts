// The modules' pure helpers (input rules, ClientToken, result entries),
// unit-tested in Python on the interpreter Ansible runs modules with: the
// one the config's ansible-playbook runs on (ec2Python), as in production.
import { execa } from 'execa';
import t from 'tap';
import { ec2Python, loadConfig, projectRoot } from '../src/config.js';

t.test('python unit tests of plugins/module_utils (ec2_api_rules.py, ec2_api_pace.py)', async (t) => {
  const python = ec2Python(loadConfig({}));
  t.ok(python, 'the Python that runs ansible-playbook is found (install Ansible: npm run setup)');
  const run = await execa(python!, ['-m', 'unittest', 'discover', '-s', 'test/python', '-v'], { cwd: projectRoot, all: true, reject: false });
  t.equal(run.exitCode, 0, 'all pass', { output: run.all });
  t.match(run.all, /^OK$/m);
});
