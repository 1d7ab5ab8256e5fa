#!/usr/bin/python3
"""Small Vulkan jobs batched into one submission (issue 5), against a real vkresampled on
lavapipe with validation on and one worker:

- 8 clients each pipeline 50 small jobs of one shape (bilinear interpolate), with jobs of two
  other shapes interleaved (nearest interpolate, nearest grid_sample); every reply is matched by
  request_id and equal to torch bit for bit, and the daemon's log shows batches of more than one
  job (the per-batch debug lines and the "batches: N of M jobs" line STATS logs under -v: the
  STATS_REPLY layout is fixed, so the counters live in the log);
- a cancel in the middle: behind a slow job, a client queues 40 small jobs and cancels every
  fourth; each request gets exactly one reply, the cancelled ones VKR_E_CANCELLED (or their
  RESULT if it was already on its way), every RESULT still right;
- with --max-batch 1 nothing is batched and the answers are the same;
- jobs/s of the small-job load with and without batches (printed; --bench for more runs and no
  validation).

usage: test_batching.py DAEMON [--bench]     (TAP output)"""
import argparse
import os
import re
import statistics
import sys
import threading
import time

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Daemon, Tap, vkresample as v  # noqa: E402

CLIENTS = 8
JOBS = 50            # of the main shape per client
OTHER_EVERY = 5      # one job of another shape after every fifth


def job_main(rng):
    """Bilinear interpolate of one small shape: (SUBMIT body, torch's answer)."""
    x = rng.standard_normal((1, 3, 12, 16)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x), size=(20, 26), mode='bilinear', align_corners=False).numpy()
    return v.pack_submit_body(x.shape, x.tobytes(), mode='bilinear', size=(20, 26), align_corners=False, backend='vulkan'), ref


def job_nearest(rng):
    x = rng.standard_normal((2, 2, 5, 7)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x), scale_factor=2.0, mode='nearest').numpy()
    return v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend='vulkan'), ref


def job_grid(rng):
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    g = rng.uniform(-1.1, 1.1, (2, 6, 5, 2)).astype(np.float32)
    ref = F.grid_sample(torch.from_numpy(x), torch.from_numpy(g), mode='nearest', padding_mode='border', align_corners=True).numpy()
    body = v.pack_grid_body(v.OP_GRID_SAMPLE, [x.shape, g.shape], [x.tobytes(), g.tobytes()], mode='nearest', padding_mode='border',
                            align_corners=True, backend='vulkan')
    return body, ref


