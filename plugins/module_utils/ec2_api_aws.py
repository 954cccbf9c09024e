# -*- coding: utf-8 -*-
# ec2-api: what the ec2_api_* modules share on the AWS side: a paced,
# retrying EC2 client, batched instance look-ups, the polling wait, the report file and
# the results a batch module ends with.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import json
import os
import time

try:
    from botocore.exceptions import BotoCoreError, ClientError
    # What a failed AWS call raises.
    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule fails the run without botocore

from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.ec2_api_pace import pace, pacer_from_env
from ansible.module_utils.ec2_api_rules import failure_summary

# One retry layer: botocore's standard mode, which retries every try of
# every call (paginated pages included) on throttling, 5xx and connection
# errors, with each try paced (ec2_api_pace). AWSRetry on top of it would
# multiply the tries (10 x 10) and wait at random on its own; it is off (no
# retry decorator; calls pass aws_retry=True, which then does nothing). An
# operator's own AWS_RETRY_MODE / AWS_MAX_ATTEMPTS win.
RETRY_DEFAULTS = {'AWS_RETRY_MODE': 'standard', 'AWS_MAX_ATTEMPTS': '10'}


def no_retry(call):
    return call


_PACER = []  # this process's pacer, made at the first client

MANAGED = {'Name': 'tag:ManagedBy', 'Values': ['ec2-api']}
# EC2 accepts at most 200 values in one filter.
FILTER_VALUES_MAX = 200


def ec2_client(module):
    """The EC2 client of the collection's modules: region, endpoint_url,
    profile and credentials as in amazon.aws; every call paced to EC2's
    buckets and retried by botocore's standard mode."""
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    client = module.client('ec2', retry_decorator=no_retry)
    if not _PACER:
        _PACER.append(pacer_from_env(warn=module.warn))
    pace(client.client, _PACER[0])
    return client


def find_instances(client, filters, name, values):
    """Instances matching `filters` and `name` in `values`: one
    DescribeInstances per 200 values (one call for a usual batch)."""
    values = sorted(set(values))
    found = []
    for start in range(0, len(values), FILTER_VALUES_MAX):
        chunk = {'Name': name, 'Values': values[start:start + FILTER_VALUES_MAX]}
        # Each page's call is retried by botocore (and paced) on its own.
        pages = client.get_paginator('describe_instances').paginate(Filters=filters + [chunk]).build_full_result()
        for reservation in pages.get('Reservations', []):
            found.extend(reservation.get('Instances', []))
    return found


def state_of(instance):
    return instance.get('State', {}).get('Name')


def tags_of(instance):
    return {tag['Key']: tag['Value'] for tag in instance.get('Tags') or []}


class Poller:
    """Looks at the instances still on their way after 0.5 s, 1 s, then every
    2 s until a deadline: a result is late by 2 s at most, for one
    DescribeInstances call per run every 2 s. By instance-id filter, not
    InstanceIds: right after RunInstances EC2 may not know an id yet, which
    InstanceIds would answer with an error for the whole call."""

    FIRST_DELAY = 0.5
    MAX_DELAY = 2.0

    def __init__(self, client, timeout):
        self.client = client
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.delay = self.FIRST_DELAY

    def expired(self):
        return time.monotonic() >= self.deadline

    def look(self, instance_ids):
        """{instance_id: instance} of those EC2 returns now."""
        if not instance_ids:
            return {}
        found = find_instances(self.client, [], 'instance-id', instance_ids)
        return {i['InstanceId']: i for i in found}

    def pause(self, futures=()):
        """Sleeps for the current delay, or less when all `futures` end first."""
        if futures:
            concurrent.futures.wait(futures, timeout=self.delay)
        else:
            time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.MAX_DELAY)


class ReportFile:
    """Appends one JSON line per final result to the file the service tails:
    {"task_id": key, ...the result entry}. Each line is one write() on an
    O_APPEND descriptor, so a reader never sees half a line."""

    def __init__(self, module, path):
        self._module = module
        self._fd = None
        if path:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as e:
                module.warn('cannot open the report file %s (%s); results come at the end only' % (path, e))

    def write(self, key, entry):
        if self._fd is None:
            return
        # The same censoring Ansible applies to the module's return values.
        line = remove_values(dict([('task_id', key)] + list(entry.items())), self._module._module.no_log_values)
        os.write(self._fd, (json.dumps(line, separators=(',', ':')) + '\n').encode('utf-8'))

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Results:
    """A batch run's result entries by key, each appended to the report file
    the moment it is final."""

    def __init__(self, module):
        self.module = module
        self.results = {}
        self.report = ReportFile(module, module.params['report_file'])

    def finish(self, key, entry):
        self.results[key] = entry
        self.report.write(key, entry)

    def exit(self, keys, changed, **extra):
        """Ends the module with task_results in the order of `keys`; fails,
        naming the failures, when any entry failed."""
        self.report.close()
        results = {key: self.results[key] for key in keys}
        result = dict(changed=changed, task_results=results, **extra)
        summary = failure_summary(results)
        if summary:
            self.module.fail_json(msg=summary, **result)
        self.module.exit_json(msg='all %d tasks ok' % len(results), **result)


def aws_error(e):
    """A short message for a botocore error (code and message, no traceback)."""
    response = getattr(e, 'response', None) or {}
    error = response.get('Error') or {}
    if error.get('Code'):
        return '%s: %s' % (error['Code'], error.get('Message', ''))
    return str(e)
