#!/usr/bin/python
# -*- coding: utf-8 -*-
# ec2-api: terminate the instances of a batch of deletes (by public IP) or
# cancels (by task id) in one process: one look-up, one TerminateInstances.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ec2_api_terminate
short_description: Terminate ec2-api instances by public IP (deletes) or by task id (cancels)
description:
  - Handles a whole batch of ec2-api delete or cancel requests in one process.
  - Only instances tagged C(ManagedBy=ec2-api) are ever looked at or terminated.
  - One C(DescribeInstances) finds the instances of all requests (by C(ip-address) for I(deletes),
    by C(tag:TaskId) for I(cancels); every state but terminated), one C(TerminateInstances) call
    terminates all of them (instances already shutting down included), and one polling loop waits
    until they are terminated.
  - An invalid request becomes a failed result naming the rule it breaks; the others go on.
  - Fails when any request failed, after computing every request's result (returned in either case).
    A delete whose IP no managed instance has is a failure; a cancel that finds nothing is not.
  - Every EC2 call is paced to EC2's request buckets (the service's, shared by all its runs, or this
    process's when run by hand); throttled calls (C(RequestLimitExceeded)) are retried by botocore's
    standard retry mode. See docs/pacing.md.
version_added: 0.1.0
author:
  - ec2-api
options:
  deletes:
    description:
      - Delete requests, keyed by C(task_id), or by C(ip) when there is none; keys must be unique.
      - C(ip) must be a dotted-quad IPv4 address; C(task_id), when given, must match
        C(^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$).
    type: list
    elements: dict
    suboptions:
      task_id:
        description: Names the result.
        type: str
      ip:
        description: Public IP of the instance to terminate.
        type: str
  cancels:
    description:
      - Cancel requests, keyed by C(task_id) (unique); every live instance tagged with the task id is terminated.
    type: list
    elements: dict
    suboptions:
      task_id:
        description: The task whose instances to terminate.
        type: str
  wait_timeout:
    description: Seconds to wait for the instances to be terminated.
    type: int
    default: 600
  report_file:
    description:
      - File to append one JSON line to per request, the moment its result is final
        (its I(task_results) entry with C(task_id) first, set to the entry's key).
    type: path
notes:
  - Exactly one of I(deletes) and I(cancels) is given.
  - In check mode nothing is terminated; found instances show C(state=would_terminate).
extends_documentation_fragment:
  - amazon.aws.aws
  - amazon.aws.ec2
  - amazon.aws.boto3
'''

EXAMPLES = r'''
- name: Terminate the instances with these public IPs
  ec2_api_terminate:
    deletes:
      - {task_id: d-1, ip: 54.1.2.3}
      - {task_id: d-2, ip: 54.1.2.4}

- name: Terminate whatever two create tasks launched
  ec2_api_terminate:
    cancels:
      - task_id: t-1
      - task_id: t-2
'''

RETURN = r'''
task_results:
  description:
    - One entry per request, keyed by task id (deletes without one by ip).
    - "For I(deletes): C(ok), C(instance_id), C(public_ip) (the requested ip), C(state) (terminated,
      not_found, would_terminate, the current state when the wait timed out, or null when termination
      failed), C(error). Not found: C(ok=false), C(state=not_found)."
    - "For I(cancels): C(ok), C(instance_ids) (the task's instances found), C(state) (terminated,
      not_found, would_terminate, the current state when the wait timed out, or null), C(error).
      Not found: C(ok=true), C(state=not_found)."
  returned: always
  type: dict
  sample:
    d-1: {ok: true, instance_id: i-0123456789abcdef0, public_ip: 54.1.2.3, state: terminated, error: null}
    d-2: {ok: false, instance_id: null, public_ip: 54.1.2.4, state: not_found,
          error: "no instance managed by ec2-api has public IP 54.1.2.4"}
terminated:
  description: Ids of the instances this run terminated (in check mode, would terminate).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
