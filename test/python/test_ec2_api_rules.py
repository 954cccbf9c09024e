"""Unit tests of plugins/module_utils/ec2_api_rules.py (pure functions).
Run: /usr/bin/python3 -m unittest discover -s test/python (test/module-rules.test.ts does)."""
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
import ec2_api_rules as rules  # noqa: E402

HASH = '$6$saltsalt$' + 'a' * 86
ACCOUNTS = {'root', 'ec2-user'}


def task(**overrides):
    return dict({'task_id': 't-1', 'username': 'alice', 'password_hash': HASH}, **overrides)


class ClientToken(unittest.TestCase):
    def test_the_same_for_the_same_task(self):
        self.assertEqual(rules.client_token('t-1'), rules.client_token('t-1'))

    def test_distinct_between_tasks(self):
        self.assertNotEqual(rules.client_token('t-1'), rules.client_token('t-2'))

    def test_at_most_64_ascii_characters_for_the_longest_task_id(self):
        token = rules.client_token('a' * 128)
        self.assertLessEqual(len(token), 64)
        self.assertTrue(token.isascii() and token.isprintable())

    def test_derived_from_the_task_id(self):
        self.assertEqual(rules.client_token('t-1'), 'ec2-api-' + hashlib.sha256(b't-1').hexdigest()[:56])


class LaunchProblems(unittest.TestCase):
    def test_a_valid_task(self):
        self.assertEqual(rules.launch_problems(task(), ACCOUNTS), [])
        self.assertEqual(rules.launch_problems(task(password_hash='$6$rounds=10000$salt$' + 'b' * 86), ACCOUNTS), [])

    def test_task_id(self):
        for bad in ['', '-x', 'a' * 129, 'a b', None, 't-1\n']:
            self.assertEqual(rules.launch_problems(task(task_id=bad), ACCOUNTS), ['task_id must match ' + rules.TASK_ID_RE])

    def test_username(self):
        for bad in ['Alice', '1abc', 'a' * 33, 'al ice', None, 'alice\n']:
            self.assertEqual(rules.launch_problems(task(username=bad), ACCOUNTS), ['username must match ' + rules.USERNAME_RE])

    def test_system_accounts_are_refused(self):
        self.assertEqual(rules.launch_problems(task(username='root'), ACCOUNTS), ['username root is a system account'])

    def test_hash_never_named(self):
        for bad in ['secret', '$1$salt$' + 'a' * 22, '$6$salt$' + 'a' * 85, HASH + '\n', None]:
            problems = rules.launch_problems(task(password_hash=bad), ACCOUNTS)
            self.assertEqual(problems, ['password_hash must be a SHA-512-crypt hash ($6$salt$hash)'])
            self.assertTrue(bad is None or all(bad not in p for p in problems))

    def test_every_problem_at_once(self):
        self.assertEqual(len(rules.launch_problems({'task_id': None, 'username': None, 'password_hash': None}, ACCOUNTS)), 3)


class DeleteProblems(unittest.TestCase):
    def test_ip(self):
        self.assertEqual(rules.delete_problems({'task_id': None, 'ip': '54.1.2.3'}), [])
        for bad in ['54.1.2', '256.1.2.3', '01.1.2.3', '', None]:
            self.assertEqual(rules.delete_problems({'task_id': 'd-1', 'ip': bad}), ['ip must be an IPv4 address (a.b.c.d)'])

    def test_task_id_is_optional(self):
        self.assertEqual(rules.delete_problems({'task_id': '', 'ip': '54.1.2.3'}), [])
        self.assertEqual(rules.delete_problems({'task_id': '-x', 'ip': '54.1.2.3'}), ['task_id must match ' + rules.TASK_ID_RE])

    def test_key(self):
        self.assertEqual(rules.delete_key({'task_id': 'd-1', 'ip': '54.1.2.3'}), 'd-1')
        self.assertEqual(rules.delete_key({'task_id': None, 'ip': '54.1.2.3'}), '54.1.2.3')


class LaunchOutcome(unittest.TestCase):
    def test_pending_waits(self):
        self.assertIsNone(rules.launch_outcome('i-1', 'pending', '54.1.2.3'))

    def test_running_with_an_ip_is_ok(self):
        self.assertEqual(rules.launch_outcome('i-1', 'running', '54.1.2.3'),
                         {'ok': True, 'instance_id': 'i-1', 'public_ip': '54.1.2.3', 'state': 'running', 'error': None})

    def test_running_without_an_ip_fails(self):
        self.assertEqual(rules.launch_outcome('i-1', 'running', None)['error'], 'instance i-1 has no public IP address')

    def test_any_other_state_fails(self):
        self.assertEqual(rules.launch_outcome('i-1', 'stopped', None),
                         {'ok': False, 'instance_id': 'i-1', 'public_ip': None, 'state': 'stopped',
                          'error': 'instance i-1 is stopped, not running'})


class TerminateEntries(unittest.TestCase):
    def test_delete(self):
        self.assertEqual(rules.delete_entry('54.1.2.3', 'i-1', 'terminated', None),
                         {'ok': True, 'instance_id': 'i-1', 'public_ip': '54.1.2.3', 'state': 'terminated', 'error': None})
        self.assertEqual(rules.delete_entry('54.1.2.3', None, None, None),
                         {'ok': False, 'instance_id': None, 'public_ip': '54.1.2.3', 'state': 'not_found',
                          'error': 'no instance managed by ec2-api has public IP 54.1.2.3'})
        self.assertEqual(rules.delete_entry('54.1.2.3', 'i-1', 'shutting-down', None)['error'],
                         'instance i-1 is shutting-down, not yet terminated')

    def test_cancel(self):
        self.assertEqual(rules.cancel_entry({}, None), {'ok': True, 'instance_ids': [], 'state': 'not_found', 'error': None})
        self.assertEqual(rules.cancel_entry({'i-2': 'terminated', 'i-1': 'terminated'}, None),
                         {'ok': True, 'instance_ids': ['i-1', 'i-2'], 'state': 'terminated', 'error': None})
        self.assertEqual(rules.cancel_entry({'i-1': 'terminated', 'i-2': 'shutting-down'}, None)['state'], 'shutting-down')
        self.assertEqual(rules.cancel_entry({'i-1': 'running'}, 'boom'),
                         {'ok': False, 'instance_ids': ['i-1'], 'state': None, 'error': 'boom'})


class Summary(unittest.TestCase):
    def test_none_when_all_ok(self):
        self.assertIsNone(rules.failure_summary({'a': {'ok': True, 'error': None}}))

    def test_names_the_failures(self):
        results = {'t-%d' % i: {'ok': False, 'error': 'e%d' % i} for i in range(7)}
        results['fine'] = {'ok': True, 'error': None}
        self.assertEqual(rules.failure_summary(results),
                         '7 of 8 tasks failed: t-0: e0; t-1: e1; t-2: e2; t-3: e3; t-4: e4 (and 2 more)')

    def test_duplicates(self):
        self.assertEqual(rules.duplicates(['a', 'b', 'a', 'c', 'b']), ['a', 'b'])


if __name__ == '__main__':
    unittest.main()
