#!/usr/bin/python3
"""Golden frames (proto/vectors/NAME.hex) against the Python client module: every frame is
built with the module's pack_* functions and compared byte for byte with its file, and every
reply kind is read back with the module's unpack_* functions and its fields checked.

usage: test_vectors.py VECTORS_DIR     (TAP output)"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'support'))
from vkr_testlib import Tap, vkresample as v  # noqa: E402


def load(directory, name):
    data = bytearray()
    with open(os.path.join(directory, name)) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            data += bytes(int(tok, 16) for tok in line)
    return bytes(data)


def f32(values):
    return struct.pack('<%df' % len(values), *values)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def main():
    directory = sys.argv[1]
    tap = Tap()

    def same(name, built):
        want = load(directory, name)
        i = first_difference(built, want)
        tap.check(built == want, '%s: the Python packers make the golden frame byte for byte (%d bytes%s)' % (
            name, len(want), '' if built == want else '; first difference at byte %d, lengths %d and %d' % (i, len(built), len(want))))
        return want

    def header_of(frame):
        return v.unpack_header(frame[:v.HEADER_BYTES])

    # requests without a body
    for name, mtype, rid in (('ping.hex', v.MSG_PING, 1), ('cancel.hex', v.MSG_CANCEL, 8), ('stats.hex', v.MSG_STATS, 15)):
        same(name, v.pack_header(mtype, rid, 0))

    # SUBMITs
    body = v.pack_submit_body([1, 2, 2, 2], f32(range(8)), mode='nearest', size=4, backend='cpu')
    same('submit_interpolate.hex', v.pack_header(v.MSG_SUBMIT, 7, len(body)) + body)
    body = v.pack_grid_body(v.OP_GRID_SAMPLE, [(1, 1, 2, 2), (1, 1, 2, 2)], [f32([0, 1, 2, 3]), f32([-1, -1, 0.5, 0.25])],
                            mode='bilinear', padding_mode='zeros', align_corners=True, backend='cpu')
    same('submit_grid_sample.hex', v.pack_header(v.MSG_SUBMIT, 8, len(body)) + body)
    body = v.pack_grid_body(v.OP_AFFINE_GRID, [(1, 2, 3)], [f32([1, 0, 0, 0, 1, 0])], align_corners=False, size=(1, 1, 2, 3))
    same('submit_affine_grid.hex', v.pack_header(v.MSG_SUBMIT, 9, len(body)) + body)
    body = v.pack_grid_body(v.OP_AFFINE_SAMPLE, [(1, 1, 2, 2), (1, 2, 3)], [f32([0, 1, 2, 3]), f32([1, 0, 0, 0, 1, 0])],
                            mode='nearest', padding_mode='border', size=(3, 3), backend='vulkan')
    same('submit_affine_sample.hex', v.pack_header(v.MSG_SUBMIT, 10, len(body)) + body)
    body = v.pack_grid_body(v.OP_GRID_SAMPLE, [(1, 3, 64, 64), (1, 32, 32, 2)], [bytes(8192)], backend='cpu',
                            memfds=[(0, 4096), None], result_storage=v.RESULT_INTO_FD)
    frame = same('submit_memfd.hex', v.pack_header(v.MSG_SUBMIT, 11, len(body), n_fds=2) + body)
    tap.check(header_of(frame)[5] == 2, 'submit_memfd.hex: n_fds 2 in the header')

    # replies: packed and read back
    name = 'llvmpipe (LLVM 15.0.6, 256 bits)'
    body = v.pack_pong_body(6, 1, name)
    frame = same('pong.hex', v.pack_header(v.MSG_PONG, 1, len(body)) + body)
    pong = v.unpack_pong(frame[v.HEADER_BYTES:])
    tap.check(pong == {'device': name, 'backends': ['vulkan', 'cpu'], 'backend_mask': 6, 'default_backend': 'vulkan'},
              'pong.hex: unpack_pong reads %s' % pong)

    out = [float(ch * 4 + (r // 2) * 2 + c // 2) for ch in range(2) for r in range(4) for c in range(4)]
    body = v.pack_result_body('cpu', (1, 2, 4, 4), f32(out))
    frame = same('result_inline.hex', v.pack_header(v.MSG_RESULT, 7, len(body)) + body)
    res = v.unpack_result(frame[v.HEADER_BYTES:])
    tap.check(res['backend_used'] == 'cpu' and res['storage'] == v.STORAGE_INLINE and res['shape'] == (1, 2, 4, 4)
              and res['data_offset'] == 96 and res['data_bytes'] == 128 and not res['reserved']
              and frame[v.HEADER_BYTES + 96:] == f32(out), 'result_inline.hex: unpack_result reads (1, 2, 4, 4) inline at 96')
    for fname, rid, backend, storage, n_fds in (('result_memfd.hex', 12, 'vulkan', v.STORAGE_MEMFD, 1),
                                                ('result_output_fd.hex', 11, 'cpu', v.STORAGE_OUTPUT_FD, 0)):
        body = v.pack_result_body(backend, (1, 3, 32, 32), storage=storage)
        frame = same(fname, v.pack_header(v.MSG_RESULT, rid, len(body), n_fds=n_fds) + body)
        res = v.unpack_result(frame[v.HEADER_BYTES:])
        tap.check(res['storage'] == storage and res['data_offset'] == 0 and res['data_bytes'] == 12288 and res['backend_used'] == backend
                  and len(frame) == v.HEADER_BYTES + v.RESULT_FIXED_BYTES and header_of(frame)[5] == n_fds,
                  '%s: storage %d, 12288 bytes, no inline data, n_fds %d' % (fname, storage, n_fds))

    for fname, rid, code, field, message in (
            ('error.hex', 13, v.VKR_E_VALUE, 'align_corners',
             'align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear'),
            ('error_busy.hex', 14, v.VKR_E_BUSY, 'queue', 'client queue full: 64 jobs in flight on this connection (--max-client-jobs 64)')):
        body = v.pack_error_body(code, field, message)
        frame = same(fname, v.pack_header(v.MSG_ERROR, rid, len(body)) + body)
        tap.check(v.unpack_error(frame[v.HEADER_BYTES:]) == (code, field, message), '%s: unpack_error reads (%d, %s, ...)' % (fname, code, field))

    st = {'uptime_ms': 3723004, 'bytes_in': 1048576, 'bytes_out': 2097152, 'memfd_bytes_in': 4096, 'memfd_bytes_out': 8192,
          'queued': 2, 'running': 1, 'clients': 3, 'workers': 4, 'latency_p50_us': 250, 'latency_p99_us': 12000, 'jobs_busy': 5,
          'jobs_cancelled': 6, 'frames_refused': 7, 'vulkan_lost': True, 'jobs_moved_to_cpu': 8, 'connections_refused': 9,
          'connections_timed_out': 10, 'accept_pauses': 11, 'device': 'cpu',
          'jobs': [{'op': 'interpolate', 'backend': 'cpu', 'done': 100, 'failed': 3, 'in_flight': 2},
                   {'op': 'grid_sample', 'backend': 'cpu', 'done': 40, 'failed': 1, 'in_flight': 1}]}
    body = v.pack_stats_reply_body(st)
    frame = same('stats_reply.hex', v.pack_header(v.MSG_STATS_REPLY, 15, len(body)) + body)
    back = v.unpack_stats(frame[v.HEADER_BYTES:])
    tap.check(back == st, 'stats_reply.hex: unpack_stats reads every field (%s)' % ('same' if back == st else back))
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
