#!/usr/bin/python3
"""The Python module's default path for large tensors (issue 18): a Client(sock) with no options
sends tensors of 1 MiB or more through its per-connection pool of sealed, pre-faulted memfds, and
returns results that view their pooled buffer.  Against a real vkresampled (CPU backend):

- transport: a large job goes by the pool both ways (last_transport), a small one inline; the
  result views a pooled memfd (its base is the pool's lease), is writable, and is bit for bit
  torch's (ATEN_CPU_CAPABILITY=default), for interpolate and grid_sample, a non-contiguous
  big-endian input included.
- no aliasing: 20 results kept alive while 50 more jobs of the same size run: every one of the
  20 still equals its torch reference, and the 20 + 1 live buffers are distinct.
- reuse: dropping results gives their buffers back (leased count back down, free count bounded),
  and repeated same-size jobs create no new memfd (created count stable).
- bounded: 2,000 default-path jobs (results dropped, or kept for one iteration): the RSS of this
  process and of the daemon, and this process's descriptors, stay flat after a warm-up (growth
  under 32 MiB and 0 descriptors).
- fork: a child of a process with a pooled Client and live pooled results gets a pool of its own;
  while the parent holds results in the buffers that were free at fork(), the child runs jobs of
  the same size: the child's results are right, and the parent's live arrays (those from before
  the fork and those taken after it) are untouched.  And the other way: a result alive at fork()
  that the parent then drops is not reused by the parent's next jobs while the child still holds
  its copy (the child's copy stays equal to its reference).

usage: test_python_pool.py DAEMON [--backend cpu]     (TAP output)"""
import argparse
import gc
import os
import sys

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'support'))
from vkr_testlib import built_with_asan, check_stopped, Tap, rss_kib, running_daemon, vkresample as v  # noqa: E402

torch.set_num_threads(1)      # no OpenMP pool in the parent: the forked child can use torch
SHAPE = (1, 4, 256, 256)      # 1 MiB in: exactly the default threshold
KW = {'scale_factor': 2, 'mode': 'bilinear', 'align_corners': False}   # 4 MiB out
RSS_JOBS = 2000
RSS_LIMIT_KIB = 32 * 1024


def ref_of(x, **kw):
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), **kw).numpy()


def self_fds():
    return len(os.listdir('/proc/self/fd'))


