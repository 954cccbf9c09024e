#!/usr/bin/python
# -*- coding: utf-8 -*-
# ec2-api: list the instances ec2-api manages, with only the fields the service shows.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ec2_api_list
short_description: List the EC2 instances that ec2-api manages
description:
  - One C(DescribeInstances) (filters C(tag:ManagedBy=ec2-api) and C(instance-state-name)) finds the instances;
    instances without that tag are never listed.
  - Returns only the listed fields (never user data or anything else of the instances),
    sorted by launch time, then instance id.
version_added: 0.1.0
author:
  - ec2-api
options:
  states:
    description:
      - The instance states to list, a list or a comma-separated string;
        any of pending, running, shutting-down, stopping, stopped, terminated.
    type: list
    elements: str
    default: [pending, running, shutting-down, stopping, stopped]
extends_documentation_fragment:
  - amazon.aws.aws
  - amazon.aws.ec2
  - amazon.aws.boto3
'''

EXAMPLES = r'''
- name: List the running and the terminated instances of ec2-api
  ec2_api_list:
    states: [running, terminated]
  register: listed
'''

RETURN = r'''
instances:
  description: The instances, sorted by launch_time, then instance_id.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance id.
      type: str
      sample: i-0123456789abcdef0
    public_ip:
      description: Its public IPv4 address, or null.
      type: str
      sample: 54.1.2.3
    state:
      description: Its state.
      type: str
      sample: running
    launch_time:
      description: When it was launched, ISO 8601 as EC2 gives it.
      type: str
      sample: "2024-05-01T12:00:00+00:00"
    task_id:
      description: Its C(TaskId) tag, or null.
      type: str
      sample: t-1
    name:
      description: Its C(Name) tag, or null.
      type: str
      sample: ec2-api-t-1
    instance_type:
      description: Its instance type.
      type: str
      sample: t2.micro
'''

from ansible_collections.amazon.aws.plugins.module_utils.core import AnsibleAWSModule
from ansible.module_utils.ec2_api_aws import AWS_ERRORS, MANAGED, ec2_client, find_instances, state_of, tags_of
from ansible.module_utils.ec2_api_rules import ALL_STATES, LIVE_STATES


def listed(instance):
    tags = tags_of(instance)
    launched = instance.get('LaunchTime')
    return {
        'instance_id': instance['InstanceId'],
        'public_ip': instance.get('PublicIpAddress') or None,
        'state': state_of(instance),
        'launch_time': launched.isoformat() if launched else None,
        'task_id': tags.get('TaskId'),
        'name': tags.get('Name'),
        'instance_type': instance.get('InstanceType'),
    }


def main():
    module = AnsibleAWSModule(argument_spec=dict(states=dict(type='list', elements='str', default=LIVE_STATES)),
                              supports_check_mode=True)
    # By hand, "running, terminated" works too.
    states = [s.strip() for s in module.params['states'] if s.strip()]
    if not states or set(states) - set(ALL_STATES):
        module.fail_json(msg='ec2_api_list_states must be a non-empty list (or comma-separated string) '
                             'of EC2 instance states: %s.' % ', '.join(ALL_STATES))
    try:
        found = find_instances(ec2_client(module), [MANAGED], 'instance-state-name', states)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg='cannot list the instances')
    instances = sorted((listed(i) for i in found), key=lambda i: (i['launch_time'] or '', i['instance_id']))
    module.exit_json(changed=False, instances=instances)


if __name__ == '__main__':
    main()
