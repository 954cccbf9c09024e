# -*- coding: utf-8 -*-
# ec2-api: paces a boto3 EC2 client to EC2's request buckets (docs/pacing.md).
#
# Every call takes a token of its kind before it is sent (each try, retries
# included) and waits when its bucket is empty; a throttled answer
# (RequestLimitExceeded) lowers the bucket's rate. Under the service the
# buckets are the service's, shared by every run (over the Unix socket in
# EC2_API_PACER_SOCKET); run by hand, or when the socket does not answer, the
# process keeps the same buckets itself, so a run by hand paces the same way
# within one run. The arithmetic is src/ansible/pacer.ts's, the same constants.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import socket
import threading
import time

try:
    from urllib.parse import urlsplit, urlunsplit
except ImportError:  # Python 2, which these modules do not support otherwise
    from urlparse import urlsplit, urlunsplit

KINDS = ('run_instances', 'terminate_instances', 'mutating', 'describe')

# Setting name and default (capacity/refill per second): EC2's documented
# buckets, the same names and defaults as the service's (src/config.ts).
RATE_SETTINGS = {
    'run_instances': ('EC2_API_RATE_RUN_INSTANCES', '5/2'),
    'terminate_instances': ('EC2_API_RATE_TERMINATE_INSTANCES', '100/5'),
    'mutating': ('EC2_API_RATE_MUTATING', '50/5'),
    'describe': ('EC2_API_RATE_DESCRIBE', '100/20'),
}
SOCKET_ENV = 'EC2_API_PACER_SOCKET'

BETA = 0.7               # multiplicative decrease on a throttle (botocore's CubicCalculator)
MIN_RATE = 0.5           # lowest refill rate, tokens/s (botocore's TokenBucket)
INCREASE = 0.1           # additive increase: this fraction of the configured rate per second
DECREASE_WINDOW_S = 1.0  # throttles closer together count as one decrease
# A call that waits for its token goes this much after the token is due: its
# trip to EC2 may be shorter than the first calls' were (no new connection),
# and one arriving a few ms before EC2's bucket refilled is refused.
SEND_SLACK_S = 0.1

# What EC2 and botocore call a throttled call (botocore's standard retry mode list, for EC2).
THROTTLE_CODES = frozenset(('RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ThrottledException',
                            'RequestThrottledException', 'TooManyRequestsException', 'RequestThrottled',
                            'SlowDown', 'EC2ThrottledException', 'BandwidthLimitExceeded',
                            'PriorRequestNotComplete', 'TransactionInProgressException'))
# How long a call waits for the service's answer before the process paces itself.
SOCKET_TIMEOUT_S = 5.0


def kind_of(operation):
    """The bucket an EC2 operation draws on."""
    if operation == 'RunInstances':
        return 'run_instances'
    if operation == 'TerminateInstances':
        return 'terminate_instances'
    if operation.startswith(('Describe', 'Get', 'List')):
        return 'describe'
    return 'mutating'


def parse_rate(raw):
    """(capacity, refill per second) of "5/2"; ValueError otherwise."""
    capacity, _, refill = (raw or '').partition('/')
    capacity, refill = int(capacity.strip()), float(refill.strip())
    if capacity < 1 or refill <= 0:
        raise ValueError(raw)
    return capacity, refill


def limits_from_env(env):
    """{kind: (capacity, refill per second)} from EC2_API_RATE_*; a bad value falls back to EC2's default."""
    limits = {}
    for kind, (name, default) in RATE_SETTINGS.items():
        try:
            limits[kind] = parse_rate(env.get(name) or default)
        except ValueError:
            limits[kind] = parse_rate(default)
    return limits


class TokenBucket:
    """A bucket that may go below zero: a caller takes its tokens and waits
    until they have refilled, so callers are served in the order they came."""

    def __init__(self, capacity, refill, now):
        self.capacity = capacity
        self.configured_rate = float(refill)
        self.rate = float(refill)
        self.tokens = float(capacity)
        self.calls = 0
        self.throttled = 0
        self._at = now
        self._last_decrease = None

    def advance(self, now):
        elapsed = max(0.0, now - self._at)
        self._at = max(self._at, now)
        if elapsed:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.rate = min(self.configured_rate, self.rate + elapsed * INCREASE * self.configured_rate)

    def take(self, n, now):
        """Takes n tokens; the seconds to wait before the call."""
        self.advance(now)
        self.calls += n
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate + SEND_SLACK_S

    def throttle(self, now):
        self.advance(now)
        self.throttled += 1
        if self._last_decrease is not None and now - self._last_decrease < DECREASE_WINDOW_S:
            return
        self._last_decrease = now
        self.rate = max(min(MIN_RATE, self.configured_rate), self.rate * BETA)
        self.tokens = min(self.tokens, 0.0)