'''

from ansible_collections.amazon.aws.plugins.module_utils.core import AnsibleAWSModule
from ansible.module_utils.ec2_api_aws import AWS_ERRORS, MANAGED, Poller, Results, aws_error, ec2_client
from ansible.module_utils.ec2_api_aws import find_instances, state_of, tags_of
from ansible.module_utils.ec2_api_rules import LIVE_STATES, WOULD_TERMINATE, cancel_entry, delete_entry
from ansible.module_utils.ec2_api_rules import delete_key, delete_problems, duplicates
from ansible.module_utils.ec2_api_rules import invalid, task_id_problems, task_key

LIVE = {'Name': 'instance-state-name', 'Values': LIVE_STATES}


class Deletes:
    """Delete requests: one instance (or none) per public IP."""

    param = 'deletes'
    key = staticmethod(delete_key)
    problems = staticmethod(delete_problems)

    @staticmethod
    def find(client, requests):
        """{key: [instance]} of the valid requests."""
        found = find_instances(client, [MANAGED, LIVE], 'ip-address', [r['ip'] for r in requests])
        by_ip = {i.get('PublicIpAddress'): i for i in found}
        return {delete_key(r): [by_ip[r['ip']]] if r['ip'] in by_ip else [] for r in requests}

    @staticmethod
    def entry(request, states, error):
        instance_id = next(iter(states), None)
        return delete_entry(request['ip'], instance_id, None if error else states.get(instance_id), error)

    @staticmethod
    def failed(request, error):
        ip = request.get('ip') if isinstance(request.get('ip'), str) else None
        return delete_entry(ip, None, None, error)


class Cancels:
    """Cancel requests: every live instance of a task."""

    param = 'cancels'
    key = staticmethod(task_key)

    @staticmethod
    def problems(request):
        return task_id_problems(request.get('task_id'))

    @staticmethod
    def find(client, requests):
        found = find_instances(client, [MANAGED, LIVE], 'tag:TaskId', [r['task_id'] for r in requests])
        by_task = {task_key(r): [] for r in requests}
        for instance in found:
            by_task[tags_of(instance)['TaskId']].append(instance)
        return by_task

    @staticmethod
    def entry(request, states, error):
        return cancel_entry(states, error)

    @staticmethod
    def failed(request, error):
        return cancel_entry({}, error)


class Batch(Results):
    """Requests and their instances; a request is reported as soon as all
    its instances are terminated (or failed)."""

    def __init__(self, module, kind):
        super().__init__(module)
        self.kind = kind
        self.requests = {}   # key -> request
        self.instances = {}  # key -> {instance id: state}
        self.errors = {}     # instance id -> why terminating it failed

    def settle(self, done=lambda state: state == 'terminated'):
        """Finishes every open request whose instances are all done."""
        for key, states in self.instances.items():
            if key in self.results:
                continue
            if all(done(state) or iid in self.errors for iid, state in states.items()):
                error = next((self.errors[iid] for iid in sorted(states) if iid in self.errors), None)
                self.finish(key, self.kind.entry(self.requests[key], states, error))

    def update(self, instance_id, state):
        for states in self.instances.values():
            if instance_id in states:
                states[instance_id] = state

    def open_instances(self):
        return sorted({iid for key, states in self.instances.items() if key not in self.results
                       for iid, state in states.items() if state != 'terminated' and iid not in self.errors})


def valid_requests(module, kind, batch):
    requests = module.params[kind.param]
    if not requests:
        module.fail_json(msg='nothing given: set ec2_api_deletes or ip (deletes), ec2_api_cancels or task_id (cancels)')
    repeated = duplicates([kind.key(r) for r in requests])
    if repeated:
        module.fail_json(msg='request keys (task_id, or ip without one) must be unique; repeated: %s' % ', '.join(repeated))
    valid = []
    for request in requests:
        problems = kind.problems(request)
        if problems:
            batch.finish(kind.key(request), kind.failed(request, invalid(problems)))
        else:
            valid.append(request)
    return valid


def terminate(client, batch, instance_ids):
    """One TerminateInstances for all; returns the ids it changed (not already shutting down)."""
    try:
        response = client.terminate_instances(aws_retry=True, InstanceIds=instance_ids)
    except AWS_ERRORS as e:
        batch.errors.update((iid, 'TerminateInstances failed: ' + aws_error(e)) for iid in instance_ids)
        return []
    changes = response.get('TerminatingInstances', [])
    for change in changes:
        batch.update(change['InstanceId'], change['CurrentState']['Name'])
    return sorted(c['InstanceId'] for c in changes if c['PreviousState']['Name'] not in ('shutting-down', 'terminated'))


def wait_terminated(client, batch, timeout):
    # TerminateInstances has just given the states: the first look is after a pause.
    poller = Poller(client, timeout)
    batch.settle()
    while batch.open_instances() and not poller.expired():
        poller.pause()
        for instance_id, instance in poller.look(batch.open_instances()).items():
            batch.update(instance_id, state_of(instance))
        batch.settle()
    # Timed out: the rest are reported with their current state.
    batch.settle(done=lambda state: True)


def main():
    argument_spec = dict(
        deletes=dict(type='list', elements='dict', options=dict(task_id=dict(type='str'), ip=dict(type='str'))),
        cancels=dict(type='list', elements='dict', options=dict(task_id=dict(type='str'))),
        wait_timeout=dict(type='int', default=600),
        report_file=dict(type='path'),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_one_of=[('deletes', 'cancels')], mutually_exclusive=[('deletes', 'cancels')])
    kind = Deletes if module.params['deletes'] is not None else Cancels
    batch = Batch(module, kind)
    requests = valid_requests(module, kind, batch)
    client = ec2_client(module)

    try:
        found = kind.find(client, requests) if requests else {}
    except AWS_ERRORS as e:
        for request in requests:
            batch.finish(kind.key(request), kind.failed(request, 'cannot look up the instances: ' + aws_error(e)))
        requests = []
    for request in requests:
        key = kind.key(request)
        batch.requests[key] = request
        batch.instances[key] = {i['InstanceId']: state_of(i) for i in found[key]}
    targets = batch.open_instances()

    if module.check_mode:
        before = {iid: state for states in batch.instances.values() for iid, state in states.items()}
        terminated = [iid for iid in targets if before[iid] != 'shutting-down']
        for iid in targets:
            batch.update(iid, WOULD_TERMINATE)
        batch.settle(done=lambda state: True)
    else:
        # Instances already shutting down are in the call too: harmless, and
        # then they are waited for like the others.
        terminated = terminate(client, batch, targets) if targets else []
        wait_terminated(client, batch, module.params['wait_timeout'])

    # In the order of the input, for people reading the output.
    batch.exit([kind.key(r) for r in module.params[kind.param]], bool(terminated), terminated=terminated)


if __name__ == '__main__':
    main()
