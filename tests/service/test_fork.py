#!/usr/bin/python3
"""The Python module across fork() (issue 11): a Client made before os.fork() and used in the
children, as a torch DataLoader with workers does.

Before the fix every child sent its requests on the parent's socket: the daemon saw one
connection, the children's request ids collided (each Client counts from 1), and a child could
read a sibling's reply as its own (a wrong array with no error) or lose its reply to a sibling and
block.  Now a Client checks the pid on every call and, in a child, drops the inherited descriptor
(never reading from it or shutting it down) and connects anew.

- The parent runs jobs, then forks CHILDREN children that start together (a pipe releases them at
  once) and each run JOBS different jobs (modes, shapes, data of their own; some shapes shared
  between children, so a crossed reply would fit) through the inherited Client, each result
  checked against torch bit for bit (CPU backend).  One child closes the inherited Client first:
  that must not touch the parent's connection.
- The same with a Client(memfd_threshold=0, pool=False) and a MemfdTensor the parent made: the threshold
  carries over to the child's new connection (inputs and outputs go by memfd), and the parent's
  MemfdTensor is usable as an input in the children.
- The parent keeps working after the children have run, on the same connection.
- torch.utils.data.DataLoader(num_workers=2) over a dataset that calls the parent's Client: every
  item right, both workers used.

Every Client here has a 5 s socket timeout, and the children a deadline, so the failure before
the fix shows as failed checks rather than a hang.

usage: test_fork.py DAEMON [--backend cpu] [--children N] [--jobs N]     (TAP output)"""
import argparse
import os
import select
import signal
import sys
import time

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'support'))
from vkr_testlib import check_stopped, Tap, running_daemon, vkresample as v  # noqa: E402

torch.set_num_threads(1)      # no OpenMP pool in the parent: forked children can use torch
SOCKET_TIMEOUT_S = 5.0
CHILD_DEADLINE_S = 120.0
# (shape, torch kwargs): C >= 2 everywhere (torch's NCHW kernels, which the CPU backend matches)
JOBS = [
    ((1, 3, 6, 7), {'scale_factor': 2.0, 'mode': 'nearest'}),
    ((2, 2, 5, 5), {'size': (9, 4), 'mode': 'bilinear', 'align_corners': False}),
    ((1, 3, 6, 7), {'scale_factor': 2.0, 'mode': 'nearest'}),
    ((1, 2, 11), {'size': 17, 'mode': 'linear', 'align_corners': True}),
    ((1, 4, 8, 8), {'size': 3, 'mode': 'area'}),
    ((1, 2, 3, 4, 5), {'scale_factor': 1.5, 'mode': 'nearest-exact'}),
    ((1, 3, 6, 7), {'scale_factor': 2.0, 'mode': 'nearest'}),
    ((1, 2, 7, 6), {'size': (5, 9), 'mode': 'bicubic', 'align_corners': False}),
]


def attempt(fn):
    """fn()'s value, or the VkresampleError it raised as a string (so that one broken
    connection fails a check instead of ending the test)."""
    try:
        return fn()
    except v.VkresampleError as e:
        return 'raised %s' % e


def one_job(client, seed, j, **client_kw):
    """Job j of the table with data drawn from seed; None when right, else what went wrong."""
    shape, kw = JOBS[j % len(JOBS)]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    try:
        got = client.interpolate(x, **kw, **client_kw)
    except v.VkresampleError as e:
        return 'job %d %s %s: %s' % (j, shape, kw, e)
    ref = F.interpolate(torch.from_numpy(x), **kw).numpy()
    if got.shape != ref.shape or not np.array_equal(got, ref):
        return 'job %d %s %s: wrong result (shape %s, torch %s)' % (j, shape, kw, got.shape, ref.shape)
    return None


def run_children(client, n_children, n_jobs, body):
    """Fork n_children that wait for a common start, run body(k) -> (n_failed, first problem) and
    report it through a pipe.  Returns [(k, exit status, n_failed, first problem)]."""
    go_r, go_w = os.pipe()
    kids = []
    for k in range(n_children):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 3
            try:
                os.close(r)
                os.close(go_w)
                os.read(go_r, 1)
                signal.alarm(int(CHILD_DEADLINE_S))
                failed, first = body(k)
                os.write(w, ('%d %s' % (failed, first or '-')).encode()[:4000])
                status = 0 if failed == 0 else 1
            except BaseException as e:   # noqa: BLE001 - report anything, never return into the test
                try:
                    os.write(w, ('1 child raised %r' % (e,)).encode()[:4000])
                except OSError:
                    pass
            finally:
                os._exit(status)
        os.close(w)
        kids.append((k, pid, r))
    os.close(go_r)
    os.write(go_w, b'x' * n_children)
    os.close(go_w)
    out = []
    deadline = time.monotonic() + CHILD_DEADLINE_S + 10
    for k, pid, r in kids:
        text = b''
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                text += b' (killed at the deadline)'
                break
            chunk = os.read(r, 4096)
            if not chunk:
                break
            text += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        failed, _, first = text.decode(errors='replace').partition(' ')
        out.append((k, status, int(failed) if failed.isdigit() else -1, first))
    return out


def check_children(tap, results, what, n_jobs):
    ok = all(status == 0 and failed == 0 for _, status, failed, _ in results)
    bad = ['child %d: exit status 0x%x, %s of %d wrong: %s' % (k, status, failed, n_jobs, first)
           for k, status, failed, first in results if status or failed]
    return tap.check(ok, '%s: %d children x %d jobs, all right%s'
                     % (what, len(results), n_jobs, (' -- ' + '; '.join(bad)) if bad else ''))


