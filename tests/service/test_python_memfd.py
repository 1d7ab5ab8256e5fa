#!/usr/bin/python3
"""The Python module's memfd path (issue 5) against a real vkresampled: Client(memfd_threshold=...)
and MemfdTensor (Client.memfd_tensor), not raw frames.

- One conformance subset of every op (tests/service/test_clients.py's cases: interpolate in every
  mode, grid_sample, affine_grid, affine_sample, and arguments torch refuses) runs four ways on
  one daemon: inline (memfd_threshold=None), every tensor through fresh memfds (memfd_threshold=0,
  pool=False: inputs copied into sealed memfds, the output in the daemon's memfd, mapped into the
  returned array), every tensor through the connection's pool (memfd_threshold=0: the output
  written into a pooled memfd the returned array views), and from MemfdTensors with out=
  (nothing copied).  The four give the same bytes, and torch's
  (bit for bit on the CPU backend; within the README's bounds on Vulkan); what torch refuses
  raises VkresampleError with torch's message on every path.
- The threshold: tensors under it inline, at or over it in memfds (inputs and output decided
  separately, as libvkresample does), checked by the daemon's memfd byte counters;
  memfd_threshold=None sends everything inline; the threshold can change between jobs.
- A reused MemfdTensor pair: 20 jobs, each refilling the input in place, the output written into
  the same out= tensor; each byte-identical to the job inline; no memfd is created on the way
  (the process's descriptor count stays put) and views into a tensor (at an offset) go by memfd.
- Errors: the daemon's refusals through the memfd path raise its code and message (the same as
  inline), local misuse (out= of the wrong shape, overlapping its input, a closed tensor) raises
  before anything is sent, and the connection carries on.
- Resources: after the clients and tensors are closed and the arrays dropped, this process's
  descriptors (/proc/self/fd) and memfd mappings (/proc/self/maps) are back at their baseline, a
  result in the daemon's memfd holds no descriptor while it lives, and the daemon holds no
  descriptor it was sent.

usage: test_python_memfd.py DAEMON [--backend cpu|vulkan]     (TAP output)"""
import argparse
import gc
import os
import sys
import warnings

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'support'))
sys.path.insert(0, HERE)
from vkr_testlib import check_stopped, Tap, open_fds, running_daemon, vkresample as v  # noqa: E402
from test_clients import cases, torch_ref  # noqa: E402   (the shared conformance subset)

warnings.filterwarnings('ignore')


def self_fds():
    return len(os.listdir('/proc/self/fd'))


def memfd_maps():
    """Mappings of this module's and the daemon's memfds in this process."""
    with open('/proc/self/maps') as f:
        return sum(1 for line in f if 'memfd:vkresample' in line)


def close_to(got, ref, exact):
    """Bit for bit (exact), or within the Vulkan backend's documented bounds (1e-5 relative)."""
    if got.shape != ref.shape:
        return False
    if exact:
        return np.array_equal(got, ref)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    return bool(np.all(np.abs(got - ref) <= 1e-5 * scale))


