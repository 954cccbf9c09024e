# -*- coding: utf-8 -*-
# ec2-api: machine-readable progress events for the ec2-api service.
from __future__ import annotations

DOCUMENTATION = r"""
name: ec2_api_events
type: notification
short_description: Write ec2-api progress events as JSON lines to a file descriptor
description:
  - Writes one JSON object per line to the file descriptor named by the
    environment variable C(EC2_API_EVENTS_FD) (opened by the parent process,
    e.g. 3), flushed after each line. Does nothing when that variable is unset.
  - "Events: C(playbook_start) {playbook}; C(task_start) {step, of, name};
    C(task_end) {step, name, status, duration_ms[, msg]} once per host result,
    status one of ok, changed, failed, skipped, unreachable (results of
    ignore_errors or failed_when are ok/changed); C(stats) {ok, results, image_id} at the
    end, results being the C(ec2_api_results) custom stats (set_stats, per_host false),
    image_id the C(ec2_api_image_id) one (create.yml: the image it used)."
  - C(of) is the number of tasks of the play (meta tasks excluded), C(step) the
    ordinal of the task in the play.
  - Results arrive already censored by no_log.
  - When the reader of the descriptor goes away (the service died), a run
    that leads its own process group (the service starts each so) kills that
    group, so that no run outlives its service.
  - Enable with C(ANSIBLE_CALLBACKS_ENABLED=ec2_api_events); it does not change
    the normal screen output.
requirements:
  - Enabled in callbacks_enabled (ANSIBLE_CALLBACKS_ENABLED).
options: {}
"""

import json
import os
import select
import signal
import threading
import time

from ansible.playbook.block import Block
from ansible.playbook.task import Task
from ansible.plugins.callback import CallbackBase

_META_ACTIONS = frozenset(('meta', 'ansible.builtin.meta', 'ansible.legacy.meta'))
_RESULTS_KEY = 'ec2_api_results'


def _die_with_service(fd):
    """Kills this run's process group once the service that reads `fd` is gone.

    The service holds the other end of the events pipe for as long as the run
    is its own; when it dies (kill -9, power loss of its process), the pipe's
    write end reports POLLERR. A run left behind would go on launching while
    the task runs again elsewhere (on a node that took over its lease, or at
    the next start): EC2's ClientToken would return the same instance, an
    emulator may launch a second. The service starts each run in its own
    process group (ansible-playbook, its workers, the modules), so the whole
    run goes. Only the main process runs this thread: forked workers do not
    inherit it.
    """
    poller = select.poll()
    poller.register(fd, select.POLLERR)
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        if any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events):
            if any(mask & select.POLLNVAL for _, mask in events):
                return  # our own end was closed: nothing to watch
            os.killpg(os.getpgid(0), signal.SIGKILL)
            return


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'ec2_api_events'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self._fd = None
        fd = os.environ.get('EC2_API_EVENTS_FD', '').strip()
        if fd:
            try:
                self._fd = int(fd)
                os.fstat(self._fd)
            except (ValueError, OSError) as e:
                self._display.warning('ec2_api_events: EC2_API_EVENTS_FD=%r is not an open file descriptor (%s); no events'
                                      % (fd, e))
                self._fd = None
        # Only a run the service started (it leads its own process group): never an operator's shell job.
        if self._fd is not None and os.getpgid(0) == os.getpid():
            threading.Thread(target=_die_with_service, args=(self._fd,), name='ec2_api_events-watch', daemon=True).start()
        self._reset_play()

    # -- output -------------------------------------------------------------

    def _emit(self, **event):
        if self._fd is None:
            return
        data = (json.dumps(event, default=str, separators=(',', ':')) + '\n').encode('utf-8')
        try:
            while data:  # os.write may write less than asked on pipes
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError as e:
            self._display.warning('ec2_api_events: cannot write events (%s); no more events' % e)
            self._fd = None

    # -- task counting --------------------------------------------------------

    def _reset_play(self):
        self._total = 0
        self._steps = {}      # task uuid -> step
        self._started = {}    # task uuid -> monotonic start time
        self._counter = 0

    def _walk(self, items):
        for item in items or []:
            if isinstance(item, Block):
                self._walk(item.block)
                self._walk(item.rescue)
                self._walk(item.always)
            elif isinstance(item, Task):
                if item.action in _META_ACTIONS:
                    continue
                self._total += 1
                self._steps.setdefault(item._uuid, self._total)

    def _step(self, task):
        step = self._steps.get(task._uuid)
        if step is None:  # not seen at play start (e.g. include_tasks)
            step = self._counter + 1
            self._steps[task._uuid] = step
        return step

    # -- playbook / play / task ---------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        self._emit(event='playbook_start', playbook=os.path.basename(playbook._file_name))

    def v2_playbook_on_play_start(self, play):
        self._reset_play()
        try:
            self._walk(play.pre_tasks + play.tasks + play.post_tasks)
        except Exception as e:  # never break a run for progress events
            self._display.warning('ec2_api_events: cannot count the tasks of the play (%s)' % e)

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.action in _META_ACTIONS:
            return
        step = self._step(task)
        self._counter = max(self._counter, step)
        self._started[task._uuid] = time.monotonic()
        self._emit(event='task_start', step=step, of=max(self._total, step), name=task.get_name())

    def _task_end(self, result, status, msg=None):
        task = result._task
        if task.action in _META_ACTIONS:
            return
        started = self._started.get(task._uuid)
        duration_ms = int((time.monotonic() - started) * 1000) if started is not None else None
        event = dict(event='task_end', step=self._step(task), name=task.get_name(),
                     status=status, duration_ms=duration_ms)
        if msg is not None:
            event['msg'] = msg
        self._emit(**event)

    @staticmethod
    def _ok_status(result):
        return 'changed' if result._result.get('changed', False) else 'ok'

    @staticmethod
    def _msg(result):
        res = result._result
        msg = res.get('msg') or res.get('censored') or res.get('reason') or res.get('stderr') or ''
        return str(msg)

    def v2_runner_on_ok(self, result):
        self._task_end(result, self._ok_status(result))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._task_end(result, self._ok_status(result))
        else:
            self._task_end(result, 'failed', msg=self._msg(result))

    def v2_runner_on_skipped(self, result):
        self._task_end(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._task_end(result, 'unreachable', msg=self._msg(result))

    # -- end ------------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        ok = not any(stats.summarize(h)['failures'] or stats.summarize(h)['unreachable'] for h in hosts)
        custom = stats.custom.get('_run', {}) if isinstance(stats.custom, dict) else {}
        results = custom.get(_RESULTS_KEY, {}) if isinstance(custom, dict) else {}
        image_id = custom.get('ec2_api_image_id') if isinstance(custom, dict) else None
        self._emit(event='stats', ok=ok, results=results, image_id=image_id or None)
