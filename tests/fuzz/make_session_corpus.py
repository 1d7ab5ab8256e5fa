#!/usr/bin/env python3
"""Writes the seed corpus of the 'session' fuzz target (tests/fuzz/session/seed-*): small valid and
deliberately broken sessions in the input format that fuzz_session.c's header describes, frames laid
out as proto/PROTOCOL.md says.  Stdlib only; reproducible: `tests/fuzz/make_session_corpus.py`.
Files libFuzzer found (tests/fuzz/session/cov-*, crash-*) are not touched."""
import os
import struct
import sys

MAGIC, VERSION = 0x31524B56, 1
PING, PONG, SUBMIT, RESULT, ERROR, CANCEL, STATS, STATS_REPLY = range(1, 9)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'session')

# descriptor kinds (fuzz_session.c): spec = (kind | fill << 3, size / 16)
SEALED, UNSEALED, WRITE_SEALED, ODD, PIPE_R, PIPE_W, DEVNULL, SOCKET = range(8)


def header(type_, rid, body_len, n_fds=0, magic=MAGIC, version=VERSION):
    return struct.pack('<IHHIIIIQ', magic, version, type_, 0, rid, n_fds, 0, body_len)


def tensor(shape, storage=0, fd_index=0, data_offset=0):
    n = 1
    for d in shape:
        n *= d
    dims = list(shape) + [0] * (8 - len(shape))
    return struct.pack('<HHBBH8qQQ', 1, 1, len(shape), storage, fd_index, *dims, data_offset, n * 4)


def floats(n):
    return struct.pack('<%df' % n, *[float(i) for i in range(n)])


def interp_params(mode=1, size=(), scale=(), align=0, antialias=0):
    sz = list(size) + [0] * (3 - len(size))
    sc = list(scale) + [0.0] * (3 - len(scale))
    return struct.pack('<HBBBBBB3q3d', mode, align, 0, antialias, len(size), len(scale), 0, *sz, *sc)


def grid_params(mode=1, padding=1, align=0, size=()):
    sz = list(size) + [0] * (5 - len(size))
    return struct.pack('<HHBBH5qQ', mode, padding, align, len(size), 0, *sz, 0)


def submit(rid, op, params, tensors, data=b'', result_storage=0, n_fds=0, backend=2):
    body = struct.pack('<HHHH', op, backend, len(tensors), result_storage) + params + b''.join(tensors) + data
    return header(SUBMIT, rid, len(body), n_fds) + body


def interp_inline(rid, shape=(1, 2, 2, 2), **kw):
    n = 1
    for d in shape:
        n *= d
    fixed = 64 + 88
    return submit(rid, 1, interp_params(**kw), [tensor(shape, data_offset=fixed)], floats(n))


def result_inline(rid, shape):
    n = 1
    for d in shape:
        n *= d
    return header(RESULT, rid, 96 + 4 * n) + struct.pack('<HHI', 2, 0, 0) + tensor(shape, data_offset=96) + floats(n)


def result_fd(rid, shape, storage=2, n_fds=0):
    return header(RESULT, rid, 96, n_fds) + struct.pack('<HHI', 2, 0, 0) + tensor(shape, storage=storage)


def error(rid, code, field, message):
    body = struct.pack('<iHH', code, len(field), len(message)) + field + message
    return header(ERROR, rid, len(body)) + body


def pong(rid, name=b'cpu'):
    body = struct.pack('<IHH', 1 << 2, 2, len(name)) + name
    return header(PONG, rid, len(body)) + body


def stats_reply(rid, name=b'cpu'):
    body = struct.pack('<5Q4I2Q3Q', 1, 2, 3, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0)
    body += struct.pack('<HHI4Q', 0, len(name), 0, 0, 0, 0, 0) + name
    assert len(body) == 136 + len(name)
    return header(STATS_REPLY, rid, len(body)) + body


def record(chunk, read=1, fds=(), action=0, job=0, client=False):
    """One record: ctl, len, descriptor specs, chunk (at most 256 bytes)."""
    assert 1 <= len(chunk) <= 256 and len(fds) <= 4
    n = len(fds)
    ctl = (min(n, 3)) | (4 if n == 4 else 0)
    ctl |= ((action & 3) << 3 | (job & 3) << 5) if client else ((read - 1) & 31) << 3
    out = bytes([ctl, len(chunk) - 1])
    for kind, size, fill in fds:
        out += bytes([kind | fill << 3, size])
    return out + chunk


def chunked(stream, sizes, read=1, fds_at=None, **kw):
    """Records for stream cut into pieces of the given sizes (cycled); fds_at: {piece index: fds}."""
    out, i, k = b'', 0, 0
    while i < len(stream):
        n = min(sizes[k % len(sizes)], len(stream) - i, 256)
        out += record(stream[i:i + n], read=read, fds=(fds_at or {}).get(k, ()), **kw)
        i, k = i + n, k + 1
    return out