class ForkedChild:
    """fork() now; the child waits until release_and_wait(), then runs body() -> str and sends
    it back through a pipe.  release_and_wait() returns (exit status, the string)."""

    def __init__(self, body):
        go_r, self._go_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            status = 1
            try:
                os.close(self._go_w)
                os.close(self._res_r)
                os.read(go_r, 1)
                os.write(res_w, body().encode()[:4000])
                status = 0
            finally:
                os._exit(status)
        os.close(go_r)
        os.close(res_w)

    def release_and_wait(self):
        os.write(self._go_w, b'g')
        os.close(self._go_w)
        msg = os.read(self._res_r, 4000).decode()
        os.close(self._res_r)
        _, status = os.waitpid(self.pid, 0)
        return status, msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu',))
    args = ap.parse_args()
    tap = Tap()
    rng = np.random.default_rng(18)
    with running_daemon(args.daemon, backend='cpu') as d:
        c = v.Client(d.socket)
        # ------------------------------------------------------------ transport and results
        x = rng.uniform(-1, 1, SHAPE).astype(np.float32)
        y = c.interpolate(x, backend='cpu', **KW)
        ref = ref_of(x, **KW)
        tap.check(c.last_transport == {'input': 'pool', 'output': 'pool'}
                  and isinstance(v._mapping_of(y), v._Lease) and y.flags.writeable and y.dtype == np.float32
                  and np.array_equal(y, ref),
                  'the default Client: a 1 MiB input and its 4 MiB output go by the pool (%s), the result views its pooled '
                  'memfd and equals torch bit for bit' % c.last_transport)
        small = rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
        ys = c.interpolate(small, backend='cpu', **KW)
        tap.check(c.last_transport == {'input': 'inline', 'output': 'inline'} and v._mapping_of(ys) is None
                  and np.array_equal(ys, ref_of(small, **KW)),
                  'a 12 KiB job goes inline both ways and equals torch (%s)' % c.last_transport)
        xb = rng.uniform(-1, 1, (1, 4, 512, 300)).astype('>f4')[:, :, ::2, :]     # big-endian, strided
        yb = c.interpolate(xb, size=(300, 200), mode='bicubic', align_corners=True, backend='cpu')
        tap.check(c.last_transport == {'input': 'pool', 'output': 'inline'}
                  and np.array_equal(yb, ref_of(xb, size=(300, 200), mode='bicubic', align_corners=True)),
                  'a strided big-endian 1.2 MiB input is copied once into the pool: the result equals torch')
        g = rng.uniform(-1.1, 1.1, (2, 256, 256, 2)).astype(np.float32)
        xg = rng.uniform(-1, 1, (2, 4, 128, 128)).astype(np.float32)
        yg = c.grid_sample(xg, g, mode='bilinear', padding_mode='reflection', align_corners=False, backend='cpu')
        gref = F.grid_sample(torch.from_numpy(xg), torch.from_numpy(g), mode='bilinear', padding_mode='reflection',
                             align_corners=False).numpy()
        tap.check(c.last_transport == {'input': 'inline', 'grid': 'pool', 'output': 'pool'} and np.array_equal(yg, gref),
                  'grid_sample: the 1 MiB grid and 2 MiB output by the pool, the 512 KiB input inline; equals torch (%s)'
                  % c.last_transport)
        chained = c.interpolate(y, size=(256, 256), mode='area', backend='cpu')
        tap.check(c.last_transport['input'] == 'memfd' and np.array_equal(chained, ref_of(ref, size=(256, 256), mode='area')),
                  'a pooled result passed back as an input travels by its memfd, no copy (%s)' % c.last_transport)
        del y, ys, yb, yg, chained
        gc.collect()

        # ------------------------------------------------------------ no aliasing of live results
        inputs = [rng.uniform(-1, 1, SHAPE).astype(np.float32) for _ in range(20)]
        refs = [ref_of(xi, **KW) for xi in inputs]
        kept = [c.interpolate(xi, backend='cpu', **KW) for xi in inputs]
        first_right = sum(np.array_equal(k, r) for k, r in zip(kept, refs))
        later_right = 0
        addrs = set()
        for j in range(50):
            xj = rng.uniform(-1, 1, SHAPE).astype(np.float32)
            yj = c.interpolate(xj, backend='cpu', **KW)
            later_right += np.array_equal(yj, ref_of(xj, **KW))
            addrs.add(yj.__array_interface__['data'][0])
        still = sum(np.array_equal(k, r) for k, r in zip(kept, refs))
        kept_addrs = {k.__array_interface__['data'][0] for k in kept}
        tap.check(first_right == 20 and later_right == 50 and still == 20 and not addrs & kept_addrs
                  and len(kept_addrs) == 20,
                  '20 results kept alive while 50 more jobs of the same size ran: %d/20 right at first, %d/50 later jobs right, '
                  '%d/20 kept results still equal their references, later jobs never used a kept buffer (%d distinct)'
                  % (first_right, later_right, still, len(kept_addrs)))
        st_live = c.pool_stats()      # the 20 kept and the last later job's
        del kept, yj
        gc.collect()
        st_after = c.pool_stats()
        tap.check(st_live['leased'] == 21 and st_after['leased'] == 0 and st_after['free'] <= v.POOL_MAX_BUFFERS
                  and st_after['free_bytes'] <= v.POOL_MAX_BYTES,
                  'del of the 20 results gives their buffers back: leased %d -> %d, %d free buffers kept (%d bytes, bounds %d / %d)'
                  % (st_live['leased'], st_after['leased'], st_after['free'], st_after['free_bytes'], v.POOL_MAX_BUFFERS,
                     v.POOL_MAX_BYTES))
        created = c.pool_stats()['created']
        for j in range(30):
            yj = c.interpolate(inputs[j % 20], backend='cpu', **KW)
        del yj
        gc.collect()
        st = c.pool_stats()
        tap.check(st['created'] == created and st['leased'] == 0,
                  '30 more same-size jobs made no new memfd (created %d -> %d): the pool reuses its buffers'
                  % (created, st['created']))

        # ------------------------------------------------------------ RSS and descriptors flat
        def one(j, keep):
            yj = c.interpolate(inputs[j % 20], backend='cpu', **KW)
            if j % 97 == 0 and not np.array_equal(yj, refs[j % 20]):
                raise AssertionError('job %d wrong' % j)
            return yj if j % 3 == 0 else keep     # sometimes kept for a few iterations

        keep = None
        for j in range(200):
            keep = one(j, keep)
        gc.collect()
        base_self, base_daemon, base_fds = rss_kib(os.getpid()), rss_kib(d.proc.pid), self_fds()
        wrong = None
        try:
            for j in range(RSS_JOBS):
                keep = one(j, keep)
        except AssertionError as e:
            wrong = str(e)
        del keep
        gc.collect()
        grow_self, grow_daemon = rss_kib(os.getpid()) - base_self, rss_kib(d.proc.pid) - base_daemon
        # under AddressSanitizer the daemon's RSS holds ASan's quarantine of freed memory: its
        # figure is printed, not bounded (the plain build and valgrind bound it)
        asan = built_with_asan(d.proc.pid)
        tap.check(wrong is None and grow_self < RSS_LIMIT_KIB and (asan or grow_daemon < RSS_LIMIT_KIB)
                  and self_fds() <= base_fds,
                  '%d default-path jobs (1 MiB in, 4 MiB out): client RSS %+d KiB, daemon RSS %+d KiB after warm-up (limit %d%s), '
                  'descriptors %d -> %d%s' % (RSS_JOBS, grow_self, grow_daemon, RSS_LIMIT_KIB,
                                              '; the daemon\'s not bounded under AddressSanitizer' if asan else '',
                                              base_fds, self_fds(), '; ' + wrong if wrong else ''))

        # ------------------------------------------------------------ fork
        before = [c.interpolate(inputs[k], backend='cpu', **KW) for k in range(3)]    # live across fork()
        spare = [c.interpolate(inputs[k], backend='cpu', **KW) for k in range(4)]
        del spare
        gc.collect()
        free_at_fork = c.pool_stats()['free']
        def child_first_jobs():
            # (the child's first call: its own connection and pool)
            st0 = c.pool_stats()
            right = 0
            kept_child = []
            for j in range(12):
                yj = c.interpolate(inputs[(j + 5) % 20], backend='cpu', **KW)
                right += np.array_equal(yj, refs[(j + 5) % 20])
                kept_child.append(yj)
            fresh = st0['free'] == st0['created'] == st0['leased'] == 0 and c.pool_stats()['created'] >= 1
            parents = sum(np.array_equal(b, refs[k]) for k, b in enumerate(before))
            return '%d %d %d' % (right, int(fresh), parents)
        child = ForkedChild(child_first_jobs)     # it waits until the parent holds its post-fork results
        after = [c.interpolate(inputs[10 + k], backend='cpu', **KW) for k in range(free_at_fork)]
        status, msg = child.release_and_wait()
        right, fresh, parents = (int(t) for t in msg.split()) if msg else (0, 0, 0)
        tap.check(status == 0 and right == 12 and fresh == 1 and parents == 3,
                  'forked child: %d/12 results right, its own pool (empty at first, then new memfds: %s), the parent\'s pre-fork results intact in '
                  'its view (%d/3)' % (right, bool(fresh), parents))
        intact_before = sum(np.array_equal(b, refs[k]) for k, b in enumerate(before))
        intact_after = sum(np.array_equal(a, refs[10 + k]) for k, a in enumerate(after))
        tap.check(intact_before == 3 and intact_after == free_at_fork,
                  'parent: its live results untouched by the child\'s jobs: %d/3 from before the fork, %d/%d taken after it '
                  'from the buffers free at fork()' % (intact_before, intact_after, free_at_fork))
        yp = c.interpolate(inputs[0], backend='cpu', **KW)
        tap.check(np.array_equal(yp, refs[0]) and c.last_transport == {'input': 'pool', 'output': 'pool'},
                  'parent: the pooled Client carries on after the child')
        # the parent drops a result the child still holds: the parent's next jobs must not reuse it
        held = c.interpolate(inputs[7], backend='cpu', **KW)
        child = ForkedChild(lambda: '1' if np.array_equal(held, refs[7]) else '0')
        del held                             # dropped by the parent, still held by the child
        gc.collect()
        more = [c.interpolate(inputs[12 + k], backend='cpu', **KW) for k in range(4)]
        more_right = sum(np.array_equal(m, refs[12 + k]) for k, m in enumerate(more))
        status, msg = child.release_and_wait()
        tap.check(status == 0 and msg == '1' and more_right == 4,
                  'a result alive at fork() and then dropped by the parent is not reused by its next %d jobs (all right: %d): '
                  'the child\'s copy still equals its reference (%s)' % (len(more), more_right, msg == '1'))
        del before, after, yp, more
        c.close()
        gc.collect()
        check_stopped(tap, d, 'daemon stopped cleanly')
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
