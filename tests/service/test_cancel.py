#!/usr/bin/python3
"""CANCEL of a running job whose output goes into the client's memfd (issue 11, "Cancel keeps
writing"), against a real vkresampled with --workers 1: a bicubic grid_sample of 16 planes into a
64 MiB output memfd (input and grid in a memfd too) is cancelled while it runs, then

  (a) once the VKR_E_CANCELLED reply is read, the output memfd (filled with a sentinel before the
      job) is snapshot, and it is still the same after waiting as long as the whole job takes:
      nothing of the cancelled job writes it after the answer;
  (b) a second job into the same memfd (the Python module's out=) gets RESULT, equals torch, and
      still equals torch after the same wait;
  (c) the worker is freed early: a small job sent right after the CANCEL is answered well before
      the cancelled job would have finished (times are compared as ratios to the same job's
      uncancelled run in this very daemon, never as absolute times).

The figures (bytes written after the answer, when the small job was answered) are printed as
TAP comments.  On Vulkan, VKR_VULKAN_MAX_BINDING_BYTES splits the job into many chunks, hence
several submissions (the boundary where a Vulkan job can stop); it runs once with the output
imported (the device writes the client's memory itself) and once with staging copies.

usage: test_cancel.py DAEMON [--backend cpu|vulkan]     (TAP output)"""
import argparse
import os
import sys
import threading
import time

import numpy as np

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, check_stopped, error_of, memfd, running_daemon, vkresample as v  # noqa: E402

SHAPE = (1, 16, 512, 512)
SIZE = (1024, 1024)
GRID_SHAPE = (1,) + SIZE + (2,)
OUT_SHAPE = SHAPE[:2] + SIZE                     # 16.8M floats, 64 MiB
SENTINEL = np.frombuffer(b'\xde\xc0\xad\x7f', '<f4')[0]   # a NaN no kernel produces


def submit_body(x_bytes, backend):
    """grid_sample bicubic, input and grid in one memfd, the output into the client's memfd (fd 1)."""
    return v.pack_grid_body(v.OP_GRID_SAMPLE, [SHAPE, GRID_SHAPE], [], mode='bicubic', padding_mode='border', align_corners=False,
                            backend=backend, memfds=[(0, 0), (0, x_bytes)], result_storage=v.RESULT_INTO_FD)


def running(watch):
    return watch.stats()['running'] >= 1


def run_case(tap, args, label, extra_env):
    env_saved = {k: os.environ.get(k) for k in extra_env}
    os.environ.update(extra_env)
    try:
        with running_daemon(args.daemon, backend=args.backend, extra=('--workers', '1')) as d:
            _run(tap, args, label, d)
            check_stopped(tap, d, '%s: daemon stopped cleanly' % label)
    finally:
        for k, val in env_saved.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = val


