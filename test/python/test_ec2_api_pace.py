"""Unit tests of plugins/module_utils/ec2_api_pace.py: the buckets a run by
hand keeps, the client of the service's socket and its fall-back, and the
botocore hooks. Run: /usr/bin/python3 -m unittest discover -s test/python
(test/module-rules.test.ts does)."""
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
import ec2_api_pace as pace  # noqa: E402

KEY = {'endpoint': 'http://127.0.0.1:5001', 'region': 'us-east-1', 'account': 'abc123'}
EC2 = pace.limits_from_env({})


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def local():
    clock = Clock()
    return pace.LocalPacer(EC2, clock=clock), clock


class Kinds(unittest.TestCase):
    def test_each_call_draws_on_its_bucket(self):
        self.assertEqual(pace.kind_of('RunInstances'), 'run_instances')
        self.assertEqual(pace.kind_of('TerminateInstances'), 'terminate_instances')
        for op in ('DescribeInstances', 'DescribeImages', 'GetConsoleOutput'):
            self.assertEqual(pace.kind_of(op), 'describe', op)
        for op in ('CreateTags', 'StopInstances', 'AuthorizeSecurityGroupIngress'):
            self.assertEqual(pace.kind_of(op), 'mutating', op)


class Limits(unittest.TestCase):
    def test_defaults_are_ec2s_documented_buckets(self):
        self.assertEqual(EC2, {'run_instances': (5, 2.0), 'terminate_instances': (100, 5.0),
                               'mutating': (50, 5.0), 'describe': (100, 20.0)})

    def test_the_services_setting_names_raise_them(self):
        limits = pace.limits_from_env({'EC2_API_RATE_RUN_INSTANCES': '20/7.5'})
        self.assertEqual(limits['run_instances'], (20, 7.5))
        self.assertEqual(limits['describe'], (100, 20.0))

    def test_a_bad_value_keeps_ec2s_default(self):
        for bad in ('5', '0/2', '5/0', 'x/y', ''):
            self.assertEqual(pace.limits_from_env({'EC2_API_RATE_RUN_INSTANCES': bad})['run_instances'], (5, 2.0), bad)


class Buckets(unittest.TestCase):
    def test_capacity_at_once_then_one_call_per_half_second_in_order(self):
        pacer, _ = local()
        waits = [pacer.take(KEY, 'run_instances') for _ in range(8)]
        self.assertEqual(waits[:5], [0.0] * 5)
        for i, wait in enumerate(waits[5:], start=1):
            self.assertAlmostEqual(wait, i * 0.5 + pace.SEND_SLACK_S)

    def test_refill_at_the_rate_up_to_the_capacity(self):
        pacer, clock = local()
        for _ in range(5):
            pacer.take(KEY, 'run_instances')
        clock.now += 1
        bucket = pacer.buckets[(KEY['endpoint'], KEY['region'], KEY['account'], 'run_instances')]
        bucket.advance(clock.now)
        self.assertAlmostEqual(bucket.tokens, 2.0)
        clock.now += 100
        bucket.advance(clock.now)
        self.assertEqual(bucket.tokens, 5)

    def test_kinds_regions_and_accounts_are_apart(self):
        pacer, _ = local()
        for _ in range(5):
            pacer.take(KEY, 'run_instances')
        self.assertGreater(pacer.take(KEY, 'run_instances'), 0)
        self.assertEqual(pacer.take(KEY, 'terminate_instances'), 0)
        self.assertEqual(pacer.take(dict(KEY, region='eu-west-1'), 'run_instances'), 0)
        self.assertEqual(pacer.take(dict(KEY, account='other'), 'run_instances'), 0)

    def test_a_throttle_lowers_the_rate_once_per_window_and_it_comes_back(self):
        pacer, clock = local()
        pacer.take(KEY, 'run_instances')
        pacer.throttled(KEY, 'run_instances')
        pacer.throttled(KEY, 'run_instances')
        bucket = pacer.buckets[(KEY['endpoint'], KEY['region'], KEY['account'], 'run_instances')]
        self.assertAlmostEqual(bucket.rate, 2 * pace.BETA, msg='two throttles together lower it once')
        self.assertEqual(bucket.throttled, 2)
        self.assertEqual(bucket.tokens, 0)
        self.assertAlmostEqual(pacer.take(KEY, 'run_instances'), 1 / (2 * pace.BETA) + pace.SEND_SLACK_S)
        clock.now += 1
        bucket.advance(clock.now)
        self.assertAlmostEqual(bucket.rate, 2 * pace.BETA + 2 * pace.INCREASE)
        clock.now += 10
        bucket.advance(clock.now)
        self.assertEqual(bucket.rate, 2)

    def test_the_rate_never_drops_below_the_minimum(self):
        pacer, clock = local()
        for _ in range(30):
            pacer.throttled(KEY, 'run_instances')
            clock.now += pace.DECREASE_WINDOW_S
        bucket = pacer.buckets[(KEY['endpoint'], KEY['region'], KEY['account'], 'run_instances')]
        self.assertGreaterEqual(bucket.rate, pace.MIN_RATE)
        self.assertLess(bucket.rate, pace.MIN_RATE + 0.5)

    def test_threads_of_one_process_share_the_bucket(self):
        pacer, _ = local()
        waits = []
        threads = [threading.Thread(target=lambda: waits.append(pacer.take(KEY, 'run_instances'))) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(w for w in waits if w == 0), [0.0] * 5)
        self.assertAlmostEqual(max(waits), 2.5 + pace.SEND_SLACK_S)


