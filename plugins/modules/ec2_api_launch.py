#!/usr/bin/python
# -*- coding: utf-8 -*-
# ec2-api: launch one EC2 instance per ec2-api task, a whole batch in one process.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ec2_api_launch
short_description: Launch one EC2 instance per ec2-api task and wait until each runs
description:
  - Handles a whole batch of ec2-api create tasks in one process, with one boto3 client.
  - Validates every task; an invalid task becomes a failed result naming the rule it breaks
    (never the hash), and the other tasks go on.
  - Finds the instances the tasks already have with one C(DescribeInstances) for the whole batch
    (C(tag:ManagedBy=ec2-api), C(tag:TaskId), states pending, running, stopping, stopped) and adopts them.
  - Launches an instance for every other task with one C(RunInstances) each, on a small thread pool,
    tagged C(ManagedBy=ec2-api), C(TaskId) and C(Name=ec2-api-<task_id>), with a C(ClientToken) derived
    from the task id, so that EC2 launches at most one instance per task even when a run does not see
    the instance an earlier run launched (eventual consistency).
  - Waits for all instances in one polling loop. A task succeeds when its instance runs with a public IP.
  - Every EC2 call is paced to EC2's request buckets (the service's, shared by all its runs, or this
    process's when run by hand); throttled calls (C(RequestLimitExceeded)) are retried by botocore's
    standard retry mode. See docs/pacing.md.
  - Fails when any task failed, after computing every task's result (returned in either case).
version_added: 0.1.0
author:
  - ec2-api