def _run(tap, args, label, d):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, GRID_SHAPE).astype(np.float32)
    want = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode='bicubic', padding_mode='border',
                                           align_corners=False).numpy()
    fx = memfd(x.tobytes() + grid.tobytes())
    out = v.memfd_tensor(OUT_SHAPE)
    flat = out.array.reshape(-1)
    c, other, watch = d.client(), d.client(), d.client()
    small = rng.standard_normal((1, 3, 40, 40)).astype(np.float32)
    small_want = torch.nn.functional.interpolate(torch.from_numpy(small), scale_factor=2.0, mode='nearest').numpy()
    body = submit_body(x.nbytes, args.backend)

    def submit(rid):
        c.send_raw(v.pack_header(v.MSG_SUBMIT, rid, len(body), n_fds=2) + body, [fx, out.fileno()])

    # the uncancelled job: how long it takes here, now
    flat[:] = SENTINEL
    t0 = time.monotonic()
    submit(1)
    f = c.recv_frame(max_body=1 << 20)
    alone = time.monotonic() - t0
    ok = f is not None and f.type == v.MSG_RESULT and np.array_equal(out.array, want)
    tap.check(ok, '%s: the job alone: RESULT equal to torch in %.3f s (%s)' % (label, alone, error_of(f) or 'result'))

    # the cancelled job: CANCEL once it has run 40% of its time
    flat[:] = SENTINEL
    t0 = time.monotonic()
    submit(2)
    started = wait_running(watch)
    time.sleep(max(0.0, 0.4 * alone - (time.monotonic() - t0)))
    t_cancel = time.monotonic()
    c.send_raw(v.pack_header(v.MSG_CANCEL, 2, 0))
    # (c) a small job right behind it, on another connection (one worker: it waits for that worker)
    small_reply = {}

    def small_job():
        y = other.interpolate(small, scale_factor=2.0, mode='nearest', backend=args.backend)
        small_reply['t'] = time.monotonic()
        small_reply['ok'] = np.array_equal(y, small_want)

    th = threading.Thread(target=small_job)
    th.start()
    f = c.recv_frame(max_body=1 << 20)
    t_answer = time.monotonic()
    snap = flat.copy()
    err = error_of(f)
    tap.check(started and err is not None and err[0] == v.VKR_E_CANCELLED,
              '%s: CANCEL of the running job: VKR_E_CANCELLED %.3f s after the CANCEL (%s)' % (label, t_answer - t_cancel, err))
    th.join()
    wait = max(1.0, 1.5 * alone)
    time.sleep(wait)
    later = flat.copy()
    changed = int(np.count_nonzero(later.view(np.uint32) != snap.view(np.uint32)))
    written = int(np.count_nonzero(snap.view(np.uint32) != SENTINEL.view(np.uint32)))
    print('# %s: at the CANCELLED reply %d of %d floats were written; %d floats (%d bytes) changed in the %.1f s after it'
          % (label, written, flat.size, changed, 4 * changed, wait), flush=True)
    tap.check(changed == 0, '%s: (a) nothing of the cancelled job is written after its VKR_E_CANCELLED: %d bytes changed in %.1f s'
              % (label, 4 * changed, wait))
    remaining = alone - (t_cancel - t0)
    freed = small_reply.get('t', float('inf')) - t_cancel
    print('# %s: the job alone took %.3f s; cancelled %.3f s in (%.3f s were left); the small job behind it was answered %.3f s '
          'after the CANCEL (%.0f%% of what was left)' % (label, alone, t_cancel - t0, remaining, freed, 100 * freed / remaining),
          flush=True)
    tap.check(small_reply.get('ok', False) and freed < 0.5 * remaining,
              '%s: (c) the worker is freed early: the next job answered %.3f s after the CANCEL, less than half of the %.3f s the '
              'cancelled job had left' % (label, freed, remaining))

    # (b) a second job into the same memfd, through the module's out=
    flat[:] = SENTINEL
    y = c.grid_sample(x, grid, mode='bicubic', padding_mode='border', align_corners=False, backend=args.backend, out=out)
    first = np.array_equal(y, want)
    time.sleep(wait)
    still = np.array_equal(out.array, want)
    tap.check(first and still, '%s: (b) the next job into the same memfd equals torch at its RESULT (%s) and %.1f s later (%s)'
              % (label, first, wait, still))
    st = watch.stats()
    tap.check(st['jobs_cancelled'] == 1 and st['running'] == 0 and st['queued'] == 0,
              '%s: stats: %d job cancelled, nothing left running or queued' % (label, st['jobs_cancelled']))
    for cl in (c, other, watch):
        cl.close()
    out.close()
    os.close(fx)


def wait_running(watch):
    for _ in range(100000):
        if running(watch):
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu', 'vulkan'))
    args = ap.parse_args()
    tap = Tap()
    if args.backend == 'cpu':
        run_case(tap, args, 'cpu', {})
    else:
        # a 64 KiB input plane (one binding holds a whole one) and 256 KiB per binding: the
        # output points of each plane in 32 chunks, the job in 8 submissions
        global SHAPE, OUT_SHAPE
        SHAPE = (1, 16, 128, 128)
        OUT_SHAPE = SHAPE[:2] + SIZE
        # 256 KiB per binding: each 1 MiB output plane in several chunks, the job in several submissions
        split = {'VKR_VULKAN_MAX_BINDING_BYTES': str(256 << 10)}
        run_case(tap, args, 'vulkan, output imported', split)
        run_case(tap, args, 'vulkan, staging copies', dict(split, VKR_VULKAN_NO_HOST_IMPORT='1'))
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
