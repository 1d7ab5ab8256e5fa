#!/usr/bin/python3
"""A lost Vulkan device, simulated, against a real vkresampled (issue 7).

VKRESAMPLE_SIMULATE_DEVICE_LOSS=N (test only) makes the N-th job that runs on Vulkan report a lost
device, which the daemon handles exactly as a VK_ERROR_DEVICE_LOST from the backend:

- the jobs before it run on Vulkan; the job that lost the device is answered correctly, run
  again on the CPU backend (RESULT backend_used cpu);
- later 'auto' jobs run on the CPU; a later job that asks for 'vulkan' gets
  VKR_E_BACKEND_UNAVAILABLE naming the loss; 'cpu' jobs are unaffected;
- jobs already admitted for Vulkan when the device goes (pipelined 'vulkan' jobs on one
  connection) all get correct RESULTs from the CPU;
- PING no longer offers vulkan and names the CPU; STATS (Python module and `vkresample stats`, text
  and --json) says the device was lost and how many jobs moved to the CPU;
- the daemon stops with exit 0.

usage: test_device_loss.py DAEMON CLI      (TAP output)"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Daemon, Tap, vkresample as v  # noqa: E402

ENV = 'VKRESAMPLE_SIMULATE_DEVICE_LOSS'


def start(binary, n, extra=()):
    os.environ[ENV] = str(n)
    try:
        return Daemon(binary, backend='auto', extra=('--workers', '1', *extra))
    finally:
        del os.environ[ENV]


def nearest_x2(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def sample(seed):
    return np.random.default_rng(seed).standard_normal((2, 3, 9, 13)).astype(np.float32)


def job(client, seed, backend='auto'):
    """(correct, backend that ran it) of one nearest x2 job (bit-exact on both backends)."""
    x = sample(seed)
    y = client.interpolate(x, scale_factor=2.0, mode='nearest', backend=backend)
    return bool(np.array_equal(y, nearest_x2(x))), client.last_backend


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('cli')
    args = ap.parse_args()
    tap = Tap()

    d = start(args.daemon, 3)
    c = d.client()
    info = c.ping()
    if 'vulkan' not in info['backends']:
        tap.n += 1
        print('ok %d - device loss # SKIP no Vulkan device (%s)' % (tap.n, info), flush=True)
        c.close()
        d.stop()
        return tap.done()
    runs = [job(c, k) for k in range(2)]
    tap.check(runs == [(True, 'vulkan')] * 2, "jobs 1 and 2 ('auto') run on Vulkan, correct (%s)" % runs)
    lost = job(c, 2)
    tap.check(lost == (True, 'cpu'), 'job 3 loses the device (simulated) and is answered correctly from the CPU (%s)' % (lost,))
    log = d.log()
    tap.check('device lost' in log and 'VK_ERROR_DEVICE_LOST' in log and ENV in log, 'the loss is logged once, with its cause')
    later = [job(c, k) for k in range(3, 5)]
    tap.check(later == [(True, 'cpu')] * 2, "later 'auto' jobs run on the CPU, correct (%s)" % later)
    try:
        job(c, 5, backend='vulkan')
        got = 'served'
    except v.VkresampleError as e:
        got = (e.code, e.field, e.message)
    tap.check(got != 'served' and got[:2] == (v.VKR_E_BACKEND_UNAVAILABLE, 'backend') and 'lost' in got[2],
              "a later job asking for 'vulkan' -> VKR_E_BACKEND_UNAVAILABLE naming the loss (%s)" % (got,))
    tap.check(job(c, 6, backend='cpu') == (True, 'cpu'), "a 'cpu' job is unaffected")
    info = c.ping()
    tap.check(info['backends'] == ['cpu'] and info['default_backend'] == 'cpu' and info['device'] == 'cpu',
              'PING: only cpu is offered now, and named (%s)' % info)
    st = c.stats()
    tap.check(st['vulkan_lost'] is True and st['jobs_moved_to_cpu'] == 3 and st['device'] == 'cpu',
              'STATS: vulkan_lost, 3 jobs moved to the CPU (%s, %d)' % (st['vulkan_lost'], st['jobs_moved_to_cpu']))
    rows = {(r['op'], r['backend']): r for r in st['jobs']}
    vk, cpu = rows.get(('interpolate', 'vulkan'), {}), rows.get(('interpolate', 'cpu'), {})
    tap.check(vk.get('done') == 2 and vk.get('failed') == 1 and vk.get('in_flight') == 0 and cpu.get('done') == 4 and
              cpu.get('failed') == 0 and cpu.get('in_flight') == 0,
              "STATS rows: 2 done on Vulkan and the refused 'vulkan' job failed there, 4 done on the CPU, none in flight (%s / %s)"
              % (vk, cpu))
    text = subprocess.run([args.cli, '--socket', d.socket, 'stats'], capture_output=True, text=True, timeout=60)
    tap.check(text.returncode == 0 and 'vulkan device lost: yes, jobs moved to cpu: 3' in text.stdout,
              "`vkresample stats` says 'vulkan device lost: yes, jobs moved to cpu: 3'")
    js = subprocess.run([args.cli, '--socket', d.socket, 'stats', '--json'], capture_output=True, text=True, timeout=60)
    try:
        parsed = json.loads(js.stdout)
    except ValueError:
        parsed = {}
    tap.check(parsed.get('vulkan_lost') is True and parsed.get('jobs_moved_to_cpu') == 3, '`vkresample stats --json` too')
    c.close()
    check_stopped(tap, d, 'daemon stopped with exit 0')

    # jobs admitted for Vulkan before the loss, pipelined on one connection: all answered by the CPU
    d = start(args.daemon, 2)
    c = d.client()
    xs = [sample(100 + k) for k in range(6)]
    # one write of all six frames: the daemon admits them in one read, before the first job's
    # completion (on the same loop) can record the loss, however slow the machine is
    frames = []
    for k, x in enumerate(xs):
        body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend='vulkan')
        frames.append(v.pack_header(v.MSG_SUBMIT, 10 + k, len(body)) + body)
    c.send_raw(b''.join(frames))
    replies = {}
    for _ in xs:
        f = c.recv_frame(max_body=1 << 24)
        if f is None or f.type != v.MSG_RESULT:
            replies[f.request_id if f else -1] = ('error', v.unpack_error(f.body) if f else None)
            continue
        res = v.unpack_result(f.body)
        y = np.frombuffer(f.body[res['data_offset']:res['data_offset'] + res['data_bytes']], np.float32).reshape(res['shape'])
        replies[f.request_id] = (bool(np.array_equal(y, nearest_x2(xs[f.request_id - 10]))), res['backend_used'])
    used = [replies.get(10 + k) for k in range(6)]
    tap.check(used == [(True, 'vulkan')] + [(True, 'cpu')] * 5,
              "6 pipelined 'vulkan' jobs, the device lost at the 2nd: the 1st ran on Vulkan, the other 5 on the CPU, all correct (%s)"
              % used)
    st = c.stats()
    tap.check(st['vulkan_lost'] and st['jobs_moved_to_cpu'] == 5, 'STATS: 5 jobs moved (%d)' % st['jobs_moved_to_cpu'])
    c.close()
    check_stopped(tap, d, 'daemon stopped with exit 0')
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