def run(client, op, arrays, kw, backend, out=None):
    """The op's output (an array), or ('refused', code, message)."""
    try:
        extra = {} if out is None else {'out': out}
        return getattr(client, op)(*arrays, **dict(kw, backend=backend, **extra))
    except v.VkresampleError as e:
        return ('refused', e.code, e.message)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu', 'vulkan'))
    args = ap.parse_args()
    backend = args.backend
    exact = backend == 'cpu'
    tap = Tap()
    rng = np.random.default_rng(55)
    with running_daemon(args.daemon, backend=backend) as d:
        watch = d.client()
        gc.collect()
        fds_baseline = self_fds()
        maps_baseline = memfd_maps()
        pid = d.proc.pid
        watch.ping()
        daemon_fds = open_fds(pid)
        default = d.client()
        tap.check(default.memfd_threshold == v.MEMFD_THRESHOLD_BYTES and default.pool,
                  'the default Client sends tensors of 1 MiB or more by its memfd pool (issue 18)')
        default.close()
        inline = v.Client(d.socket, memfd_threshold=None)
        every = v.Client(d.socket, memfd_threshold=0, pool=False)
        pooled = v.Client(d.socket, memfd_threshold=0)

        # ---------------------------------------------------------------- the conformance subset, three ways
        for name, op, arrays, kw in cases(rng):
            ref = torch_ref(op, arrays, kw)
            a = run(inline, op, arrays, kw, backend)
            a_transport = inline.last_transport
            b = run(every, op, arrays, kw, backend)
            b_transport = every.last_transport
            p = run(pooled, op, arrays, kw, backend)
            p_transport = pooled.last_transport
            tensors = [inline.memfd_tensor(x.shape, x) for x in arrays]
            out_shape = ref.shape if not isinstance(ref, tuple) else (1,)
            out = inline.memfd_tensor(out_shape)
            fds_during = self_fds()
            c = run(inline, op, tensors, kw, backend, out=None if isinstance(ref, tuple) else out)
            c_transport = inline.last_transport
            if isinstance(ref, tuple):
                c_transport = None
            if isinstance(ref, tuple):
                ok = all(isinstance(r, tuple) and ref[1] in r[2] for r in (a, b, c, p)) and a[1] == b[1] == c[1] == p[1] \
                    and a[2] == b[2] == c[2] == p[2]
                detail = 'refused alike on every path (%s: %s)' % (v.CODES.get(a[1]) if isinstance(a, tuple) else a,
                                                                   a[2][:60] if isinstance(a, tuple) else '')
                if not ok:
                    detail = 'inline %s / memfd %s / tensors %s; torch: %s' % (a if isinstance(a, tuple) else 'array',
                                                                             b if isinstance(b, tuple) else 'array',
                                                                             c if isinstance(c, tuple) else 'array', ref[1])
            else:
                arrays_ok = not any(isinstance(r, tuple) for r in (a, b, c, p))
                ok = (arrays_ok and close_to(a, ref, exact) and a.tobytes() == b.tobytes() == p.tobytes() and c is out.array
                      and a.tobytes() == out.array.tobytes() and v._mapping_of(b) is not None
                      and set(b_transport.values()) == {'memfd copy', 'daemon memfd'}
                      and set(a_transport.values()) == {'inline'} and set(c_transport.values()) == {'memfd', 'out memfd'}
                      and set(p_transport.values()) == {'pool'} and isinstance(v._mapping_of(p), v._Lease))
                detail = ('memfd, pool and MemfdTensor results byte-identical to inline, inline %s torch; transports %s / %s / %s'
                          % ('bit-exact with' if exact else 'within 1e-5 of', b_transport, p_transport, c_transport))
                if not ok:
                    detail = 'inline %s, memfd %s, tensors %s, transports %s %s %s' % (
                        'array' if not isinstance(a, tuple) else a, 'array' if not isinstance(b, tuple) else b,
                        'array' if not isinstance(c, tuple) else c, a_transport, b_transport, c_transport)
            for t in tensors + [out]:
                t.close()
            tap.check(ok and fds_during == self_fds() + len(tensors) + 1,
                      '%s: %s' % (name, detail))
            del a, b, c, p, tensors, out

        # ---------------------------------------------------------------- the threshold
        x_small = rng.standard_normal((1, 2, 16, 16)).astype(np.float32)     # 2 KiB in
        x_big = rng.standard_normal((1, 2, 64, 64)).astype(np.float32)       # 32 KiB in
        threshold = 32 * 1024
        c = v.Client(d.socket, memfd_threshold=threshold, pool=False)

        def counters():
            st = watch.stats()
            return st['memfd_bytes_in'], st['memfd_bytes_out']

        x_under = rng.standard_normal((1, 1, threshold // 4 - 1)).astype(np.float32)   # 4 bytes under
        for what, x, kw, want_in, want_out in (
                ('input under, output at the threshold', x_small, {'size': (64, 64), 'mode': 'bilinear'}, 'inline', 'daemon memfd'),
                ('input at, output under the threshold', x_big, {'size': (16, 16), 'mode': 'bilinear'}, 'memfd copy', 'inline'),
                ('input and output over the threshold', x_big, {'scale_factor': 2, 'mode': 'bilinear'}, 'memfd copy', 'daemon memfd'),
                ('input 4 bytes under the threshold, output 4 bytes under', x_under, {'scale_factor': 1.0, 'mode': 'linear'}, 'inline',
                 'inline'),
                ('input 4 bytes under the threshold, output over', x_under, {'size': 8192, 'mode': 'linear'}, 'inline', 'daemon memfd')):
            before = counters()
            y = c.interpolate(x, backend=backend, **kw)
            after = counters()
            ref = inline.interpolate(x, backend=backend, **kw)
            grew = (after[0] - before[0], after[1] - before[1])
            want = (x.nbytes if want_in != 'inline' else 0, y.nbytes if want_out != 'inline' else 0)
            tap.check(c.last_transport == {'input': want_in, 'output': want_out} and grew == want and y.tobytes() == ref.tobytes()
                      and (v._mapping_of(y) is not None) == (want_out == 'daemon memfd'),
                      'threshold %d: %s -> input %s, output %s (daemon memfd counters +%d / +%d bytes), same bytes as inline'
                      % (threshold, what, c.last_transport['input'], c.last_transport['output'], grew[0], grew[1]))
        c.memfd_threshold = None
        before = counters()
        y = c.interpolate(x_big, scale_factor=2, mode='bilinear', backend=backend)
        tap.check(counters() == before and c.last_transport == {'input': 'inline', 'output': 'inline'} and v._mapping_of(y) is None,
                  'memfd_threshold set to None between jobs: the next job goes inline')
        before = counters()
        y = inline.interpolate(rng.standard_normal((1, 3, 256, 256)).astype(np.float32), scale_factor=2, mode='nearest', backend=backend)
        tap.check(counters() == before and type(y) is np.ndarray and y.flags.writeable and v._mapping_of(y) is None,
                  'memfd_threshold=None sends a 768 KiB / 3 MiB job inline and returns an ordinary writable array')
        c.memfd_threshold = v.MEMFD_THRESHOLD_BYTES
        before = counters()
        xm = rng.standard_normal((1, 4, 256, 256)).astype(np.float32)   # exactly 1 MiB
        y = c.interpolate(xm, scale_factor=0.5, mode='area', backend=backend)
        tap.check(counters()[0] - before[0] == xm.nbytes and counters()[1] == before[1]
                  and c.last_transport == {'input': 'memfd copy', 'output': 'inline'}
                  and y.tobytes() == inline.interpolate(xm, scale_factor=0.5, mode='area', backend=backend).tobytes(),
                  'MEMFD_THRESHOLD_BYTES (libvkresample\'s 1 MiB): a 1 MiB input goes by memfd, a 256 KiB output inline')
        try:
            v.Client(d.socket, memfd_threshold=-1)
            refused = None
        except v.VkresampleError as e:
            refused = e
        tap.check(refused is not None and refused.code == v.VKR_E_INVALID_ARG and refused.field == 'memfd_threshold',
                  'a negative memfd_threshold is refused (%s)' % refused)
        c.close()

        # ---------------------------------------------------------------- a reused memfd tensor pair, 20 jobs
        c = d.client()
        shape, kw = (2, 3, 24, 40), dict(size=(37, 53), mode='bicubic', align_corners=False)
        t_in = c.memfd_tensor(shape)
        t_out = c.memfd_tensor((2, 3, 37, 53))
        fd_in, fd_out = t_in.fileno(), t_out.fileno()
        fds_before = self_fds()
        before = counters()
        same = 0
        for k in range(20):
            t_in.array[...] = rng.standard_normal(shape).astype(np.float32)
            got = c.interpolate(t_in, backend=backend, out=t_out, **kw)
            want = inline.interpolate(t_in.array.copy(), backend=backend, **kw)
            same += got is t_out.array and t_out.array.tobytes() == want.tobytes()
        after = counters()
        tap.check(same == 20 and c.last_transport == {'input': 'memfd', 'output': 'out memfd'},
                  'one MemfdTensor input refilled in place and one out= tensor, 20 jobs: %d of 20 byte-identical to inline' % same)
        tap.check(self_fds() == fds_before and (t_in.fileno(), t_out.fileno()) == (fd_in, fd_out)
                  and after[0] - before[0] == 20 * t_in.nbytes and after[1] - before[1] == 20 * t_out.nbytes,
                  'the 20 jobs created no descriptor (%d open before, %d after) and sent the same two memfds (%d + %d bytes a job)'
                  % (fds_before, self_fds(), t_in.nbytes, t_out.nbytes))
        # a view into the tensor at an offset (the second batch item) goes by memfd at that offset
        g = np.random.default_rng(9).uniform(-1, 1, (1, 5, 7, 2)).astype(np.float32)
        one = c.grid_sample(t_in.array[1:2], g, backend=backend)
        tr = c.last_transport
        two = inline.grid_sample(t_in.array[1:2].copy(), g, backend=backend)
        tap.check(tr == {'input': 'memfd', 'grid': 'inline', 'output': 'inline'} and one.tobytes() == two.tobytes(),
                  'a view of a MemfdTensor at a byte offset goes by its memfd at that offset: same bytes as inline (%s)' % tr)
        theta = c.memfd_tensor((2, 2, 3), rng.uniform(-1, 1, (2, 2, 3)).astype(np.float32))
        both = c.affine_sample(t_in, theta, (9, 11), backend=backend)
        tap.check(c.last_transport == {'input': 'memfd', 'theta': 'memfd', 'output': 'inline'}
                  and both.tobytes() == inline.affine_sample(t_in.array.copy(), theta.array.copy(), (9, 11), backend=backend).tobytes(),
                  'two MemfdTensor inputs (two descriptors) in one job: same bytes as inline')

        # ---------------------------------------------------------------- errors
        x = t_in.array.copy()
        checks = []
        for what, call in (
                ('nearest with align_corners', lambda cl, src, o: cl.interpolate(src, size=5, mode='nearest', align_corners=True,
                                                                                  backend=backend)),
                ('size and scale_factor both, with out=', lambda cl, src, o: cl.interpolate(src, size=5, scale_factor=2.0, backend=backend,
                                                                                             out=o)),
                ('grid batch differs, with out=', lambda cl, src, o: cl.grid_sample(src, np.zeros((3, 4, 4, 2), np.float32), backend=backend,
                                                                                     out=o))):
            errs = []
            for cl, src, o in ((inline, x, None), (c, t_in, t_out)):
                try:
                    call(cl, src, o)
                    errs.append(None)
                except v.VkresampleError as e:
                    errs.append((e.code, e.field, e.message))
            checks.append(errs[0] is not None and errs[0] == errs[1])
            tap.check(checks[-1], 'refused through the memfd path with the daemon\'s code and message, as inline: %s (%s)'
                      % (what, errs[1]))
        other = 'cpu' if backend == 'vulkan' else 'vulkan'
        offered = other in watch.ping()['backends']
        if not offered:
            errs = []
            for cl, src in ((inline, x), (c, t_in)):
                try:
                    cl.interpolate(src, size=(37, 53), backend=other, out=t_out if cl is c else None)
                    errs.append(None)
                except v.VkresampleError as e:
                    errs.append((e.code, e.field, e.message))
            tap.check(errs[0] is not None and errs[0] == errs[1] and errs[1][0] == v.VKR_E_BACKEND_UNAVAILABLE,
                      'a backend the daemon lacks, asked with memfd input and out=: the daemon\'s VKR_E_BACKEND_UNAVAILABLE and message (%s)'
                      % (errs[1],))
        local = []
        for what, call, code in (
                ('out= of the wrong shape', lambda: c.interpolate(t_in, scale_factor=2, backend=backend, out=t_out), v.VKR_E_VALUE),
                ('out= overlapping its input', lambda: c.interpolate(t_in, size=(24, 40), backend=backend, out=t_in), v.VKR_E_VALUE),
                ('out= a plain array', lambda: c.interpolate(t_in, size=(37, 53), backend=backend, out=np.zeros((2, 3, 37, 53), np.float32)),
                 v.VKR_E_INVALID_ARG)):
            try:
                call()
                got = None
            except v.VkresampleError as e:
                got = e
            local.append(got is not None and got.code == code and got.field == 'out')
            tap.check(local[-1], '%s raises before anything is sent: %s' % (what, got))
        closed = c.memfd_tensor((1, 1, 2, 2))
        closed.close()
        try:
            c.interpolate(closed, scale_factor=2, backend=backend)
            got = None
        except v.VkresampleError as e:
            got = e
        tap.check(got is not None and got.code == v.VKR_E_INVALID_ARG and got.field == 'input',
                  'a closed MemfdTensor as input raises VKR_E_INVALID_ARG (%s)' % got)
        del closed
        y = c.interpolate(t_in, size=(37, 53), mode='bicubic', align_corners=False, backend=backend, out=t_out)
        tap.check(y.tobytes() == inline.interpolate(x, size=(37, 53), mode='bicubic', align_corners=False, backend=backend).tobytes(),
                  'the connection carries on after every refusal')

        # ---------------------------------------------------------------- resources
        c.memfd_threshold, c.pool = 0, False
        fds_mid, maps_mid = self_fds(), memfd_maps()
        held = [c.interpolate(x, scale_factor=2, mode='nearest', backend=backend) for _ in range(5)]
        tap.check(self_fds() == fds_mid and memfd_maps() == maps_mid + 5 and all(v._mapping_of(h) is not None for h in held),
                  'five results in the daemon\'s memfds: mapped (5 more memfd mappings), no descriptor held (%d open before, %d after)'
                  % (fds_mid, self_fds()))
        del held, y
        gc.collect()
        tap.check(memfd_maps() == maps_mid, 'dropping the results unmaps them (%d memfd mappings, %d before)' % (memfd_maps(), maps_mid))
        keep = t_in.array
        for t in (t_in, t_out, theta):
            t.close()
        t_in.close()
        keep[0, 0, 0, 0] = 1.5
        tap.check(keep[0, 0, 0, 0] == 1.5 and memfd_maps() > maps_baseline,
                  'a view outlives close(): its mapping stays valid until the last view is gone')
        del keep, theta, one, two, both, got, x, g, src, o, t
        t_in = t_out = None   # (rebound, not deleted: the lambdas above refer to them)
        for cl in (c, every, pooled, inline):
            cl.close()
        gc.collect()
        live = [o for o in gc.get_objects() if isinstance(o, v._Mapping) and o.addr]
        if live:
            print('# live mappings: %s' % ['%d bytes, held by %s' % (m.nbytes, [type(r).__name__ for r in gc.get_referrers(m)])
                                           for m in live])
        tap.check(self_fds() == fds_baseline and memfd_maps() == maps_baseline,
                  'clients and tensors closed, arrays dropped: this process\'s descriptors (%d, baseline %d) and memfd mappings '
                  '(%d, baseline %d) are back at their baseline' % (self_fds(), fds_baseline, memfd_maps(), maps_baseline))
        for _ in range(100000):
            if watch.stats()['clients'] == 1:
                break
        tap.check(open_fds(pid) == daemon_fds, 'the daemon holds no descriptor it was sent (%d open before, %d after)'
                  % (daemon_fds, open_fds(pid)))
        watch.close()
        check_stopped(tap, d, 'daemon stopped cleanly')
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
