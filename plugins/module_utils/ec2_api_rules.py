# -*- coding: utf-8 -*-
# ec2-api: input rules, client tokens and result entries of the ec2_api_*
# modules. Standard library only, so that test/python/ unit-tests it without
# Ansible or AWS.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

TASK_ID_RE = r'^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'
USERNAME_RE = r'^[a-z_][a-z0-9_-]{0,31}$'
# SHA-512-crypt: $6$[rounds=N$]salt$hash, salt 0-16 and hash 86 characters of [./A-Za-z0-9].
PASSWORD_HASH_RE = r'^[$]6[$](rounds=[0-9]{1,9}[$])?[./A-Za-z0-9]{0,16}[$][./A-Za-z0-9]{86}$'
IPV4_RE = r'^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$'

# Every state but terminated: an instance shutting down still counts, so that
# a delete or cancel waits for it.
LIVE_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped']
# What a create adopts: an instance shutting down is on its way out.
ADOPTABLE_STATES = ['pending', 'running', 'stopping', 'stopped']
ALL_STATES = LIVE_STATES + ['terminated']

# Check mode: what the run would do, in the place of the state it would reach.
WOULD_LAUNCH = 'would_launch'
WOULD_TERMINATE = 'would_terminate'


def _matches(pattern, value):
    # fullmatch: with re.match, the pattern's "$" would accept a trailing newline.
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def task_id_problems(task_id):
    return [] if _matches(TASK_ID_RE, task_id) else ['task_id must match ' + TASK_ID_RE]


def launch_problems(task, system_accounts):
    """What is wrong with a create task ([] = valid). Never names the hash."""
    problems = task_id_problems(task.get('task_id'))
    username = task.get('username')
    if not _matches(USERNAME_RE, username):
        problems.append('username must match ' + USERNAME_RE)
    elif username in system_accounts:
        # Safe to name: it matched the pattern above.
        problems.append('username %s is a system account' % username)
    if not _matches(PASSWORD_HASH_RE, task.get('password_hash')):
        problems.append('password_hash must be a SHA-512-crypt hash ($6$salt$hash)')
    return problems


def delete_problems(request):
    """What is wrong with a delete request ([] = valid); its task_id is optional."""
    problems = task_id_problems(request['task_id']) if request.get('task_id') else []
    if not _matches(IPV4_RE, request.get('ip')):
        problems.append('ip must be an IPv4 address (a.b.c.d)')
    return problems


def invalid(problems):
    return 'invalid input: ' + '; '.join(problems)


def client_token(task_id):
    """RunInstances ClientToken of a task: the same on every run of the task,
    so that EC2 launches at most one instance for it even when a run does not
    see the instance an earlier run launched. EC2 allows 64 ASCII characters,
    task ids have up to 128: a hash of the id, distinct per task."""
    return 'ec2-api-' + hashlib.sha256(task_id.encode('utf-8')).hexdigest()[:56]


def task_key(task):
    """A create's or cancel's result is keyed by its task_id ("" when missing)."""
    return str(task.get('task_id') or '')


def delete_key(request):
    """A delete's result is keyed by its task_id, or by its ip without one."""
    return str(request.get('task_id') or request.get('ip') or '')


def duplicates(keys):
    seen = set()
    return sorted({k for k in keys if k in seen or seen.add(k)})


# -- Result entries (the shapes the service reads) -----------------------------

def launch_entry(instance_id=None, public_ip=None, state=None, error=None):
    return {'ok': error is None, 'instance_id': instance_id, 'public_ip': public_ip, 'state': state, 'error': error}


def launch_outcome(instance_id, state, public_ip):
    """The final entry of a launched or adopted instance, or None while it is
    still pending. Only a running instance with a public IP is a success."""
    if state == 'pending' or state is None:
        return None
    if state != 'running':
        return launch_entry(instance_id, public_ip, state, 'instance %s is %s, not running' % (instance_id, state))
    if not public_ip:
        return launch_entry(instance_id, None, state, 'instance %s has no public IP address' % instance_id)
    return launch_entry(instance_id, public_ip, state)


def launch_timed_out(instance_id, state, public_ip, seconds):
    return launch_entry(instance_id, public_ip, state,
                        'instance %s is still %s after %d s' % (instance_id, state or 'not visible', seconds))


def delete_entry(ip, instance_id, state, error):
    """state: terminated, not_found, would_terminate, another EC2 state (still
    on its way when the wait ended), or None when terminating failed."""
    if error is None and instance_id is None:
        state, error = 'not_found', 'no instance managed by ec2-api has public IP %s' % ip
    elif error is None and state not in ('terminated', WOULD_TERMINATE):
        error = 'instance %s is %s, not yet terminated' % (instance_id, state)
    return {'ok': error is None, 'instance_id': instance_id, 'public_ip': ip, 'state': state, 'error': error}


def cancel_entry(instance_states, error):
    """instance_states: {instance_id: state} of the task's instances ({} when none)."""
    ids = sorted(instance_states)
    if error is not None:
        return {'ok': False, 'instance_ids': ids, 'state': None, 'error': error}
    if not ids:
        return {'ok': True, 'instance_ids': ids, 'state': 'not_found', 'error': None}
    states = [instance_states[i] for i in ids]
    waiting = [s for s in states if s not in ('terminated', WOULD_TERMINATE)]
    if waiting:
        return {'ok': False, 'instance_ids': ids, 'state': waiting[0],
                'error': 'instances %s are not yet terminated (%s)' % (', '.join(ids), ', '.join(states))}
    return {'ok': True, 'instance_ids': ids, 'state': states[0], 'error': None}


def failure_summary(results, limit=5):
    """One line naming the failed results, e.g. for the module's msg."""
    failed = [(key, entry['error']) for key, entry in results.items() if not entry['ok']]
    if not failed:
        return None
    shown = '; '.join('%s: %s' % pair for pair in failed[:limit])
    more = ' (and %d more)' % (len(failed) - limit) if len(failed) > limit else ''
    return '%d of %d tasks failed: %s%s' % (len(failed), len(results), shown, more)
