#!/usr/bin/python3
"""Tensors over one storage-buffer binding (maxStorageBufferRange: 128 MiB on lavapipe) through a
real daemon: the Vulkan backend against the CPU backend, both in one daemon (`backend='vulkan'`
and `backend='cpu'` per job), bit for bit.

Owns the end-to-end check of the Vulkan backend's splitting: a single N*C plane whose input and
output are each over 128 MiB (bilinear, bicubic, antialias and area: the plane is cut along its
outermost axis, each range bound with just the source rows it reads), many planes that together
are over it (whole planes per chunk), area windows of millions of elements (summed over several
dispatches: llvmpipe ends any shader loop after 65535 iterations), and area's global mean of a
plane over 128 MiB (two bindings; on llvmpipe refused as too large, since its one-invocation
cascade sum would run past that loop limit; the same job with backend 'auto' is then answered by
the CPU backend).  The daemon runs with -v so that its per-job debug
line shows which jobs split planes.  Reports each job's time, the daemon's and this process's
peak RSS (must stay under 3 GiB together) and the total runtime (a figure, not a check:
speed belongs to the benchmark, and a shared CI machine makes any bound flaky).

usage: test_large_tensors.py DAEMON [--validation]"""
import argparse
import os
import re
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, built_with_asan, running_daemon, vkresample  # noqa: E402

BINDING = 128 << 20             # lavapipe's maxStorageBufferRange
RSS_LIMIT = 3 << 30


def peak_rss(pid):
    """VmHWM of a live process, in bytes."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--validation', action='store_true')
    args = ap.parse_args()
    t_start = time.monotonic()
    tap = Tap()
    rng = np.random.default_rng(20261121)
    big = rng.standard_normal((1, 1, 6000, 6000), dtype=np.float32)       # one plane of 144 MB
    big.reshape(-1)[rng.choice(big.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    many = rng.standard_normal((6, 4, 1024, 1400), dtype=np.float32)      # 24 planes, 138 MB
    jobs = [
        ('one plane, bilinear x1.05', big, dict(mode='bilinear', scale_factor=1.05, align_corners=False), True),
        ('one plane, bicubic to 6300x6100', big, dict(mode='bicubic', size=(6300, 6100), align_corners=True), True),
        ('one plane, bicubic antialias x0.37', big, dict(mode='bicubic', scale_factor=0.37, antialias=True), True),
        ('one plane, area to 3x2 (windows of 6*10^6)', big, dict(mode='area', size=(3, 2)), True),
        ('one plane, area mean (cascade sum)', big, dict(mode='area', size=1), True),
        ('24 planes, bilinear antialias x0.5', many, dict(mode='bilinear', scale_factor=0.5, antialias=True), False),
        ('24 planes, nearest-exact x1.1', many, dict(mode='nearest-exact', scale_factor=1.1), False),
    ]
    with running_daemon(args.daemon, backend='vulkan', validation=args.validation, extra=('-v',)) as daemon:
        llvmpipe = False
        with daemon.client() as client:
            info = client.ping()
            llvmpipe = info['device'].startswith('llvmpipe')
            tap.check(set(info['backends']) >= {'vulkan', 'cpu'}, 'daemon serves vulkan and cpu (%s, device %s)'
                      % (info['backends'], info['device']))
            for what, x, kw, one_plane in jobs:
                assert x.nbytes > BINDING
                mean = kw.get('size') == 1
                t0 = time.monotonic()
                try:
                    got = client.interpolate(x, backend='vulkan', **kw)
                except vkresample.VkresampleError as e:
                    refused_ok = mean and llvmpipe and e.code == vkresample.VKR_E_TOO_LARGE and 'loop' in e.message
                    tap.check(refused_ok, '%s %s: vulkan refused: %s%s' % (
                        what, list(x.shape), e, ' (expected on llvmpipe)' if refused_ok else ''))
                    # the same job asked with 'auto' is answered, by the CPU backend, bit-exact
                    got = client.interpolate(x, backend='auto', **kw)
                    ran_on = client.last_backend
                    want = client.interpolate(x, backend='cpu', **kw)
                    same = np.array_equal(got.view(np.uint32), want.view(np.uint32))
                    tap.check(ran_on == 'cpu' and same, "%s with backend 'auto': answered by %s, %s" % (
                        what, ran_on, 'bit-exact' if same else 'DIFFERENT'))
                    continue
                t1 = time.monotonic()
                ran_on = client.last_backend
                want = client.interpolate(x, backend='cpu', **kw)
                t2 = time.monotonic()
                same = got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
                tap.check(ran_on == 'vulkan' and same,
                          '%s: %s -> %s (%.0f MB -> %.0f MB%s): %s; vulkan %.2f s, cpu %.2f s' % (
                              what, list(x.shape), list(got.shape), x.nbytes / 1e6, got.nbytes / 1e6,
                              ', one plane' if one_plane else '', 'bit-exact' if same else
                              'ran on %s, %d of %d elements differ' % (ran_on, int(np.sum(got.view(np.uint32) != want.view(np.uint32)))
                                                                    if got.shape == want.shape else -1, want.size),
                              t1 - t0, t2 - t1))
                del got, want
        daemon_rss = peak_rss(daemon.proc.pid)
        asan = built_with_asan(daemon.proc.pid)   # ASan's shadow and quarantine are not the product's memory
        log = daemon.stop()
    # Every single-plane job that ran on Vulkan split its plane (the daemon's debug line; the
    # warm-up jobs at start-up are there too, and split nothing).
    lines = re.findall(r'vulkan: (\S+) job: passes (\d+), splitting planes (\d+), steps (\d+)', log)
    split = sum(1 for _, _, s, _ in lines if int(s) > 0)
    stepped = sum(1 for _, p, _, st in lines if int(st) > int(p))
    want_split = sum(1 for _, _, _, one_plane in jobs if one_plane) - (1 if llvmpipe else 0)
    tap.check(split == want_split and (stepped >= 1 or not llvmpipe),
              'daemon log: %d vulkan jobs, %d split planes (expected %d), %d summed in steps' % (
                  len(lines), split, want_split, stepped))
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tap.check(asan or daemon_rss + own_rss < RSS_LIMIT, 'peak RSS: daemon %.0f MB + test %.0f MB < %.0f MB%s' % (
        daemon_rss / 1e6, own_rss / 1e6, RSS_LIMIT / 1e6, ' (not bounded: the daemon runs under AddressSanitizer)' if asan else ''))
    elapsed = time.monotonic() - t_start
    print('# runtime %.1f s' % elapsed)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