def seeds():
    s = {}
    # ---- daemon half (mode bit 0 clear)
    s['d-ping'] = b'\x00' + record(header(PING, 1, 0), read=32)
    s['d-ping-bytewise'] = b'\x00' + chunked(header(PING, 2, 0), [1], read=1)
    s['d-stats'] = b'\x00' + chunked(header(STATS, 3, 0), [5, 27], read=7)
    s['d-submit-inline'] = b'\x00' + chunked(interp_inline(7, size=(4,)), [7, 50, 3], read=5)
    s['d-submit-bilinear-aa'] = b'\x00' + chunked(interp_inline(8, (1, 1, 4, 4), mode=4, size=(2,), antialias=1), [64], read=16)
    s['d-submit-trilinear'] = b'\x00' + chunked(interp_inline(9, (1, 1, 2, 2, 2), mode=6, scale=(1.5,)), [200], read=32)
    s['d-submit-area-1d'] = b'\x00' + chunked(interp_inline(10, (1, 2, 6), mode=7, size=(4,)), [100], read=9)
    memfd_in = submit(11, 1, interp_params(size=(4,)), [tensor((1, 2, 2, 2), storage=1)], n_fds=1)
    s['d-submit-memfd'] = b'\x00' + chunked(memfd_in, [32, 200], fds_at={0: [(SEALED, 2, 1)]}, read=4)
    into = submit(12, 1, interp_params(size=(4,)), [tensor((1, 2, 2, 2), storage=1)], result_storage=1, n_fds=2)
    s['d-submit-into-fd'] = b'\x00' + chunked(into, [40, 200], fds_at={0: [(SEALED, 2, 2), (SEALED, 16, 0)]}, read=3)
    s['d-submit-into-write-sealed'] = b'\x00' + chunked(into, [256], fds_at={0: [(SEALED, 2, 2), (WRITE_SEALED, 16, 0)]}, read=8)
    daemon_fd = submit(13, 1, interp_params(size=(4,)), [tensor((1, 2, 2, 2), data_offset=152)], floats(8), result_storage=2)
    s['d-submit-daemon-fd'] = b'\x00' + chunked(daemon_fd, [13], read=2)
    s['d-memfd-unsealed'] = b'\x00' + chunked(memfd_in, [256], fds_at={0: [(UNSEALED, 2, 0)]}, read=32)
    s['d-memfd-short'] = b'\x00' + chunked(memfd_in, [256], fds_at={0: [(ODD, 1, 0)]}, read=32)
    s['d-memfd-pipe'] = b'\x00' + chunked(memfd_in, [256], fds_at={0: [(PIPE_R, 0, 0)]}, read=32)
    s['d-memfd-devnull-socket'] = b'\x00' + chunked(memfd_in, [256], fds_at={0: [(DEVNULL, 0, 0)]}) + \
        chunked(submit(14, 1, interp_params(size=(4,)), [tensor((1, 2, 2, 2), storage=1)], n_fds=1), [256],
                fds_at={0: [(SOCKET, 0, 0)]})
    s['d-fds-mid-body'] = b'\x00' + chunked(interp_inline(15, size=(4,)), [40, 40, 200], fds_at={1: [(SEALED, 1, 0)]})
    s['d-four-fds'] = b'\x00' + chunked(memfd_in, [256], fds_at={0: [(SEALED, 2, 0)] * 4})
    grid = submit(16, 2, grid_params(mode=1, padding=3, align=2), [tensor((1, 1, 3, 3), data_offset=240),
                  tensor((1, 2, 2, 2), data_offset=240 + 36)], floats(9) + struct.pack('<8f', -1.5, 0.2, 1e30, -1e30,
                  float('nan'), 0.5, float('inf'), -0.75))
    s['d-grid-sample'] = b'\x00' + chunked(grid, [100, 200], read=6)
    theta = struct.pack('<6f', 1, 0, 0, 0, 1, 0)
    s['d-affine-grid'] = b'\x00' + chunked(submit(17, 3, grid_params(mode=0, padding=0, size=(1, 1, 3, 3)),
                                                  [tensor((1, 2, 3), data_offset=152)], theta), [256], read=10)
    s['d-affine-sample'] = b'\x00' + chunked(submit(18, 4, grid_params(mode=3, padding=2, size=(3, 3)),
                                                    [tensor((1, 1, 2, 2), data_offset=240), tensor((1, 2, 3), data_offset=256)],
                                                    floats(4) + theta), [256], read=12)
    s['d-submit-cancel'] = b'\x00' + chunked(interp_inline(19, (1, 4, 16, 16), mode=5, size=(32,)) + header(CANCEL, 19, 0),
                                             [256], read=32)
    s['d-duplicate-id'] = b'\x00' + chunked(interp_inline(20, size=(4,)) * 2, [256], read=32)
    s['d-truncated'] = b'\x00' + chunked(interp_inline(21, size=(4,))[:100], [30], read=1)
    s['d-bad-magic'] = b'\x00' + record(header(PING, 22, 0, magic=0x31524B57) + header(PING, 23, 0), read=32)
    s['d-bad-version'] = b'\x00' + record(header(STATS, 24, 0, version=2), read=32)
    s['d-result-from-client'] = b'\x00' + record(result_inline(25, (1, 1, 1, 1)), read=32)
    s['d-refused-plan'] = b'\x00' + chunked(interp_inline(26, size=(4,), scale=(2.0,)), [256], read=32)
    s['d-half-close-in-flight'] = b'\x02' + chunked(interp_inline(27, (1, 4, 16, 16), mode=5, size=(64,)), [256], read=32)
    s['d-close-in-flight'] = b'\x04' + chunked(interp_inline(28, (1, 4, 16, 16), mode=5, size=(64,)), [256], read=32)
    s['d-busy'] = b'\x00' + chunked(b''.join(interp_inline(30 + i, (1, 1, 8, 8), mode=5, size=(128,)) for i in range(8)),
                                    [256], read=32)

    # ---- client half (mode bit 0 set); jobs A, B, C, D get request ids 1, 2, ... in that order
    A, B, C, D, BULK, BIT6, BIT7 = 2, 4, 8, 16, 32, 64, 128
    out_shape = (1, 1, 4, 4)
    s['c-a-result'] = bytes([1 | A]) + chunked(result_inline(1, out_shape), [9, 40, 200], client=True, action=1)
    s['c-a-result-wait-any'] = bytes([1 | A]) + chunked(result_inline(1, out_shape), [256], client=True, action=2)
    s['c-ab-results'] = bytes([1 | A | B]) + chunked(result_fd(2, out_shape) + result_inline(1, out_shape), [50], client=True,
                                                     action=1, job=1)
    s['c-c-result'] = bytes([1 | C]) + chunked(result_inline(1, out_shape), [256], client=True, action=3)
    s['c-d-error'] = bytes([1 | D]) + chunked(error(1, -5, b'scale_factor', b'only one of size or scale_factor should be defined'),
                                              [256], client=True, action=2)
    s['c-d-result-refused'] = bytes([1 | D]) + chunked(result_inline(1, out_shape), [256], client=True, action=2)
    s['c-conn-error'] = bytes([1 | A | B]) + chunked(error(0, -20, b'uid', b'uid 1 may not use this daemon'), [5], client=True)
    s['c-unknown-id'] = bytes([1 | A]) + chunked(result_inline(9, out_shape), [256], client=True)
    s['c-wrong-shape'] = bytes([1 | A]) + chunked(result_inline(1, (1, 1, 4, 5)), [256], client=True)
    s['c-fd-with-result'] = bytes([1 | A]) + chunked(result_inline(1, out_shape), [256], fds_at={0: [(SEALED, 4, 0)]},
                                                     client=True, action=1)
    s['c-daemon-memfd-result'] = bytes([1 | A]) + chunked(result_fd(1, out_shape, storage=1, n_fds=1), [256],
                                                          fds_at={0: [(SEALED, 4, 0)]}, client=True, action=1)
    s['c-fd-mid-body'] = bytes([1 | A]) + chunked(result_inline(1, out_shape), [40, 200], fds_at={1: [(PIPE_R, 0, 0)]},
                                                  client=True)
    s['c-cancel-late-reply'] = bytes([1 | A | B | BIT6]) + chunked(result_inline(1, out_shape)[:60], [60], client=True)
    s['c-truncated-close'] = bytes([1 | A | C]) + chunked(result_inline(1, out_shape)[:70], [7], client=True, action=2)
    s['c-bulk-ping'] = bytes([1 | A | BULK | BIT6]) + chunked(result_inline(1, out_shape) + pong(2), [100], client=True)
    s['c-bulk-stats'] = bytes([1 | BULK | BIT7]) + chunked(stats_reply(1), [256], client=True)
    s['c-bulk-ping-stats-all'] = bytes([1 | A | B | C | D | BULK | BIT6 | BIT7]) + chunked(
        result_fd(2, out_shape) + error(4, -5, b'', b'no') + result_inline(1, out_shape) + result_inline(3, out_shape) +
        pong(5) + stats_reply(6), [256], client=True)
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.startswith('seed-'):
            os.unlink(os.path.join(OUT, name))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(OUT, 'seed-' + name), 'wb') as f:
            f.write(data)
    print('%d seeds in %s' % (len(seeds()), OUT), file=sys.stderr)


if __name__ == '__main__':
    main()
