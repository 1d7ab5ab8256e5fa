#!/usr/bin/python3
"""Memfd tensors and descriptor passing against a real vkresampled, with raw frames from the
Python module: jobs whose tensors and outputs travel in memfds (the daemon's own output memfd and
one the client supplies) are byte-identical to inline jobs; a memfd that is not sealed against
shrinking, one that is too short, a descriptor that is not a memfd and an output memfd sealed
against writing are refused with VKR_E_FD while the connection carries on; a header whose n_fds
does not match the descriptors that came with it is refused and the connection closed; and the
daemon holds no descriptor afterwards (its /proc/PID/fd count is back where it was).

usage: test_memfd.py DAEMON [--backend cpu|vulkan]     (TAP output)"""
import argparse
import fcntl
import mmap
import os
import socket
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, MEMFD_SEALS as SEALS, Tap, closed_by_peer, exchange, memfd, open_fds, running_daemon, vkresample as v  # noqa: E402,F401

def read_fd(fd, nbytes, offset=0):
    with mmap.mmap(fd, offset + nbytes, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        return bytes(m[offset:offset + nbytes])


def grid_job(x, grid, memfds=None, result_storage=v.RESULT_INLINE, datas=None, backend='cpu'):
    """A bicubic grid_sample SUBMIT body (the grid ops run on the CPU backend: the memfd path is
    the same for every op and backend; interpolate checks it on the daemon's default backend)."""
    body = v.pack_grid_body(v.OP_GRID_SAMPLE, [x.shape, grid.shape], [x.tobytes(), grid.tobytes()] if datas is None else datas,
                            mode='bicubic', padding_mode='border', align_corners=False, backend=backend, memfds=memfds,
                            result_storage=result_storage)
    return body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu', 'vulkan'))
    args = ap.parse_args()
    tap = Tap()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 40, 50)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (2, 30, 20, 2)).astype(np.float32)
    out_shape = (2, 3, 30, 20)
    out_bytes = 4 * int(np.prod(out_shape))

    with running_daemon(args.daemon, backend=args.backend) as d:
        watch = d.client()
        pid = d.proc.pid
        watch.ping()
        fds_before = open_fds(pid)
        c = d.client()

        # the inline reference
        ref = c.grid_sample(x, grid, mode='bicubic', padding_mode='border', align_corners=False, backend='cpu')

        # input in a memfd (at an offset), grid inline, output in a memfd of the daemon's
        fx = memfd(b'\0' * 4096 + x.tobytes())
        body = grid_job(x, grid, memfds=[(0, 4096), None], result_storage=v.RESULT_DAEMON_FD, datas=[grid.tobytes()],
                        backend='cpu')
        f = exchange(c, v.pack_header(v.MSG_SUBMIT, 101, len(body), n_fds=1) + body, [fx])
        os.close(fx)
        ok = f is not None and f.type == v.MSG_RESULT and f.n_fds == 1 and len(f.fds) == 1
        if ok:
            res = v.unpack_result(f.body)
            seals = fcntl.fcntl(f.fds[0], fcntl.F_GET_SEALS)
            got = np.frombuffer(read_fd(f.fds[0], out_bytes), '<f4').reshape(out_shape)
            ok = (res['storage'] == v.STORAGE_MEMFD and res['shape'] == out_shape and len(f.body) == v.RESULT_FIXED_BYTES
                  and bool(seals & fcntl.F_SEAL_SHRINK) and np.array_equal(got, ref))
        for fd in (f.fds if f else ()):
            os.close(fd)
        tap.check(ok, 'memfd input at an offset, output in a sealed memfd of the daemon\'s: byte-identical to inline (%s)'
                  % ((f.type, f.n_fds, len(f.body)) if f else 'closed',))

        # both tensors in one memfd, output into a memfd the client supplies
        fin = memfd(x.tobytes() + grid.tobytes())
        fout = memfd(size=out_bytes)
        body = grid_job(x, grid, memfds=[(0, 0), (0, x.nbytes)], result_storage=v.RESULT_INTO_FD, datas=[], backend='cpu')
        f = exchange(c, v.pack_header(v.MSG_SUBMIT, 102, len(body), n_fds=2) + body, [fin, fout])
        ok = f is not None and f.type == v.MSG_RESULT and f.n_fds == 0
        if ok:
            res = v.unpack_result(f.body)
            got = np.frombuffer(read_fd(fout, out_bytes), '<f4').reshape(out_shape)
            ok = res['storage'] == v.STORAGE_OUTPUT_FD and np.array_equal(got, ref)
        tap.check(ok, 'both tensors in one memfd, output written into the client\'s memfd: byte-identical to inline')
        os.close(fin)
        os.close(fout)

        # interpolate on the daemon's default backend, input and output in memfds
        want = c.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=True)
        fx = memfd(x.tobytes())
        body = v.pack_submit_body(x.shape, b'', mode='bilinear', scale_factor=1.5, align_corners=True, storage=v.STORAGE_MEMFD,
                                  fd_index=0, data_offset=0, data_bytes=x.nbytes, result_storage=v.RESULT_DAEMON_FD)
        f = exchange(c, v.pack_header(v.MSG_SUBMIT, 103, len(body), n_fds=1) + body, [fx])
        os.close(fx)
        ok = f is not None and f.type == v.MSG_RESULT and len(f.fds) == 1
        detail = v.unpack_error(f.body) if f is not None and f.type == v.MSG_ERROR else ''
        if ok:
            got = np.frombuffer(read_fd(f.fds[0], want.nbytes), '<f4').reshape(want.shape)
            detail = 'max |difference| %g, backend %s' % (np.max(np.abs(got - want)), v.unpack_result(f.body)['backend_used'])
            ok = np.array_equal(got, want) and v.unpack_result(f.body)['backend_used'] == args.backend
        for fd in (f.fds if f else ()):
            os.close(fd)
        tap.check(ok, 'interpolate on the %s backend with memfd input and output: byte-identical to inline (%s)' % (args.backend, detail))

        # input and output in one memfd (issue 11): overlapping ranges are refused on every backend,
        # whether the same descriptor comes twice or a dup() of it brings the output; disjoint ranges
        # of one memfd are served and exact
        want = c.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)
        for what, in_offset, dup in (('overlapping at 0, the same descriptor twice', 0, False),
                                     ('overlapping in the middle, the output through a dup()', want.nbytes // 2, True),
                                     ('overlapping in its last float', want.nbytes - 4, False),
                                     ('disjoint: the input right after the output', want.nbytes, True)):
            shared = memfd(size=in_offset + x.nbytes + want.nbytes)
            with mmap.mmap(shared, in_offset + x.nbytes) as m:
                m[in_offset:in_offset + x.nbytes] = x.tobytes()
            body = v.pack_submit_body(x.shape, b'', mode='bicubic', scale_factor=2, align_corners=False, storage=v.STORAGE_MEMFD,
                                      fd_index=0, data_offset=in_offset, data_bytes=x.nbytes, result_storage=v.RESULT_INTO_FD,
                                      backend=args.backend)
            fds = [shared, os.dup(shared) if dup else shared]
            f = exchange(c, v.pack_header(v.MSG_SUBMIT, 150 + in_offset % 97, len(body), n_fds=len(fds)) + body, fds)
            if in_offset >= want.nbytes:
                ok = f is not None and f.type == v.MSG_RESULT
                got = np.frombuffer(read_fd(shared, want.nbytes), '<f4').reshape(want.shape) if ok else None
                ok = ok and np.array_equal(got, want)
                tap.check(ok, 'input and output in one memfd, %s: served, byte-identical to inline' % what)
            else:
                got = v.unpack_error(f.body) if f is not None and f.type == v.MSG_ERROR else f
                ranges = '[0, %d)' % want.nbytes, '[%d, %d)' % (in_offset, in_offset + x.nbytes)
                ok = got is not None and got[0] == v.VKR_E_FD and got[1] == 'output' and all(r in got[2] for r in ranges)
                tap.check(ok, 'input and output in one memfd, %s -> VKR_E_FD [output] naming both ranges (%s)' % (what, got))
            for fd in set(fds):
                os.close(fd)

        # refusals: each VKR_E_FD, and the connection carries on
        cases = []
        unsealed = memfd(x.tobytes(), seals=0)
        cases.append(('a memfd not sealed against shrinking', [unsealed], [(0, 0), None], v.RESULT_INLINE, 'input',
                      'not sealed against shrinking'))
        short = memfd(x.tobytes()[:-4])
        cases.append(('a memfd 4 bytes short of the tensor', [short], [(0, 0), None], v.RESULT_INLINE, 'input', 'the tensor needs'))
        offset_short = memfd(x.tobytes())
        cases.append(('a memfd long enough only without the offset', [offset_short], [(0, 8), None], v.RESULT_INLINE, 'input',
                      'offset 8'))
        r, w = os.pipe()
        cases.append(('a pipe instead of a memfd', [r], [(0, 0), None], v.RESULT_INLINE, 'input', 'not a memfd'))
        path = os.path.join(d.dir, 'plain.bin')
        with open(path, 'wb') as fh:
            fh.write(x.tobytes())
        plain = os.open(path, os.O_RDONLY)
        cases.append(('a regular file instead of a memfd', [plain], [(0, 0), None], v.RESULT_INLINE, 'input', 'not a memfd'))
        good = memfd(x.tobytes())
        write_sealed = memfd(size=out_bytes, seals=SEALS | fcntl.F_SEAL_WRITE)
        cases.append(('an output memfd sealed against writing', [good, write_sealed], [(0, 0), None], v.RESULT_INTO_FD, 'output',
                      'sealed against writing'))
        short_out = memfd(size=out_bytes - 4)
        cases.append(('an output memfd 4 bytes short', [good, short_out], [(0, 0), None], v.RESULT_INTO_FD, 'output', 'the tensor needs'))
        cases.append(('two descriptors when the job uses one', [good, good], [(0, 0), None], v.RESULT_INLINE, 'n_fds', 'use 1'))
        for rid, (what, fds, where, result_storage, field, needle) in enumerate(cases, 200):
            body = grid_job(x, grid, memfds=where, result_storage=result_storage, datas=[grid.tobytes()], backend='cpu')
            f = exchange(c, v.pack_header(v.MSG_SUBMIT, rid, len(body), n_fds=len(fds)) + body, fds)
            got = v.unpack_error(f.body) if f is not None and f.type == v.MSG_ERROR else f
            ok = got is not None and got[0] == v.VKR_E_FD and got[1] == field and needle in got[2] and f.request_id == rid
            tap.check(ok, '%s -> VKR_E_FD [%s] (%s)' % (what, field, got))
        tap.check(np.array_equal(c.grid_sample(x, grid, mode='bicubic', padding_mode='border', align_corners=False, backend='cpu'), ref),
                  'the same connection still runs a job after every refusal')
        for fd in (unsealed, short, offset_short, r, w, plain, good, write_sealed, short_out):
            os.close(fd)

        # a sealed memfd cannot be shrunk under the daemon: the seal is what makes SIGBUS impossible
        fx = memfd(x.tobytes())
        try:
            os.ftruncate(fx, 16)
            shrunk = True
        except PermissionError:
            shrunk = False
        tap.check(not shrunk, 'F_SEAL_SHRINK: the client itself cannot shrink a memfd it sent')
        os.close(fx)

        # descriptor counts that break the framing: ERROR, then the connection is closed
        for what, n_fds_header, fds in (('n_fds 2, one descriptor sent', 2, 1), ('n_fds 0, one descriptor sent', 0, 1),
                                        ('n_fds 1, none sent', 1, 0), ('four descriptors', 3, 4)):
            s = d.client()
            extra = [memfd(x.tobytes()) for _ in range(fds)]
            body = grid_job(x, grid, memfds=[(0, 0), None] if n_fds_header else None, datas=[grid.tobytes()] if n_fds_header else None,
                            backend='cpu')
            f = exchange(s, v.pack_header(v.MSG_SUBMIT, 300, len(body), n_fds=n_fds_header) + body, extra)
            got = v.unpack_error(f.body)[:2] if f is not None and f.type == v.MSG_ERROR else f
            closed = closed_by_peer(s)
            tap.check(got == (v.VKR_E_PROTOCOL, 'n_fds') and closed, '%s -> VKR_E_PROTOCOL [n_fds], connection closed (%s)' % (what, got))
            s.close()
            for fd in extra:
                os.close(fd)

        c.close()
        # wait (by replies) until the daemon has closed the other connections, then count its fds
        for _ in range(100000):
            if watch.stats()['clients'] == 1:
                break
        fds_after = open_fds(pid)
        tap.check(fds_after == fds_before, 'the daemon holds no received descriptor afterwards (%d open before, %d after)'
                  % (fds_before, fds_after))
        st = watch.stats()
        tap.check(st['memfd_bytes_in'] >= 2 * x.nbytes and st['memfd_bytes_out'] >= 2 * out_bytes,
                  'stats count memfd bytes (in %d, out %d)' % (st['memfd_bytes_in'], st['memfd_bytes_out']))
        watch.close()
        check_stopped(tap, d, 'daemon stopped cleanly')
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
