#!/usr/bin/python3
"""The daemon under load, on the CPU backend: 32 concurrent clients x 200 jobs each, every client
pipelining up to 8 jobs on its connection; every reply is matched to its request by request_id
and compared bit for bit with torch (interpolate in several modes, grid_sample, affine_grid,
affine_sample on small tensors).  Then round-robin fairness: with one worker, a client that joins
behind another client's ten queued jobs is served after at most two of them.

usage: test_load.py DAEMON [--clients N] [--jobs N]     (TAP output)"""
import argparse
import os
import select
import sys
import threading
import time

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, running_daemon, vkresample as v  # noqa: E402

WINDOW = 8           # jobs a client keeps in flight
N_TEMPLATES = 48     # distinct jobs (inputs and arguments) the clients draw from


def make_templates(rng):
    """(SUBMIT body, expected output) pairs, the expected output from torch."""
    templates = []
    for k in range(N_TEMPLATES):
        kind = k % 6
        n, c = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        if kind < 3:
            mode, ac = [('nearest', None), ('bilinear', bool(k % 2)), ('bicubic', False)][kind]
            h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
            x = rng.standard_normal((n, c, h, w)).astype(np.float32)
            size = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
            ref = F.interpolate(torch.from_numpy(x), size=size, mode=mode, align_corners=ac).numpy()
            body = v.pack_submit_body(x.shape, x.tobytes(), mode=mode, size=list(size), align_corners=ac, backend='cpu')
        elif kind == 3:
            x = rng.standard_normal((n, c, 7, 9)).astype(np.float32)
            g = rng.uniform(-1.1, 1.1, (n, 5, 6, 2)).astype(np.float32)
            pad = ['zeros', 'border', 'reflection'][k % 3]
            ref = F.grid_sample(torch.from_numpy(x), torch.from_numpy(g), mode='bilinear', padding_mode=pad, align_corners=False).numpy()
            body = v.pack_grid_body(v.OP_GRID_SAMPLE, [x.shape, g.shape], [x.tobytes(), g.tobytes()], mode='bilinear',
                                    padding_mode=pad, align_corners=False, backend='cpu')
        elif kind == 4:
            th = rng.uniform(-1, 1, (n, 2, 3)).astype(np.float32)
            size = [n, c, int(rng.integers(2, 9)), int(rng.integers(2, 9))]
            ref = F.affine_grid(torch.from_numpy(th), size, align_corners=True).numpy()
            body = v.pack_grid_body(v.OP_AFFINE_GRID, [th.shape], [th.tobytes()], align_corners=True, size=size, backend='cpu')
        else:
            x = rng.standard_normal((n, c, 6, 8)).astype(np.float32)
            th = rng.uniform(-1, 1, (n, 2, 3)).astype(np.float32)
            out = [int(rng.integers(2, 9)), int(rng.integers(2, 9))]
            grid = F.affine_grid(torch.from_numpy(th), [n, c] + out, align_corners=False)
            ref = F.grid_sample(torch.from_numpy(x), grid, mode='bicubic', padding_mode='border', align_corners=False).numpy()
            body = v.pack_grid_body(v.OP_AFFINE_SAMPLE, [x.shape, th.shape], [x.tobytes(), th.tobytes()], mode='bicubic',
                                    padding_mode='border', align_corners=False, size=out, backend='cpu')
        templates.append((body, np.ascontiguousarray(ref, dtype=np.float32)))
    return templates


def client_worker(path, templates, order, failures, counts):
    """Run this client's jobs with WINDOW in flight; check every reply against its request."""
    try:
        c = v.Client(path, timeout=120)
        in_flight = {}                      # request_id -> template index
        next_job = 0
        next_id = 1
        done = 0
        while done < len(order):
            while next_job < len(order) and len(in_flight) < WINDOW:
                t = order[next_job]
                body = templates[t][0]
                c.send_raw(v.pack_header(v.MSG_SUBMIT, next_id, len(body)) + body)
                in_flight[next_id] = t
                next_id += 1
                next_job += 1
            f = c.recv_frame(max_body=1 << 24)
            if f is None or f.request_id not in in_flight:
                failures.append('reply %s matches no request in flight' % (None if f is None else f.request_id))
                return
            t = in_flight.pop(f.request_id)
            done += 1
            if f.type != v.MSG_RESULT:
                failures.append('request %d: %s' % (f.request_id, v.unpack_error(f.body) if f.type == v.MSG_ERROR else f.type))
                continue
            ref = templates[t][1]
            res = v.unpack_result(f.body)
            got = np.frombuffer(f.body, '<f4', offset=v.RESULT_FIXED_BYTES).reshape(res['shape'])
            if res['shape'] != ref.shape or not np.array_equal(got, ref):
                failures.append('request %d (template %d): wrong result' % (f.request_id, t))
        counts.append(done)
        c.close()
    except Exception as e:  # noqa: BLE001
        failures.append(repr(e))