options:
  tasks:
    description:
      - The create tasks. Task ids must be unique.
      - C(task_id) must match C(^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$).
      - C(username) must match C(^[a-z_][a-z0-9_-]{0,31}$) and not be in I(system_accounts).
      - C(password_hash) must be a SHA-512-crypt hash C($6$[rounds=N$]salt$hash) (hash 86 characters).
    type: list
    elements: dict
    required: true
    suboptions:
      task_id:
        description: The task id; names the instance (tags C(TaskId), C(Name)) and its C(ClientToken).
        type: str
      username:
        description: The login account cloud-init creates.
        type: str
      password_hash:
        description: The account's SHA-512-crypt password hash. Never logged or returned.
        type: str
  system_accounts:
    description: User names a task may not use.
    type: list
    elements: str
    default: []
  user_data_template:
    description:
      - Jinja2 source of the cloud-init user data, rendered once per task with C(item) = the task
        (C(item.task_id), C(item.username), C(item.password_hash)) and the filter C(to_json).
      - Only this source is a template; the task's values are inserted as data, never evaluated.
    type: str
    required: true
  image_id:
    description: The AMI to launch. Empty = the newest image matching I(image_owner), I(image_name), I(image_architecture).
    type: str
    default: ''
  image_owner:
    description: Owner of the image to look up.
    type: str
    default: amazon
  image_name:
    description: Name pattern of the image to look up.
    type: str
    default: al2023-ami-2023.*-x86_64
  image_architecture:
    description: Architecture of the image to look up.
    type: str
    default: x86_64
  instance_type:
    description: The instance type.
    type: str
    default: t2.micro
  key_name:
    description: EC2 key pair for the image's default user. Empty = none.
    type: str
    default: ''
  security_group:
    description: Security group name or id. Empty = the VPC's default group.
    type: str
    default: ''
  subnet_id:
    description: Subnet to launch in. Empty = the first default subnet (by availability zone) of the default VPC.
    type: str
    default: ''
  assign_public_ip:
    description: Whether instances get a public IPv4 address.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the instances to run (and get their public IP).
    type: int
    default: 600
  launch_workers:
    description:
      - How many C(RunInstances) calls may be on their way at once, sent or waiting for their token.
      - The pace is set by EC2's bucket (docs/pacing.md), not by the workers, as long as they cover the rate
        times the time a call takes; 16 covers 2 a second at up to 8 s a call.
    type: int
    default: 16
  report_file:
    description:
      - "File to append one JSON line to per task, the moment its result is final: the task's
        I(task_results) entry with C(task_id) first, e.g. C({\"task_id\": \"t-1\", \"ok\": true,
        \"instance_id\": \"i-...\", \"public_ip\": \"54.1.2.3\", \"state\": \"running\", \"error\": null})."
      - Unset = results only at the end.
    type: path
notes:
  - In check mode nothing is launched; a task that would be launched gets C(ok=true) and
    C(state=would_launch). Adopted instances are still waited for.
extends_documentation_fragment:
  - amazon.aws.aws
  - amazon.aws.ec2
  - amazon.aws.boto3
'''

EXAMPLES = r'''
- name: Launch the instances of two tasks and wait until they run
  ec2_api_launch:
    region: us-east-1
    tasks:
      - task_id: t-1
        username: alice
        password_hash: "{{ alice_hash }}"
      - task_id: t-2
        username: bob
        password_hash: "{{ bob_hash }}"
    system_accounts: [root, ec2-user]
    user_data_template: "{{ lookup('ansible.builtin.file', 'templates/user-data.yml.j2', rstrip=false) }}"
  register: launch
  no_log: true
'''

RETURN = r'''
task_results:
  description:
    - One entry per task, keyed by task id. C(ok) is true only for a running instance with a public IP
      (and, in check mode, for a task that would be launched).
  returned: always
  type: dict
  sample:
    t-1: {ok: true, instance_id: i-0123456789abcdef0, public_ip: 54.1.2.3, state: running, error: null}
    t-2: {ok: false, instance_id: null, public_ip: null, state: null,
          error: "invalid input: username root is a system account"}
image_id:
  description: The AMI used (or that would be used); empty when nothing needed one.
  returned: always
  type: str
  sample: ami-0123456789abcdef0
launched:
  description: Ids of the tasks this run launched an instance for (in check mode, would launch).
  returned: always
  type: list
  elements: str
  sample: [t-1]
'''

import concurrent.futures
import json

import jinja2

from ansible_collections.amazon.aws.plugins.module_utils.core import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import get_ec2_security_group_ids_from_names
from ansible.module_utils.ec2_api_aws import AWS_ERRORS, MANAGED, Poller, Results, aws_error, ec2_client
from ansible.module_utils.ec2_api_aws import find_instances, state_of, tags_of
from ansible.module_utils.ec2_api_rules import ADOPTABLE_STATES, WOULD_LAUNCH, client_token, duplicates
from ansible.module_utils.ec2_api_rules import invalid, launch_entry, launch_outcome
from ansible.module_utils.ec2_api_rules import launch_problems, launch_timed_out, task_key


class SetupError(Exception):
    """What every launch of the run needs (image, subnet, groups) is missing."""


def user_data_renderer(source):
    """Renders the user data of a task. Only `source` is a template: the
    task's values are data, never evaluated. Settings as in Ansible's template
    lookup; StrictUndefined so that a typo fails loudly."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    # Ansible's to_json: a JSON string is a valid YAML double-quoted scalar,
    # so no value can change the YAML structure.
    env.filters['to_json'] = json.dumps
    template = env.from_string(source)
    return lambda task: template.render(item=task)


def newest_image(client, params):
    if params['image_id']:
        return params['image_id']
    images = client.describe_images(
        aws_retry=True, Owners=[params['image_owner']],
        Filters=[{'Name': 'name', 'Values': [params['image_name']]},
                 {'Name': 'architecture', 'Values': [params['image_architecture']]},
                 {'Name': 'state', 'Values': ['available']}])['Images']
    if not images:
        raise SetupError('no available %s image owned by %s matches the name %s; set ec2_image_name/ec2_image_owner '
                         'or ec2_image_id' % (params['image_architecture'], params['image_owner'], params['image_name']))
    return max(images, key=lambda i: (i.get('CreationDate', ''), i.get('Name', '')))['ImageId']


def default_subnet(client):
    """The first default subnet (by zone) of the default VPC, as amazon.aws.ec2_instance picks it."""
    vpcs = client.describe_vpcs(aws_retry=True, Filters=[{'Name': 'isDefault', 'Values': ['true']}])['Vpcs']
    if not vpcs:
        raise SetupError('no default VPC: set ec2_subnet_id')
    subnets = client.describe_subnets(aws_retry=True, Filters=[
        {'Name': 'vpc-id', 'Values': [vpcs[0]['VpcId']]},
        {'Name': 'state', 'Values': ['available']},
        {'Name': 'default-for-az', 'Values': ['true']}])['Subnets']
    if not subnets:
        raise SetupError('no default subnet in the default VPC: set ec2_subnet_id')
    return min(subnets, key=lambda s: s['AvailabilityZone'])


def launch_spec(client, params, image_id):
    """RunInstances parameters shared by every task of the run."""
    subnet = ({'SubnetId': params['subnet_id'], 'VpcId': None} if params['subnet_id'] else default_subnet(client))
    interface = {'DeviceIndex': 0, 'AssociatePublicIpAddress': params['assign_public_ip'], 'SubnetId': subnet['SubnetId']}
    if params['security_group']:
        vpc_id = subnet['VpcId'] or client.describe_subnets(
            aws_retry=True, SubnetIds=[subnet['SubnetId']])['Subnets'][0]['VpcId']
        try:
            interface['Groups'] = get_ec2_security_group_ids_from_names(params['security_group'], client, vpc_id=vpc_id)
        except ValueError as e:
            raise SetupError(str(e))
    spec = {'ImageId': image_id, 'InstanceType': params['instance_type'], 'MinCount': 1, 'MaxCount': 1,
            'NetworkInterfaces': [interface]}
    if params['key_name']:
        spec['KeyName'] = params['key_name']
    return spec


def run_instance(client, spec, task, user_data):
    """Launches the instance of one task (on a pool thread); returns its id."""
    tags = [{'Key': 'ManagedBy', 'Value': 'ec2-api'}, {'Key': 'TaskId', 'Value': task['task_id']},
            {'Key': 'Name', 'Value': 'ec2-api-' + task['task_id']}]
    response = client.run_instances(
        aws_retry=True, ClientToken=client_token(task['task_id']), UserData=user_data,
        TagSpecifications=[{'ResourceType': kind, 'Tags': tags} for kind in ('instance', 'volume')], **spec)
    return response['Instances'][0]['InstanceId']


def existing_instances(client, task_ids):
    """{task_id: instance} of the tasks that already have a live instance."""
    found = find_instances(client, [MANAGED, {'Name': 'instance-state-name', 'Values': ADOPTABLE_STATES}],
                           'tag:TaskId', task_ids)
    by_task = {}
    for instance in found:
        by_task.setdefault(tags_of(instance).get('TaskId'), []).append(instance)
    # More than one (two runs at once, or moto, which ignores ClientToken):
    # report the one that runs, or else the oldest.
    return {task_id: min(group, key=lambda i: (state_of(i) != 'running', i['LaunchTime'], i['InstanceId']))
            for task_id, group in by_task.items()}


class Batch(Results):
    """The run's results, reported as each becomes final."""

    def __init__(self, module):
        super().__init__(module)
        self.launched = []  # task ids this run launched an instance for
        self.waiting = {}   # instance id -> task id
        self.last_seen = {}  # instance id -> instance (for the time-out message)

    def follow(self, task_id, instance):
        """Finishes the task if its instance is final, else waits for it."""
        instance_id = instance['InstanceId']
        self.last_seen[instance_id] = instance
        outcome = launch_outcome(instance_id, state_of(instance), instance.get('PublicIpAddress'))
        if outcome is None:
            self.waiting[instance_id] = task_id
        else:
            self.waiting.pop(instance_id, None)
            self.finish(task_id, outcome)

    def launch_and_wait(self, module, client, poller, to_launch, spec, render):
        """Launches on a thread pool and, meanwhile and after, polls every
        instance still pending; returns when all are final or time is up."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, module.params['launch_workers'])) as pool:
            launching = {pool.submit(run_instance, client, spec, task, render(task)): task['task_id']
                         for task in to_launch}
            while True:
                for future in [f for f in launching if f.done()]:
                    task_id = launching.pop(future)
                    if future.exception() is not None:
                        self.finish(task_id, launch_entry(error='RunInstances failed: ' + aws_error(future.exception())))
                    else:
                        self.launched.append(task_id)
                        self.waiting[future.result()] = task_id
                for instance_id, instance in poller.look(list(self.waiting)).items():
                    self.follow(self.waiting[instance_id], instance)
                if not launching and (not self.waiting or poller.expired()):
                    break
                poller.pause(list(launching))
        for instance_id, task_id in self.waiting.items():
            seen = self.last_seen.get(instance_id, {})
            self.finish(task_id, launch_timed_out(instance_id, state_of(seen) if seen else None,
                                                  seen.get('PublicIpAddress'), poller.timeout))


def valid_tasks(module, batch):
    """The tasks that pass the input rules; the others are finished as failed."""
    tasks = module.params['tasks']
    if not tasks:
        module.fail_json(msg='no tasks given: set ec2_api_tasks, or task_id, username and password_hash')
    repeated = duplicates([task_key(t) for t in tasks])
    if repeated:
        module.fail_json(msg='task ids must be unique; repeated: %s' % ', '.join(repeated))
    valid = []
    for task in tasks:
        problems = launch_problems(task, set(module.params['system_accounts']))
        if problems:
            batch.finish(task_key(task), launch_entry(error=invalid(problems)))
        else:
            valid.append(task)
    return valid


def main():
    argument_spec = dict(
        tasks=dict(type='list', elements='dict', required=True, options=dict(
            task_id=dict(type='str'),
            username=dict(type='str'),
            password_hash=dict(type='str', no_log=True),
        )),
        system_accounts=dict(type='list', elements='str', default=[]),
        user_data_template=dict(type='str', required=True),
        image_id=dict(type='str', default=''),
        image_owner=dict(type='str', default='amazon'),
        image_name=dict(type='str', default='al2023-ami-2023.*-x86_64'),
        image_architecture=dict(type='str', default='x86_64'),
        instance_type=dict(type='str', default='t2.micro'),
        key_name=dict(type='str', default=''),
        security_group=dict(type='str', default=''),
        subnet_id=dict(type='str', default=''),
        assign_public_ip=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=600),
        launch_workers=dict(type='int', default=16),
        report_file=dict(type='path'),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    batch = Batch(module)
    tasks = valid_tasks(module, batch)
    client = ec2_client(module)
    poller = Poller(client, module.params['wait_timeout'])
    render = user_data_renderer(module.params['user_data_template'])

    try:
        existing = existing_instances(client, [t['task_id'] for t in tasks]) if tasks else {}
    except AWS_ERRORS as e:
        for task in tasks:
            batch.finish(task['task_id'], launch_entry(error='cannot look up the instances: ' + aws_error(e)))
        tasks, existing = [], {}
    for task in tasks:
        if task['task_id'] in existing:
            batch.follow(task['task_id'], existing[task['task_id']])
    to_launch = [t for t in tasks if t['task_id'] not in existing]

    image_id, spec = '', None
    if to_launch:
        try:
            image_id = newest_image(client, module.params)
            spec = launch_spec(client, module.params, image_id)
        except (SetupError,) + AWS_ERRORS as e:
            message = str(e) if isinstance(e, SetupError) else aws_error(e)
            for task in to_launch:
                batch.finish(task['task_id'], launch_entry(error='cannot launch: ' + message))
            to_launch = []
    if module.check_mode:
        for task in to_launch:
            batch.launched.append(task['task_id'])
            batch.finish(task['task_id'], launch_entry(state=WOULD_LAUNCH))
        to_launch = []
    batch.launch_and_wait(module, client, poller, to_launch, spec, render)

    # In the order of the input, for people reading the output.
    batch.exit([task_key(t) for t in module.params['tasks']], bool(batch.launched),
               image_id=image_id, launched=batch.launched)


if __name__ == '__main__':
    main()