class ClientDataset(torch.utils.data.Dataset):
    """Items computed through a Client made in the main process (used by the workers)."""

    def __init__(self, client, n):
        self.client = client
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        shape, kw = JOBS[i % len(JOBS)]
        x = np.random.default_rng(5000 + i).standard_normal(shape).astype(np.float32)
        y = self.client.interpolate(x, **kw)
        return i, os.getpid(), torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu',))
    ap.add_argument('--children', type=int, default=4)
    ap.add_argument('--jobs', type=int, default=200)
    args = ap.parse_args()
    tap = Tap()
    with running_daemon(args.daemon, backend=args.backend, extra=('--workers', '2')) as daemon:
        client = v.Client(daemon.socket, timeout=SOCKET_TIMEOUT_S)
        fd_before = client.fileno()
        first = [one_job(client, 1, j) for j in range(len(JOBS))]
        tap.check(not any(first), 'parent: %d jobs right before the fork %s' % (len(first), [p for p in first if p]))

        def inline_body(k):
            if k == 0:
                client.close()      # a child closing the inherited Client: only its own copy
                return 0, None
            problems = [p for p in (one_job(client, 100000 * k + j, j) for j in range(args.jobs)) if p]
            return len(problems), problems[0] if problems else None
        check_children(tap, run_children(client, args.children, args.jobs, inline_body),
                       'inherited Client, inline', args.jobs)

        later = [one_job(client, 2, j) for j in range(len(JOBS))]
        tap.check(not any(later) and client.fileno() == fd_before,
                  'parent: jobs right after the children, on its own connection (fd %d, was %d) %s'
                  % (client.fileno(), fd_before, [p for p in later if p]))
        tap.check(attempt(lambda: client.ping()['backends']) not in ([], None) and not isinstance(
            attempt(client.ping), str), 'parent: ping answered after the children')

        # memfd settings and a MemfdTensor made by the parent
        mclient = v.Client(daemon.socket, timeout=SOCKET_TIMEOUT_S, memfd_threshold=0, pool=False)
        mclient.interpolate(np.ones((1, 2, 3, 3), np.float32), scale_factor=2.0)
        shared_in = mclient.memfd_tensor((1, 3, 6, 7), np.random.default_rng(7).standard_normal((1, 3, 6, 7)))
        shared_ref = F.interpolate(torch.from_numpy(np.array(shared_in.array)), scale_factor=2.0).numpy()

        def memfd_body(k):
            problems = []
            for j in range(args.jobs // 2):
                p = one_job(mclient, 200000 * k + j, j)
                if p is None and mclient.last_transport.get('output') != 'daemon memfd':
                    p = 'job %d: transport %s, memfd_threshold=0 lost' % (j, mclient.last_transport)
                if p is None and j % 10 == 0:
                    got = mclient.interpolate(shared_in, scale_factor=2.0)
                    if not np.array_equal(got, shared_ref) or mclient.last_transport.get('input') != 'memfd':
                        p = 'job %d: parent\'s MemfdTensor as input: wrong (%s)' % (j, mclient.last_transport)
                if p:
                    problems.append(p)
            return len(problems), problems[0] if problems else None
        check_children(tap, run_children(mclient, args.children, args.jobs // 2, memfd_body),
                       'inherited Client(memfd_threshold=0) and MemfdTensor', args.jobs // 2)
        got = attempt(lambda: mclient.interpolate(shared_in, scale_factor=2.0))
        tap.check(not isinstance(got, str) and np.array_equal(got, shared_ref)
                  and mclient.last_transport['input'] == 'memfd',
                  'parent: its memfd Client and MemfdTensor still work after the children')
        shared_in.close()
        mclient.close()

        # a DataLoader with two forked workers calling the parent's Client
        dl_client = v.Client(daemon.socket, timeout=SOCKET_TIMEOUT_S)
        dl_client.ping()
        n_items = 64
        loader = torch.utils.data.DataLoader(ClientDataset(dl_client, n_items), batch_size=None,
                                             num_workers=2, timeout=60,
                                             multiprocessing_context='fork')
        seen, wrong, pids, failure = set(), [], set(), None
        try:
            for i, pid, x, y in loader:
                _, kw = JOBS[int(i) % len(JOBS)]
                seen.add(int(i))
                pids.add(int(pid))
                if not torch.equal(y, F.interpolate(x, **kw)):
                    wrong.append(int(i))
        except Exception as e:   # noqa: BLE001 - a worker's error comes back as any exception
            failure = '%s: %s' % (type(e).__name__, str(e).strip().splitlines()[-1] if str(e).strip() else '')
        tap.check(failure is None and not wrong and len(seen) == n_items,
                  'DataLoader(num_workers=2): %d of %d items, %d wrong %s%s'
                  % (len(seen), n_items, len(wrong), wrong[:5], (' -- ' + failure) if failure else ''))
        tap.check(os.getpid() not in pids and len(pids) == 2 if failure is None else False,
                  'DataLoader: items came from 2 worker processes (%d)' % len(pids))
        tap.check(one_job(dl_client, 3, 1) is None, 'parent: the DataLoader\'s Client still works in the parent')
        dl_client.close()
        tap.check(one_job(client, 4, 0) is None, 'parent: the first Client still works at the end')
        client.close()
        check_stopped(tap, daemon)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