class LocalPacer:
    """The buckets of this process: for a run by hand, or when the service does not answer."""

    def __init__(self, limits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self.buckets = {}
        self._lock = threading.Lock()

    def _bucket(self, key, kind):
        """The bucket of `kind` for `key` ({endpoint, region, account})."""
        name = (key['endpoint'], key['region'], key['account'], kind)
        bucket = self.buckets.get(name)
        if bucket is None:
            capacity, refill = self.limits[kind]
            bucket = self.buckets[name] = TokenBucket(capacity, refill, self.clock())
        return bucket

    def take(self, key, kind, n=1):
        with self._lock:
            return self._bucket(key, kind).take(n, self.clock())

    def throttled(self, key, kind):
        with self._lock:
            self._bucket(key, kind).throttle(self.clock())


class SocketPacer:
    """The service's buckets, asked over its Unix socket, one request at a
    time per process. When the socket fails (the service stopped or
    restarted mid-run), this process paces itself for the rest of the run:
    from full buckets, so it may be throttled a few times, which the retries
    absorb."""

    def __init__(self, path, fallback, warn=None):
        self.path = path
        self.fallback = fallback
        self.warn = warn
        self._lock = threading.Lock()
        self._file = None
        self.failed = None  # why the socket was given up, once it was

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(SOCKET_TIMEOUT_S)
            sock.connect(self.path)
            return sock.makefile('rwb')
        finally:
            sock.close()  # the file keeps the connection open until it is closed

    def _ask(self, request):
        """The service's answer, or None when the socket failed (now or before)."""
        with self._lock:
            if self.failed is not None:
                return None
            try:
                if self._file is None:
                    self._file = self._connect()
                self._file.write((json.dumps(request, separators=(',', ':')) + '\n').encode('utf-8'))
                self._file.flush()
                line = self._file.readline()
                if not line:
                    raise EOFError('the service closed the pacing socket')
                answer = json.loads(line.decode('utf-8'))
                if 'error' in answer:
                    raise ValueError(answer['error'])
                return answer
            except (OSError, EOFError, ValueError) as e:
                self.failed = str(e) or type(e).__name__
                self._close()
        if self.warn:
            self.warn('the service does not answer on its pacing socket (%s): this run paces its EC2 calls '
                      'by itself from now on' % self.failed)
        return None

    def _close(self):
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass
        self._file = None

    def take(self, key, kind, n=1):
        answer = self._ask(dict(key, op='take', kind=kind, n=n))
        if answer is None:
            return self.fallback.take(key, kind, n)
        return max(0.0, float(answer.get('wait', 0)))

    def throttled(self, key, kind):
        if self._ask(dict(key, op='throttled', kind=kind)) is None:
            self.fallback.throttled(key, kind)


def pacer_from_env(env=None, warn=None):
    """The service's pacer when the run has its socket, else this process's."""
    env = os.environ if env is None else env
    local = LocalPacer(limits_from_env(env))
    path = env.get(SOCKET_ENV)
    return SocketPacer(path, local, warn=warn) if path else local


def account_of(access_key):
    """Names the account without showing the key: EC2 meters per account,
    which an access key id stands for without a call to STS."""
    return hashlib.sha256((access_key or '').encode('utf-8')).hexdigest()[:12]


def bucket_key(client):
    """Endpoint, Region and account digest of a boto3 client."""
    access_key = ''
    try:
        credentials = client._request_signer._credentials  # botocore keeps them there; no public accessor
        access_key = credentials.get_frozen_credentials().access_key if credentials else ''
    except AttributeError:
        pass
    endpoint = urlsplit(client.meta.endpoint_url or '')
    # A user:password in the endpoint's URL stays out of the key (shown on /healthz and /metrics).
    shown = urlunsplit((endpoint.scheme, endpoint.netloc.rpartition('@')[2], endpoint.path, '', ''))
    return {'endpoint': shown.rstrip('/'), 'region': client.meta.region_name or '', 'account': account_of(access_key)}


def is_throttle(response):
    """Whether a needs-retry event's response is a throttled call."""
    if not response:
        return False
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else {}
    code = ((parsed or {}).get('Error') or {}).get('Code')
    return code in THROTTLE_CODES


def pace(client, pacer, sleep=time.sleep):
    """Paces every call (every try) of `client` with `pacer`."""
    key = bucket_key(client)

    def before_send(event_name=None, **kwargs):
        wait = pacer.take(key, kind_of(event_name.rsplit('.', 1)[-1]))
        if wait > 0:
            sleep(wait)
        # None: botocore sends the request (a value here would be taken as the response).

    def needs_retry(event_name=None, response=None, **kwargs):
        if is_throttle(response):
            pacer.throttled(key, kind_of(event_name.rsplit('.', 1)[-1]))
        # None: the decision to retry stays botocore's.

    client.meta.events.register('before-send.ec2', before_send)
    client.meta.events.register('needs-retry.ec2', needs_retry)
    return client