class FakeService:
    """A Unix socket answering as the service does, recording each request;
    `hang_up_after` requests, it closes the connection (a service stopping)."""

    def __init__(self, wait=0.25, hang_up_after=None):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, 'pacer.sock')
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        self.wait = wait
        self.hang_up_after = hang_up_after
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn, conn.makefile('rwb') as f:
            for line in f:
                if self.hang_up_after is not None and len(self.requests) >= self.hang_up_after:
                    return
                request = json.loads(line)
                self.requests.append(request)
                reply = {'wait': self.wait} if request['op'] == 'take' else {'ok': True}
                f.write((json.dumps(reply) + '\n').encode())
                f.flush()

    def close(self):
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ServiceSocket(unittest.TestCase):
    def test_takes_and_throttles_go_to_the_service(self):
        service = FakeService(wait=0.25)
        self.addCleanup(service.close)
        pacer = pace.SocketPacer(service.path, local()[0])
        self.assertEqual(pacer.take(KEY, 'run_instances'), 0.25)
        pacer.throttled(KEY, 'describe')
        self.assertEqual(service.requests, [
            dict(KEY, op='take', kind='run_instances', n=1),
            dict(KEY, op='throttled', kind='describe'),
        ])
        self.assertIsNone(pacer.failed)

    def test_without_the_service_the_process_paces_itself_and_says_so_once(self):
        warnings = []
        fallback, _ = local()
        pacer = pace.SocketPacer('/nonexistent/pacer.sock', fallback, warn=warnings.append)
        waits = [pacer.take(KEY, 'run_instances') for _ in range(6)]
        self.assertEqual(waits[:5], [0.0] * 5, 'its own full bucket')
        self.assertAlmostEqual(waits[5], 0.5 + pace.SEND_SLACK_S, msg='then its own pace')
        self.assertEqual(len(warnings), 1)
        self.assertIn('paces its EC2 calls by itself', warnings[0])

    def test_a_service_that_stops_mid_run_hands_over_to_the_process(self):
        service = FakeService(wait=0.0, hang_up_after=2)
        self.addCleanup(service.close)
        warnings = []
        fallback, _ = local()
        pacer = pace.SocketPacer(service.path, fallback, warn=warnings.append)
        self.assertEqual([pacer.take(KEY, 'run_instances') for _ in range(2)], [0.0, 0.0])
        self.assertEqual(pacer.take(KEY, 'run_instances'), 0.0, 'the third call goes on, paced here')
        self.assertIsNotNone(pacer.failed)
        self.assertEqual(len(warnings), 1)
        self.assertEqual(len(service.requests), 2)
        self.assertEqual(sum(b.calls for b in fallback.buckets.values()), 1)

    def test_the_environment_picks_the_pacer(self):
        self.assertIsInstance(pace.pacer_from_env({}), pace.LocalPacer)
        chosen = pace.pacer_from_env({'EC2_API_PACER_SOCKET': '/x/pacer.sock', 'EC2_API_RATE_RUN_INSTANCES': '9/3'})
        self.assertIsInstance(chosen, pace.SocketPacer)
        self.assertEqual(chosen.fallback.limits['run_instances'], (9, 3.0), 'the fall-back keeps the service\'s limits')