def test_many_clients(tap, daemon, n_clients, n_jobs):
    rng = np.random.default_rng(11)
    templates = make_templates(rng)
    with running_daemon(daemon, backend='cpu') as d:
        failures, counts = [], []
        orders = [rng.integers(0, len(templates), n_jobs) for _ in range(n_clients)]
        threads = [threading.Thread(target=client_worker, args=(d.socket, templates, orders[k], failures, counts))
                   for k in range(n_clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        total = sum(counts)
        tap.check(not failures and total == n_clients * n_jobs,
                  '%d clients x %d jobs, %d in flight per connection: all %d replies matched by request_id and equal to torch '
                  'in %.1f s (%s)' % (n_clients, n_jobs, WINDOW, total, elapsed, failures[:3]))
        with d.client() as c:
            st = c.stats()
        done = sum(r['done'] for r in st['jobs'])
        tap.check(done == n_clients * n_jobs and st['jobs_busy'] == 0 and st['latency_p99_us'] >= st['latency_p50_us'] > 0,
                  'stats after the load: %d jobs done, none busy, latency p50 %d us, p99 %d us' % (done, st['latency_p50_us'],
                                                                                                st['latency_p99_us']))
        print('# load: %d jobs in %.1f s (%.0f jobs/s), p50 %d us, p99 %d us' % (total, elapsed, total / max(elapsed, 1e-9),
                                                                                st['latency_p50_us'], st['latency_p99_us']))
        d.stop()


def test_fairness(tap, daemon):
    """One worker; client A queues ten slow jobs, then client B one fast job: B's reply must come
    after at most two of A's (round robin), not after all ten (FIFO)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 16, 64, 64)).astype(np.float32)
    th = np.array([[[0.9, 0.1, 0.0], [-0.1, 0.9, 0.0]]], np.float32)
    slow = v.pack_grid_body(v.OP_AFFINE_SAMPLE, [x.shape, th.shape], [x.tobytes(), th.tobytes()], mode='bicubic', padding_mode='zeros',
                            size=(384, 384), backend='cpu', result_storage=v.RESULT_DAEMON_FD)
    y = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    fast = v.pack_submit_body(y.shape, y.tobytes(), mode='nearest', scale_factor=2.0, backend='cpu')
    with running_daemon(daemon, backend='cpu', extra=('--workers', '1')) as d:
        a, b, watch = d.client(), d.client(), d.client()
        for rid in range(1, 11):
            a.send_raw(v.pack_header(v.MSG_SUBMIT, rid, len(slow)) + slow)
        for _ in range(100000):                 # replies, not sleeps: until A's jobs are all admitted
            st = watch.stats()
            if st['queued'] + st['running'] == 10:
                break
        b.send_raw(v.pack_header(v.MSG_SUBMIT, 1, len(fast)) + fast)
        order = []
        pending = {a.fileno(): (a, 'A', 10), b.fileno(): (b, 'B', 1)}
        got = {'A': 0, 'B': 0}
        while any(got[name] < n for _, name, n in pending.values()):
            ready, _, _ = select.select([fd for fd, (_, name, n) in pending.items() if got[name] < n], [], [], 120)
            if not ready:
                break
            for fd in ready:
                client, name, _ = pending[fd]
                f = client.recv_frame(max_body=1 << 20)
                for passed in f.fds:
                    os.close(passed)
                order.append(name if f.type == v.MSG_RESULT else name + '!')
                got[name] += 1
        position = order.index('B') if 'B' in order else -1
        tap.check(0 <= position <= 2 and order.count('A') == 10,
                  'fairness: behind ten queued jobs of another client, one job is served after %d of them (order %s)'
                  % (position, ''.join(order)))
        for c in (a, b, watch):
            c.close()
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--clients', type=int, default=32)
    ap.add_argument('--jobs', type=int, default=200)
    args = ap.parse_args()
    tap = Tap()
    test_many_clients(tap, args.daemon, args.clients, args.jobs)
    test_fairness(tap, args.daemon)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
