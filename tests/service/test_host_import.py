#!/usr/bin/python3
"""Memfd jobs on the Vulkan backend through VK_EXT_external_memory_host (lavapipe offers it):
every op with its tensors in memfds (at offsets that are not page-aligned, the output in the
daemon's memfd or the client's) gives the same bytes as the same job inline, and the daemon's
debug line says the memfd tensors were imported, not copied.  A job whose output shares a memfd
with its input stages the output; a job with an inline tensor stages that tensor and imports
the rest; tensors cut into many chunks over small bindings (bindings at offsets within an import)
are still right; and with VKR_VULKAN_NO_HOST_IMPORT=1 memfd jobs are staged and still right.
Persistent mappings (issue 5): the same memfd input and output memfd sent 20 times on one
connection are mapped and imported once, the import reused by the other 19 jobs, every output
identical to inline; when the client closes, the imports are released and the daemon's
descriptors and resident memory return to their baseline.  Validation on throughout.

usage: test_host_import.py DAEMON [--bench]     (TAP output; --bench: a 64 MiB job's time, the
first on a connection against the repeated ones)"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import (Tap, built_with_asan, exchange, memfd, open_fds, rss_kib, running_daemon,  # noqa: E402
                         vkresample as v, wait_until)


def read_fd(fd, nbytes, offset=0):
    import mmap
    with mmap.mmap(fd, offset + nbytes, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        return bytes(m[offset:offset + nbytes])


def result_of(f, out_fd, shape, nbytes):
    """The output of a RESULT frame (the daemon's memfd, or out_fd), or a string saying why not."""
    if f is None:
        return 'connection closed'
    if f.type != v.MSG_RESULT:
        return 'error %s' % (v.unpack_error(f.body),)
    res = v.unpack_result(f.body)
    if res['backend_used'] != 'vulkan':
        return 'ran on %s' % res['backend_used']
    if f.fds:
        data = read_fd(f.fds[0], nbytes)
        for fd in f.fds:
            os.close(fd)
    elif out_fd is not None:
        data = read_fd(out_fd, nbytes)
    else:
        data = bytes(f.body[v.RESULT_FIXED_BYTES:])
    return np.frombuffer(data, '<f4').reshape(shape)


def same(got, want):
    return isinstance(got, np.ndarray) and got.shape == want.shape and got.tobytes() == want.tobytes()


def new_log(d, mark):
    """The daemon's log after position mark, and the new mark."""
    log = d.log()
    return log[mark:], len(log)


class Jobs:
    def __init__(self, tap, d):
        self.tap, self.d, self.c, self.rid, self.mark = tap, d, d.client(), 1000, 0

    def send(self, body, fds):
        self.rid += 1
        return exchange(self.c, v.pack_header(v.MSG_SUBMIT, self.rid, len(body), n_fds=len(fds)) + body, fds)

    def lines(self):
        """The daemon's memfd-job debug lines since the last call."""
        # the job's line is logged before its reply is sent: a ping round trip is not needed
        text, self.mark = new_log(self.d, self.mark)
        return re.findall(r'vulkan: \S+ memfd job: .*', text)


def test_reuse(tap, daemon):
    """The same memfd input, and the same output memfd, 20 times on one connection."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 4, 256, 512)).astype(np.float32)   # 2 MiB in, 8 MiB out
    kw = dict(scale_factor=2.0, mode='bilinear', align_corners=False)
    with running_daemon(daemon, backend='vulkan', validation=True, extra=('-v',)) as d:
        pid = d.proc.pid
        with v.Client(d.socket, memfd_threshold=None) as c0:     # the reference inline (no memfd, no import)
            want = c0.interpolate(x, backend='vulkan', **kw)
        wait_until(lambda: d.log().count('client 1: gone') == 1, 10)
        base_fds, base_rss = open_fds(pid), rss_kib(pid)
        j = Jobs(tap, d)
        j.lines()
        fx = memfd(x.tobytes())
        fout = memfd(size=want.nbytes)
        body = v.pack_submit_body(x.shape, b'', backend='vulkan', storage=v.STORAGE_MEMFD, fd_index=0, data_offset=0,
                                  data_bytes=x.nbytes, result_storage=v.RESULT_INTO_FD, **kw)
        results, lines = [], []
        for _ in range(20):
            os.pwrite(fout, b'\xff' * 64, 0)   # the output is really written each time
            results.append(same(result_of(j.send(body, [fx, fout]), fout, want.shape, want.nbytes), want))
            lines += j.lines()
        held_rss = rss_kib(pid)
        tap.check(all(results), '20 jobs from one memfd input into one output memfd: every output identical to inline')
        tap.check(len(lines) == 20 and 'input imported (new), output imported (new) (zero-copy)' in lines[0] and
                  all('input imported (reused), output imported (reused) (zero-copy)' in ln for ln in lines[1:]),
                  'the first job imports both tensors, the other 19 reuse both imports (%s ... %s)' % (lines[:1], lines[-1:]))
        log = d.log()
        tap.check(log.count('memfd mapping of') - log.count('unmapped') == 38,
                  'the connection mapped each memfd once and reused the mapping 19 times each')
        j.c.close()
        os.close(fx)
        os.close(fout)
        back = wait_until(lambda: open_fds(pid) <= base_fds and 'released the import of the mapping' in d.log(), 20)
        rss_back = built_with_asan(pid) or wait_until(lambda: rss_kib(pid) <= base_rss + 4096, 20)
        tap.check(back and rss_back and d.log().count('released the import of the mapping') == 2,
                  'client closed: both imports released, descriptors %d (baseline %d), resident memory %d KiB (baseline %d, %d KiB '
                  'while the mappings were held)' % (open_fds(pid), base_fds, rss_kib(pid), base_rss, held_rss))
        log = d.stop()
        m = re.search(r'(\d+) imports made, (\d+) reused', log)
        tap.check(m is not None and (int(m.group(1)), int(m.group(2))) == (2, 38),
                  'the exit summary: 2 imports made, 38 reused (%s)' % (m.group(0) if m else None))


def bench_reuse(daemon, runs=10):
    """A 64 MiB nearest job (same size) from a memfd into an output memfd: the first job on a
    connection (map + import) against the repeated ones (mapping and import reused)."""
    import time
    x = np.random.default_rng(5).standard_normal((1, 16, 1024, 1024)).astype(np.float32)
    kw = dict(size=(1024, 1024), mode='nearest')
    with running_daemon(daemon, backend='vulkan') as d:
        firsts, repeats = [], []
        for _ in range(3):
            c = d.client()
            fx = memfd(x.tobytes())
            fout = memfd(size=x.nbytes)
            body = v.pack_submit_body(x.shape, b'', backend='vulkan', storage=v.STORAGE_MEMFD, fd_index=0, data_offset=0,
                                      data_bytes=x.nbytes, result_storage=v.RESULT_INTO_FD, **kw)
            times = []
            for k in range(runs):
                t0 = time.monotonic()
                f = exchange(c, v.pack_header(v.MSG_SUBMIT, k + 1, len(body), n_fds=2) + body, [fx, fout])
                times.append(time.monotonic() - t0)
                assert f is not None and f.type == v.MSG_RESULT, f
            firsts.append(times[0])
            repeats += times[1:]
            c.close()
            os.close(fx)
            os.close(fout)
        d.stop()
    import statistics
    print('# 64 MiB memfd job (nearest, same size, lavapipe): first on a connection median %.1f ms (%s), repeated median %.1f ms '
          '(%d jobs)' % (1e3 * statistics.median(firsts), ', '.join('%.1f' % (1e3 * t) for t in firsts),
                         1e3 * statistics.median(repeats), len(repeats)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--bench', action='store_true')
    args = ap.parse_args()
    tap = Tap()
    if args.bench:
        bench_reuse(args.daemon)
        return 0
    test_reuse(tap, args.daemon)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 37, 45)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (2, 30, 20, 2)).astype(np.float32)
    theta = np.array([[[0.9, 0.2, 0.05], [-0.1, 1.1, -0.03]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], np.float32)
    pad = 1000   # tensors start 4000 bytes into their memfds: not page-aligned

    with running_daemon(args.daemon, backend='vulkan', validation=True, extra=('-v',)) as d:
        j = Jobs(tap, d)
        c = j.c
        j.lines()

        # interpolate: input memfd at an offset, output in the daemon's memfd
        want = c.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=True, backend='vulkan')
        fx = memfd(b'\0' * 4 * pad + x.tobytes())
        body = v.pack_submit_body(x.shape, b'', mode='bilinear', scale_factor=1.5, align_corners=True, backend='vulkan',
                                  storage=v.STORAGE_MEMFD, fd_index=0, data_offset=4 * pad, data_bytes=x.nbytes,
                                  result_storage=v.RESULT_DAEMON_FD)
        got = result_of(j.send(body, [fx]), None, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want), 'interpolate, input memfd at offset %d, daemon output memfd: identical to inline' % (4 * pad))
        tap.check(len(lines) == 1 and 'input imported (new), output imported (new) (zero-copy)' in lines[0],
                  'the debug line says both tensors were imported: %s' % lines)

        # the same memfd again, output into the client's memfd (a fresh mapping: imported again)
        fout = memfd(size=want.nbytes)
        body = v.pack_submit_body(x.shape, b'', mode='bilinear', scale_factor=1.5, align_corners=True, backend='vulkan',
                                  storage=v.STORAGE_MEMFD, fd_index=0, data_offset=4 * pad, data_bytes=x.nbytes,
                                  result_storage=v.RESULT_INTO_FD)
        got = result_of(j.send(body, [fx, fout]), fout, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want) and len(lines) == 1 and '(zero-copy)' in lines[0],
                  'interpolate into the client\'s output memfd: identical, zero-copy (%s)' % lines)
        os.close(fout)

        # every interpolate family once (area and antialias run several passes / steps)
        for kw in (dict(size=(20, 70), mode='nearest'), dict(scale_factor=0.4, mode='area'),
                   dict(size=(19, 23), mode='bicubic', align_corners=False, antialias=True),
                   dict(size=(50, 31), mode='bicubic', align_corners=True)):
            want = c.interpolate(x, backend='vulkan', **kw)
            body = v.pack_submit_body(x.shape, b'', backend='vulkan', storage=v.STORAGE_MEMFD, fd_index=0, data_offset=4 * pad,
                                      data_bytes=x.nbytes, result_storage=v.RESULT_DAEMON_FD, **kw)
            got = result_of(j.send(body, [fx]), None, want.shape, want.nbytes)
            lines = j.lines()
            tap.check(same(got, want) and len(lines) == 1 and '(zero-copy)' in lines[0],
                      'interpolate %s from a memfd: identical to inline, zero-copy (%s)' % (kw, lines))

        # grid_sample: input and grid in one memfd, output into the client's memfd
        want = c.grid_sample(x, grid, mode='bicubic', padding_mode='reflection', align_corners=False, backend='vulkan')
        fin = memfd(b'\0' * 4 * pad + x.tobytes() + grid.tobytes())
        fout = memfd(size=want.nbytes)
        body = v.pack_grid_body(v.OP_GRID_SAMPLE, [x.shape, grid.shape], [], mode='bicubic', padding_mode='reflection',
                                align_corners=False, backend='vulkan', memfds=[(0, 4 * pad), (0, 4 * pad + x.nbytes)],
                                result_storage=v.RESULT_INTO_FD)
        got = result_of(j.send(body, [fin, fout]), fout, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want), 'grid_sample with input and grid in one memfd: identical to inline')
        tap.check(len(lines) == 1 and 'input imported' in lines[0] and 'grid imported' in lines[0] and '(zero-copy)' in lines[0],
                  'grid_sample: input, grid and output imported (%s)' % lines)
        os.close(fout)

        # affine_sample: theta in the memfd too; affine_grid: theta in a memfd, output in the daemon's
        want = c.affine_sample(x, theta, (25, 33), mode='bilinear', padding_mode='border', align_corners=True, backend='vulkan')
        ft = memfd(b'\0' * 4 * pad + x.tobytes() + theta.tobytes())
        body = v.pack_grid_body(v.OP_AFFINE_SAMPLE, [x.shape, theta.shape], [], mode='bilinear', padding_mode='border',
                                align_corners=True, size=(25, 33), backend='vulkan', memfds=[(0, 4 * pad), (0, 4 * pad + x.nbytes)],
                                result_storage=v.RESULT_DAEMON_FD)
        got = result_of(j.send(body, [ft]), None, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want) and len(lines) == 1 and '(zero-copy)' in lines[0],
                  'affine_sample from a memfd: identical to inline, zero-copy (%s)' % lines)
        want = c.affine_grid(theta, (2, 3, 40, 24), align_corners=False, backend='vulkan')
        body = v.pack_grid_body(v.OP_AFFINE_GRID, [theta.shape], [], size=(2, 3, 40, 24), align_corners=False, backend='vulkan',
                                memfds=[(0, 4 * pad + x.nbytes)], result_storage=v.RESULT_DAEMON_FD)
        got = result_of(j.send(body, [ft]), None, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want) and len(lines) == 1 and 'output imported' in lines[0],
                  'affine_grid with theta in a memfd: identical to inline, output imported (%s)' % lines)
        os.close(ft)

        # an inline output: the server passes its pointer, the memfd input stays imported (the
        # connection kept its mapping: the import is reused) and only the output is staged
        want = c.interpolate(x, size=(9, 11), mode='bilinear', align_corners=False, backend='vulkan')
        body = v.pack_submit_body(x.shape, b'', mode='bilinear', size=(9, 11), align_corners=False, backend='vulkan',
                                  storage=v.STORAGE_MEMFD, fd_index=0, data_offset=4 * pad, data_bytes=x.nbytes)
        got = result_of(j.send(body, [fx]), None, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want) and len(lines) == 1 and 'input imported (reused), output inline (staged) (partly zero-copy)' in lines[0],
                  'memfd input, inline output: identical to inline, input import reused, output staged (%s)' % lines)

        # the output memfd is the input's memfd: written in place it could overwrite unread input
        want = c.interpolate(x, scale_factor=2.0, mode='nearest', backend='vulkan')
        shared = memfd(size=want.nbytes + x.nbytes)
        os.pwrite(shared, x.tobytes(), want.nbytes)
        body = v.pack_submit_body(x.shape, b'', mode='nearest', scale_factor=2.0, backend='vulkan', storage=v.STORAGE_MEMFD,
                                  fd_index=0, data_offset=want.nbytes, data_bytes=x.nbytes, result_storage=v.RESULT_INTO_FD)
        got = result_of(j.send(body, [shared, shared]), shared, want.shape, want.nbytes)
        lines = j.lines()
        tap.check(same(got, want) and len(lines) == 1 and 'output staged (its memfd holds an input too)' in lines[0],
                  'output memfd == input memfd: identical to inline, output staged (%s)' % lines)
        os.close(shared)
        os.close(fx)
        os.close(fin)
        c.close()
        d.stop()
        log = d.log()
        m = re.search(r'vulkan: memfd jobs: (\d+) zero-copy, (\d+) partly imported, (\d+) staged; (\d+) imports made', log)
        tap.check(m is not None and int(m.group(1)) == 9 and int(m.group(3)) == 0 and int(m.group(2)) == 2,
                  'the summary at exit counts them (%s)' % (m.group(0) if m else None))

    # many chunks over small bindings: every binding at an offset within the imports
    env = dict(VKR_VULKAN_MAX_BINDING_BYTES='16384', VKR_VULKAN_MAX_GROUP_COUNT='7', VKR_VULKAN_MAX_LOOP_ITERATIONS='50')
    os.environ.update(env)
    try:
        with running_daemon(args.daemon, backend='vulkan', validation=True, extra=('-v',)) as d:
            j = Jobs(tap, d)
            c = j.c
            big = rng.standard_normal((1, 4, 90, 70)).astype(np.float32)
            fx = memfd(b'\0' * 4 * pad + big.tobytes())
            for kw in (dict(size=(61, 97), mode='bilinear', align_corners=False), dict(scale_factor=0.3, mode='area'),
                       dict(size=(40, 33), mode='bilinear', antialias=True, align_corners=False)):
                want = c.interpolate(big, backend='vulkan', **kw)
                body = v.pack_submit_body(big.shape, b'', backend='vulkan', storage=v.STORAGE_MEMFD, fd_index=0, data_offset=4 * pad,
                                          data_bytes=big.nbytes, result_storage=v.RESULT_DAEMON_FD, **kw)
                got = result_of(j.send(body, [fx]), None, want.shape, want.nbytes)
                lines = j.lines()
                tap.check(same(got, want) and len(lines) == 1 and '(zero-copy)' in lines[0],
                          'split over 16 KiB bindings, %s from a memfd: identical to inline, zero-copy (%s)' % (kw, lines))
            # grid_sample binds whole input planes (here 12000 bytes); the grid and output split
            small = rng.standard_normal((1, 4, 50, 60)).astype(np.float32)
            g = rng.uniform(-1.2, 1.2, (1, 80, 60, 2)).astype(np.float32)
            want = c.grid_sample(small, g, mode='bilinear', padding_mode='zeros', align_corners=True, backend='vulkan')
            fs = memfd(b'\0' * 4 * pad + small.tobytes())
            fg = memfd(b'\0' * 4 * pad + g.tobytes())
            body = v.pack_grid_body(v.OP_GRID_SAMPLE, [small.shape, g.shape], [], mode='bilinear', padding_mode='zeros',
                                    align_corners=True, backend='vulkan', memfds=[(0, 4 * pad), (1, 4 * pad)],
                                    result_storage=v.RESULT_DAEMON_FD)
            got = result_of(j.send(body, [fs, fg]), None, want.shape, want.nbytes)
            os.close(fs)
            lines = j.lines()
            tap.check(same(got, want) and len(lines) == 1 and '(zero-copy)' in lines[0],
                      'split over 16 KiB bindings, grid_sample from two memfds: identical to inline, zero-copy (%s)' % lines)
            os.close(fx)
            os.close(fg)
            c.close()
            d.stop()
    finally:
        for k in env:
            del os.environ[k]

    # the switch off: memfd jobs take staging copies and stay right
    os.environ['VKR_VULKAN_NO_HOST_IMPORT'] = '1'
    try:
        with running_daemon(args.daemon, backend='vulkan', validation=True, extra=('-v',)) as d:
            j = Jobs(tap, d)
            c = j.c
            want = c.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=True, backend='vulkan')
            fx = memfd(x.tobytes())
            body = v.pack_submit_body(x.shape, b'', mode='bilinear', scale_factor=1.5, align_corners=True, backend='vulkan',
                                      storage=v.STORAGE_MEMFD, fd_index=0, data_offset=0, data_bytes=x.nbytes,
                                      result_storage=v.RESULT_DAEMON_FD)
            got = result_of(j.send(body, [fx]), None, want.shape, want.nbytes)
            os.close(fx)
            c.close()
            log = d.stop()
            tap.check(same(got, want) and 'interpolate memfd job' not in log and 'VKR_VULKAN_NO_HOST_IMPORT=1' in log,
                      'VKR_VULKAN_NO_HOST_IMPORT=1: no import, identical to inline')
    finally:
        del os.environ['VKR_VULKAN_NO_HOST_IMPORT']
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