class BotocoreHooks(unittest.TestCase):
    def setUp(self):
        import boto3
        self.client = boto3.session.Session().client(
            'ec2', region_name='us-east-1', endpoint_url='http://127.0.0.1:9',
            aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='secret')
        self.calls = []
        self.slept = []
        test = self

        class Recorder:
            def take(self, key, kind, n=1):
                test.calls.append(('take', key, kind))
                return 0.75

            def throttled(self, key, kind):
                test.calls.append(('throttled', key, kind))

        pace.pace(self.client, Recorder(), sleep=self.slept.append)

    def test_each_try_takes_a_token_of_its_kind_and_waits(self):
        responses = self.client.meta.events.emit('before-send.ec2.RunInstances', request=None)
        self.assertEqual([r for _, r in responses if r is not None], [], 'the request is still sent')
        self.assertEqual(self.calls[0][2], 'run_instances')
        self.assertEqual(self.slept, [0.75])
        self.client.meta.events.emit('before-send.ec2.DescribeInstances', request=None)
        self.assertEqual(self.calls[1][2], 'describe')

    def test_the_key_names_endpoint_region_and_a_digest_of_the_access_key(self):
        self.client.meta.events.emit('before-send.ec2.RunInstances', request=None)
        key = self.calls[0][1]
        self.assertEqual(key['endpoint'], 'http://127.0.0.1:9')
        self.assertEqual(key['region'], 'us-east-1')
        self.assertEqual(key['account'], pace.account_of('AKIDEXAMPLE'))
        self.assertNotIn('AKIDEXAMPLE', json.dumps(key))

    def test_a_password_in_the_endpoint_stays_out_of_the_key(self):
        import boto3
        client = boto3.session.Session().client('ec2', region_name='eu-west-1', endpoint_url='http://user:pw@127.0.0.1:9/',
                                                aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='secret')
        key = pace.bucket_key(client)
        self.assertEqual(key['endpoint'], 'http://127.0.0.1:9')
        self.assertEqual(key['region'], 'eu-west-1')

    def test_a_throttled_answer_is_reported_and_others_are_not(self):
        class Http:
            def __init__(self, status_code):
                self.status_code = status_code
                self.headers = {}

        throttled = (Http(503), {'Error': {'Code': 'RequestLimitExceeded', 'Message': 'Request limit exceeded.'}})
        ok = (Http(200), {'Reservations': []})
        other = (Http(400), {'Error': {'Code': 'InvalidParameterValue'}})
        for response in (throttled, ok, other):
            answers = self.client.meta.events.emit('needs-retry.ec2.RunInstances', response=response, attempts=1,
                                                   caught_exception=None, operation=None,
                                                   request_dict={'context': {}})
            self.assertEqual([r for handler, r in answers if getattr(handler, '__name__', '') == 'needs_retry'], [None],
                             'the decision to retry stays botocore\'s')
        self.assertEqual([c[0] for c in self.calls], ['throttled'])
        self.assertEqual(self.calls[0][2], 'run_instances')


if __name__ == '__main__':
    unittest.main()
