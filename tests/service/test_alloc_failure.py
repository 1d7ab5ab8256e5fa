#!/usr/bin/python3
"""Allocation failure at every N along the job path of a real vkresampled (issue 7; libuv's
test-loop-oom.c idea).

For N = 1, 2, 3, ... a fresh daemon runs with VKRESAMPLE_FAIL_ALLOC_AT=N (test only: the N-th
allocation the daemon makes through its replaceable allocator after start-up fails, once) and a
fixed sequence of jobs goes through it: a connection is accepted, then an inline bilinear
interpolate (axis tables, per-thread scratch rows, the output), a grid_sample whose input is in a
memfd and whose output comes back in a daemon memfd, an affine_sample (base tables, prepared
points) and an antialiased bicubic interpolate (the intermediate).  Every job must end in its
correct RESULT, in a clean ERROR VKR_E_NOMEM, or in its connection being closed (the next job then
connects again).  After the sequence the daemon must still be up and serve every job of the
sequence correctly on a new connection, and stop with exit 0 at SIGTERM (under the sanitizer
build LeakSanitizer makes a leak a non-zero exit; under `--setup=valgrind` valgrind does).  The
loop ends at the first N whose failure the sequence never reached.

usage: test_alloc_failure.py DAEMON      (TAP output)"""
import argparse
import fcntl
import mmap
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Daemon, Tap, vkresample as v  # noqa: E402

ENV = 'VKRESAMPLE_FAIL_ALLOC_AT'
MAX_N = 400            # a safety net: the job path makes a few dozen allocations
INJECTED = 'failing allocation'

rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 17, 23)).astype(np.float32)
GRID = rng.uniform(-1.1, 1.1, (2, 9, 11, 2)).astype(np.float32)
THETA = np.tile(np.array([[0.9, 0.2, 0.1], [-0.15, 1.1, -0.05]], np.float32), (2, 1, 1))


def memfd(data):
    fd = os.memfd_create('vkr-oom', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
    return fd


def job_bilinear(c):
    return c.interpolate(X, size=(31, 45), mode='bilinear', align_corners=False, backend='cpu')


def job_memfd_grid(c):
    """grid_sample with the input in a memfd, the output in a memfd of the daemon's."""
    fd = memfd(X.tobytes())
    try:
        body = v.pack_grid_body(v.OP_GRID_SAMPLE, [X.shape, GRID.shape], [GRID.tobytes()], mode='bicubic', padding_mode='border',
                                align_corners=False, backend='cpu', memfds=[(0, 0), None], result_storage=v.RESULT_DAEMON_FD)
        c.send_raw(v.pack_header(v.MSG_SUBMIT, 77, len(body), n_fds=1) + body, [fd])
    finally:
        os.close(fd)
    f = c.recv_frame(max_body=1 << 20)
    if f is None:
        raise v.VkresampleError(v.VKR_E_IO, '', 'the daemon closed the connection')
    try:
        if f.type == v.MSG_ERROR:
            raise v.VkresampleError(*v.unpack_error(f.body))
        res = v.unpack_result(f.body)
        if f.type != v.MSG_RESULT or len(f.fds) != 1 or res['storage'] != v.STORAGE_MEMFD:
            raise AssertionError('unexpected reply %s %s' % (f.type, res))
        with mmap.mmap(f.fds[0], res['data_bytes'], mmap.MAP_SHARED, mmap.PROT_READ) as m:
            return np.frombuffer(bytes(m[:res['data_bytes']]), np.float32).reshape(res['shape'])
    finally:
        for fd in f.fds:
            os.close(fd)


def job_affine_sample(c):
    return c.affine_sample(X, THETA, (13, 19), mode='bilinear', padding_mode='zeros', align_corners=False, backend='cpu')


def job_antialias(c):
    return c.interpolate(X, size=(9, 11), mode='bicubic', antialias=True, align_corners=False, backend='cpu')


JOBS = [('bilinear inline', job_bilinear), ('grid_sample memfd in and out', job_memfd_grid),
        ('affine_sample', job_affine_sample), ('antialias bicubic', job_antialias)]


def run_sequence(d, reference):
    """Every job once; per job 'result', 'nomem' or 'closed', or a string saying what went wrong."""
    outcomes = []
    c = None
    for (name, job), ref in zip(JOBS, reference):
        if c is None:
            c = v.Client(d.socket, timeout=60)
        try:
            y = job(c)
            outcomes.append('result' if np.array_equal(y, ref) else '%s: wrong result' % name)
        except v.VkresampleError as e:
            if e.code == v.VKR_E_NOMEM:
                outcomes.append('nomem')
            elif e.code == v.VKR_E_IO:
                outcomes.append('closed')
            else:
                outcomes.append('%s: %s' % (name, e))
            # the next job on a new connection (a NOMEM in a frame's body also closes this one)
            c.close()
            c = None
    if c is not None:
        c.close()
    return outcomes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    args = ap.parse_args()
    tap = Tap()
    os.environ.pop(ENV, None)
    clean = Daemon(args.daemon, backend='cpu')
    with clean.client() as c:
        reference = [job(c) for _, job in JOBS]
    clean.stop()

    problems = []
    tally = {'result': 0, 'nomem': 0, 'closed': 0}
    last_n = 0
    for n in range(1, MAX_N + 1):
        os.environ[ENV] = str(n)
        try:
            d = Daemon(args.daemon, backend='cpu')
        finally:
            del os.environ[ENV]
        try:
            outcomes = run_sequence(d, reference)
            injected = INJECTED in d.log()
            failed = [line.split('(')[1].split(')')[0] for line in d.log().splitlines() if INJECTED in line]
            print('# N=%d: %s%s' % (n, ' '.join(outcomes), ' (allocation of %s)' % failed[0] if failed else ''), flush=True)
            for o in outcomes:
                if o in tally:
                    tally[o] += 1
                else:
                    problems.append('N=%d: %s' % (n, o))
            if d.proc.poll() is not None:
                problems.append('N=%d: the daemon exited (%s)' % (n, d.proc.returncode))
            elif not injected:
                d.stop()   # N is past the job path: this run had no failure to recover from
            else:
                with d.client() as c:
                    for (name, job), ref in zip(JOBS, reference):
                        try:
                            if not np.array_equal(job(c), ref):
                                problems.append('N=%d: afterwards %s is wrong' % (n, name))
                        except v.VkresampleError as e:
                            problems.append('N=%d: afterwards %s failed: %s' % (n, name, e))
                d.stop()
        except Exception as e:  # noqa: BLE001  (a failed stop: exit status, leak report)
            problems.append('N=%d: %s' % (n, str(e)[:600]))
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            injected = True
        if not injected:
            last_n = n
            break
    tap.check(0 < last_n < MAX_N, 'the job path makes %d allocations through the replaceable allocator; each one failed in turn'
              % (last_n - 1))
    tap.check(not problems, 'every failure ended in a correct RESULT, a clean VKR_E_NOMEM or a closed connection; the daemon stayed '
              'up, served the whole sequence correctly afterwards and exited 0 (%s)' % (problems[:3],))
    tap.check(tally['nomem'] > 0 and tally['closed'] > 0, 'both ends were seen: %(nomem)d VKR_E_NOMEM errors, %(closed)d closed '
              'connections, %(result)d jobs untouched by their run\'s failure' % tally)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