def client_jobs(seed, jobs=JOBS):
    """One client's jobs in sending order: the main shape, another after every fifth."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(jobs):
        out.append(job_main(rng))
        if k % OTHER_EVERY == OTHER_EVERY - 1:
            out.append(job_nearest(rng) if (k // OTHER_EVERY) % 2 == 0 else job_grid(rng))
    return out


def check_result(f, ref):
    """None when f is a RESULT equal to ref bit for bit, else why not."""
    if f.type != v.MSG_RESULT:
        return 'error %s' % (v.unpack_error(f.body) if f.type == v.MSG_ERROR else f.type,)
    res = v.unpack_result(f.body)
    if res['backend_used'] != 'vulkan':
        return 'ran on %s' % res['backend_used']
    got = np.frombuffer(f.body, '<f4', offset=v.RESULT_FIXED_BYTES)
    if res['shape'] != ref.shape or got.tobytes() != np.ascontiguousarray(ref, np.float32).tobytes():
        return 'differs from torch'
    return None


def pipeline_client(path, jobs, failures, start):
    """Send every job at once (pipelined), then read every reply and check it."""
    try:
        c = v.Client(path, timeout=300)
        start.wait()
        refs = {}
        frames = []
        for rid, (body, ref) in enumerate(jobs, 1):
            frames.append(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
            refs[rid] = ref
        c.send_raw(b''.join(frames))
        while refs:
            f = c.recv_frame(max_body=1 << 24)
            if f is None or f.request_id not in refs:
                failures.append('reply %s matches no request in flight' % (None if f is None else f.request_id))
                return
            why = check_result(f, refs.pop(f.request_id))
            if why:
                failures.append('request %d: %s' % (f.request_id, why))
        c.close()
    except Exception as e:  # noqa: BLE001
        failures.append(repr(e))


def run_load(d, per_client):
    """All clients at once; returns (seconds, failures)."""
    failures = []
    start = threading.Barrier(len(per_client) + 1)
    threads = [threading.Thread(target=pipeline_client, args=(d.socket, jobs, failures, start)) for jobs in per_client]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return time.monotonic() - t0, failures


def start_daemon(binary, max_batch, validation=True, verbose=True):
    return Daemon(binary, backend='vulkan', validation=validation,
                  extra=('--workers', '1', '--max-batch', str(max_batch), *(('-v',) if verbose else ())))


def batch_sizes(log):
    return [int(n) for n in re.findall(r'batch of (\d+) \S+ jobs ran as one worker task', log)]


def stats_batches(d):
    """(batches, batched jobs) from the line a STATS request logs under -v."""
    with d.client() as c:
        c.stats()
    m = re.findall(r'batches: (\d+) of (\d+) jobs', d.log())
    return (int(m[-1][0]), int(m[-1][1])) if m else None


def test_load(tap, binary):
    per_client = [client_jobs(100 + k) for k in range(CLIENTS)]
    total = sum(len(j) for j in per_client)
    d = start_daemon(binary, 16)
    try:
        elapsed, failures = run_load(d, per_client)
        tap.check(not failures, '%d clients x %d jobs (%d in all, 3 shapes interleaved, pipelined, 1 worker): every reply equal to torch '
                  'bit for bit (%s)' % (CLIENTS, len(per_client[0]), total, failures[:3]))
        sizes = batch_sizes(d.log())
        st = stats_batches(d)
        tap.check(sizes and max(sizes) > 1 and st is not None and st[0] == len(sizes) and st[1] == sum(sizes) and st[1] > st[0],
                  'batches of more than one job ran: %d batches holding %d jobs, largest %d (stats log line %s)'
                  % (len(sizes), sum(sizes), max(sizes) if sizes else 0, st))
        tap.check(max(sizes or [0]) <= 16, 'no batch is over the cap of 16 jobs')
        print('# batched load: %d jobs in %.2f s, %.0f jobs/s (validation on)' % (total, elapsed, total / elapsed))
        test_cancel(tap, d)
        log = d.stop()
        tap.check('vulkan: batches of several jobs' in log, 'the Vulkan backend logs its batch count at exit')
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def test_cancel(tap, d):
    """Behind a slow job, queue 40 small jobs and cancel every fourth."""
    rng = np.random.default_rng(7)
    big = rng.standard_normal((1, 8, 256, 256)).astype(np.float32)
    slow = v.pack_submit_body(big.shape, big.tobytes(), mode='bicubic', size=(700, 700), align_corners=False, antialias=False,
                              backend='vulkan', result_storage=v.RESULT_DAEMON_FD)
    blocker = v.Client(d.socket, timeout=300)
    c = v.Client(d.socket, timeout=300)
    blocker.send_raw(v.pack_header(v.MSG_SUBMIT, 1, len(slow)) + slow)
    jobs = [job_main(rng) for _ in range(40)]
    frames = [v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body for rid, (body, _) in enumerate(jobs, 1)]
    cancelled = set(range(4, 41, 4))
    c.send_raw(b''.join(frames) + b''.join(v.pack_header(v.MSG_CANCEL, rid, 0) for rid in sorted(cancelled)))
    replies, problems, n_cancelled = {}, [], 0
    while len(replies) < len(jobs):
        f = c.recv_frame(max_body=1 << 24)
        if f is None:
            problems.append('connection closed')
            break
        if f.request_id in replies:
            problems.append('request %d answered twice' % f.request_id)
        replies[f.request_id] = f
        err = v.unpack_error(f.body) if f.type == v.MSG_ERROR else None
        if err and err[0] == v.VKR_E_CANCELLED and f.request_id in cancelled:
            n_cancelled += 1
            continue
        why = check_result(f, jobs[f.request_id - 1][1])
        if why:
            problems.append('request %d: %s' % (f.request_id, why))
    f = blocker.recv_frame(max_body=1 << 24)
    for fd in (f.fds if f else ()):
        os.close(fd)
    tap.check(not problems and n_cancelled > 0 and f is not None and f.type == v.MSG_RESULT,
              'cancel in the middle: 40 queued, every fourth cancelled: one reply each, %d answered cancelled, every result equal '
              'to torch (%s)' % (n_cancelled, problems[:3]))
    x = np.random.default_rng(1).standard_normal((1, 3, 12, 16)).astype(np.float32)
    y = c.interpolate(x, size=(20, 26), mode='bilinear', align_corners=False, backend='vulkan')
    ref = F.interpolate(torch.from_numpy(x), size=(20, 26), mode='bilinear', align_corners=False).numpy()
    tap.check(y.tobytes() == ref.tobytes(), 'the connection serves on after the cancels')
    c.close()
    blocker.close()


def test_off(tap, binary):
    per_client = [client_jobs(200 + k, jobs=20) for k in range(4)]
    d = start_daemon(binary, 1)
    try:
        _, failures = run_load(d, per_client)
        sizes = batch_sizes(d.log())
        st = stats_batches(d)
        tap.check(not failures and not sizes and st == (0, 0),
                  '--max-batch 1: no batches, every reply equal to torch (%s, %s)' % (st, failures[:3]))
        log = d.stop()
        tap.check('vulkan batches: up to 1 jobs' in log and '(off)' in log, 'the start-up line says batches are off')
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def throughput(binary, runs):
    """Median jobs/s of the small-job load (main shape only, 8 clients x 50), batched and not."""
    per_client = [[job_main(np.random.default_rng(300 + k)) for _ in range(JOBS)] for k in range(CLIENTS)]
    total = CLIENTS * JOBS
    out = {}
    for max_batch in (16, 1):
        rates = []
        for _ in range(runs):
            d = start_daemon(binary, max_batch, validation=False, verbose=False)
            try:
                elapsed, failures = run_load(d, per_client)
                if failures:
                    raise AssertionError(failures[:3])
                rates.append(total / elapsed)
                d.stop()
            finally:
                if d.proc.poll() is None:
                    d.proc.kill()
                    d.proc.wait()
        out[max_batch] = statistics.median(rates)
        print('# small jobs (1x3x12x16 -> 20x26 bilinear, %d clients x %d pipelined, 1 worker, no validation), max batch %d: '
              'median %.0f jobs/s over %d runs (%s)' % (CLIENTS, JOBS, max_batch, out[max_batch], runs,
                                                        ', '.join('%.0f' % r for r in rates)), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--bench', action='store_true', help='only the throughput comparison, 5 runs each')
    args = ap.parse_args()
    tap = Tap()
    if args.bench:
        throughput(args.daemon, 5)
        return 0
    test_load(tap, args.daemon)
    test_off(tap, args.daemon)
    throughput(args.daemon, 1)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
