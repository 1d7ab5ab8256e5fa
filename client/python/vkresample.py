"""vkresample: a Python client of the vkresampled daemon (protocol v1), stdlib + numpy only.

This module owns the Python side of the wire format: it packs frames with ``struct`` and talks
to the daemon's Unix socket directly (it does not load libvkresample).  Frame layout:
proto/PROTOCOL.md and proto/vkr_proto.h.

    from vkresample import Client
    with Client() as c:
        y = c.interpolate(x, scale_factor=2, mode='bilinear')
        z = c.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
        g = c.affine_grid(theta, (1, 3, 32, 32), align_corners=False)
        w = c.affine_sample(x, theta, (32, 32))      # grid_sample(x, affine_grid(theta, ...))

        print(c.stats())                             # the daemon's counters

Tensors in memfds (no copy through the socket; proto/PROTOCOL.md, "Tensors in memfds"):

    with Client() as c:                              # memfd_threshold=MEMFD_THRESHOLD_BYTES, pool=True
        y = c.interpolate(big, scale_factor=2)       # tensors of 1 MiB or more go through the
                                                     # connection's pool of pre-faulted memfds: big is
                                                     # copied once into one, y views another (no copy)
                                                     # that is reused once y is gone
    Client(memfd_threshold=None)                     # every tensor inline through the socket
    with Client() as c:
        t = c.memfd_tensor((8, 3, 512, 512))         # a reusable memfd tensor: t.array is its view
        o = c.memfd_tensor((8, 3, 1024, 1024))
        for frame in frames:
            t.array[...] = frame                     # fill it in place
            c.interpolate(t, scale_factor=2, mode='bilinear', out=o)   # o.array holds the result
        t.close(); o.close()

Errors from the daemon, from the connection and from arguments that cannot be put on the wire
raise VkresampleError(code, field, message).  ``Client.send_raw`` and ``Client.recv_frame``
give tests and scripts access to raw frames (malformed ones included) and to descriptor passing
(memfd tensors, SCM_RIGHTS); the ``pack_*`` / ``unpack_*`` functions build and read every message
kind of the protocol (tests/unit/test_vectors.py checks them against proto/vectors).
"""

import array
import ctypes
import fcntl
import math
import operator
import os
import socket
import struct
import threading
import weakref
from collections import namedtuple

import numpy as np

__all__ = [
    'Client', 'VkresampleError', 'VkresampleTypeError', 'VkresampleValueError',
    'VkresampleNotImplementedError', 'VkresampleRuntimeError', 'daemon_error', 'Frame', 'MemfdTensor', 'memfd_tensor', 'default_socket_path',
    'pack_header', 'pack_submit_body', 'pack_grid_body', 'pack_result_body', 'pack_error_body',
    'pack_pong_body', 'pack_stats_reply_body', 'unpack_header', 'unpack_result', 'unpack_error',
    'unpack_pong', 'unpack_stats',
    'MAGIC', 'VERSION', 'HEADER_BYTES',
    'MSG_PING', 'MSG_PONG', 'MSG_SUBMIT', 'MSG_RESULT', 'MSG_ERROR', 'MSG_CANCEL', 'MSG_STATS',
    'MSG_STATS_REPLY', 'STORAGE_INLINE', 'STORAGE_MEMFD', 'STORAGE_OUTPUT_FD', 'RESULT_INLINE',
    'RESULT_INTO_FD', 'RESULT_DAEMON_FD', 'MAX_FDS_PER_FRAME', 'MEMFD_THRESHOLD_BYTES', 'MEMFD_SEALS',
    'POOL_MAX_BYTES', 'POOL_MAX_BUFFERS',
    'MODES', 'GRID_MODES', 'PADDING_MODES', 'BACKENDS', 'CODES',
    'OP_INTERPOLATE', 'OP_GRID_SAMPLE', 'OP_AFFINE_GRID', 'OP_AFFINE_SAMPLE',
]

# ------------------------------------------------------------------ protocol constants
MAGIC = 0x31524B56               # b"VKR1"
VERSION = 1
HEADER_BYTES = 32
MSG_PING, MSG_PONG, MSG_SUBMIT, MSG_RESULT, MSG_ERROR = 1, 2, 3, 4, 5
MSG_CANCEL, MSG_STATS, MSG_STATS_REPLY = 6, 7, 8
OP_INTERPOLATE, OP_GRID_SAMPLE, OP_AFFINE_GRID, OP_AFFINE_SAMPLE = 1, 2, 3, 4
DTYPE_F32 = 1
LAYOUT_CONTIGUOUS = 1
STORAGE_INLINE, STORAGE_MEMFD, STORAGE_OUTPUT_FD = 0, 1, 2       # where a tensor's bytes are
RESULT_INLINE, RESULT_INTO_FD, RESULT_DAEMON_FD = 0, 1, 2        # where a SUBMIT wants its output
MAX_FDS_PER_FRAME = 3
MAX_RANK = 8
MAX_SPATIAL = 3
MAX_TENSORS = 2
AFFINE_GRID_MAX_SIZE = 5         # the wire's size[5] of the grid ops
JOB_HEADER_BYTES = 8
INTERP_PARAMS_BYTES = 56
TENSOR_DESC_BYTES = 88
SUBMIT_FIXED_BYTES = JOB_HEADER_BYTES + INTERP_PARAMS_BYTES + TENSOR_DESC_BYTES   # 152
RESULT_FIXED_BYTES = 8 + TENSOR_DESC_BYTES                                        # 96
MAX_CONTROL_BODY_BYTES = 4096
STATS_FIXED_BYTES, STATS_ROW_BYTES = 136, 32
STATS_VULKAN_LOST = 0x1        # STATS_REPLY flags: the Vulkan device was lost, its work runs on the CPU
MEMFD_THRESHOLD_BYTES = 1 << 20  # libvkresample's VKR_MEMFD_THRESHOLD_BYTES: Client(memfd_threshold=...)
# The seals of every memfd this module makes: its size can neither shrink (so the daemon's mapping
# cannot fault; the daemon requires this one) nor grow, and no seal can be added later (so nobody
# can seal it against writing while it is used as an output).
MEMFD_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

_HEADER = struct.Struct('<IHHIIIIQ')                 # magic version type flags id n_fds rsv len
_JOB_HEADER = struct.Struct('<HHHH')                 # op backend n_tensors reserved
_INTERP = struct.Struct('<HBBBBBB3q3d')              # mode ac rsf aa n_size n_scale rsv size scale
_GRID = struct.Struct('<HHBBH5qQ')                   # mode padding ac n_size rsv size[5] rsv
_TENSOR_DESC = struct.Struct('<HHBBH8qQQ')           # dtype layout rank storage rsv shape off bytes
_RESULT_HEAD = struct.Struct('<HHI')                 # backend_used reserved reserved
_ERROR_HEAD = struct.Struct('<iHH')                  # code field_len message_len
_PONG_HEAD = struct.Struct('<IHH')                   # backend_mask default_backend name_len
_STATS_HEAD = struct.Struct('<QQQQQIIIIQQQQQHHIQQQQ')  # uptime bytes x4 queued running clients workers
                                                     # p50 p99 busy cancelled refused n_rows name_len
                                                     # flags moved conns_refused timed_out pauses
_STATS_ROW = struct.Struct('<HHIQQQ')                # op backend reserved done failed in_flight
_SUBMIT_INTERP = struct.Struct('<' + _JOB_HEADER.format[1:] + _INTERP.format[1:]
                               + _TENSOR_DESC.format[1:])   # an interpolate SUBMIT's fixed 152 bytes
assert _STATS_HEAD.size == STATS_FIXED_BYTES and _STATS_ROW.size == STATS_ROW_BYTES
assert _HEADER.size == HEADER_BYTES and _INTERP.size == INTERP_PARAMS_BYTES == _GRID.size
assert _TENSOR_DESC.size == TENSOR_DESC_BYTES and _SUBMIT_INTERP.size == SUBMIT_FIXED_BYTES

MODES = {'nearest': 1, 'nearest-exact': 2, 'linear': 3, 'bilinear': 4, 'bicubic': 5,
         'trilinear': 6, 'area': 7}
GRID_MODES = {'bilinear': 1, 'nearest': 2, 'bicubic': 3}
PADDING_MODES = {'zeros': 1, 'border': 2, 'reflection': 3}
BACKENDS = {'auto': 0, 'vulkan': 1, 'cpu': 2}
_BACKEND_NAMES = {v: k for k, v in BACKENDS.items()}

# Status codes (vkresample_types.h): stable, negative on failure.
VKR_OK = 0
VKR_E_IO = -1                   # socket error, peer closed, short read/write
VKR_E_PROTOCOL = -2             # malformed frame
VKR_E_VERSION = -3              # unsupported protocol version
VKR_E_TOO_LARGE = -4            # a length or tensor is over a limit
VKR_E_VALUE = -5                # invalid argument (PyTorch: ValueError / TypeError)
VKR_E_NOT_IMPLEMENTED = -6      # mode / rank combination PyTorch does not implement
VKR_E_SIZE = -7                 # PyTorch RuntimeError on sizes
VKR_E_DTYPE = -8                # dtype or layout not supported
VKR_E_BACKEND_UNAVAILABLE = -9  # the requested backend does not exist in this daemon
VKR_E_BACKEND = -10             # the backend failed while running the job
VKR_E_NOMEM = -11               # allocation failed
VKR_E_SHUTDOWN = -12            # the daemon is shutting down
VKR_E_UNSUPPORTED = -13         # valid for PyTorch but not (yet) served by vkresample
VKR_E_INVALID_ARG = -14         # bad argument to a library call (client side)
VKR_E_SERVER = -15              # unexpected reply from the daemon (client side)
VKR_E_BUSY = -16                # a queue limit of the daemon is full: retry later
VKR_E_CANCELLED = -17           # the job was cancelled
VKR_E_TIMEOUT = -18             # the job's time limit passed (client side)
VKR_E_FD = -19                  # a passed descriptor cannot be used (not a sealed memfd, too short)
VKR_E_PERMISSION = -20          # this uid / its groups may not use the daemon (--allow-uid, --allow-group)
CODES = {code: name for name, code in sorted(globals().items())
         if name.startswith('VKR_') and isinstance(code, int)}
__all__ += list(CODES.values())


class VkresampleError(Exception):
    """A refused or failed request.  code: a negative VKR_E_* value; field: the argument or frame
    field at fault ('' if none); message: the daemon's (PyTorch's wording) or a local one."""

    def __init__(self, code, field, message):
        super().__init__(code, field, message)
        self.code = code
        self.field = field
        self.message = message

    @property
    def code_name(self):
        return CODES.get(self.code, 'VKR_E_?')

    def __str__(self):
        where = '%s: ' % self.field if self.field else ''
        return '%s: %s%s' % (self.code_name, where, self.message)


class VkresampleTypeError(VkresampleError, TypeError):
    """An argument PyTorch refuses with TypeError (a size of floats, say): catchable as either."""


class VkresampleValueError(VkresampleError, ValueError):
    """An argument PyTorch refuses with ValueError before any kernel runs: catchable as either."""


class VkresampleNotImplementedError(VkresampleError, NotImplementedError):
    """A mode / rank combination PyTorch raises NotImplementedError for."""


class VkresampleRuntimeError(VkresampleError, RuntimeError):
    """What PyTorch's kernels refuse with RuntimeError (sizes, shapes)."""


_TORCH_TYPE_OF_CODE = {VKR_E_VALUE: VkresampleValueError,
                       VKR_E_NOT_IMPLEMENTED: VkresampleNotImplementedError,
                       VKR_E_SIZE: VkresampleRuntimeError}


def daemon_error(code, field, message):
    """The daemon's refusal as an exception that is also the Python type PyTorch raises for it
    (VKR_E_VALUE: ValueError, VKR_E_NOT_IMPLEMENTED: NotImplementedError, VKR_E_SIZE:
    RuntimeError), so code written for torch.nn.functional catches it as it is."""
    return _TORCH_TYPE_OF_CODE.get(code, VkresampleError)(code, field, message)


Frame = namedtuple('Frame', 'magic version type flags request_id n_fds reserved body_len body fds',
                   defaults=((),))
OPS = {'interpolate': OP_INTERPOLATE, 'grid_sample': OP_GRID_SAMPLE, 'affine_grid': OP_AFFINE_GRID,
       'affine_sample': OP_AFFINE_SAMPLE}
_OP_NAMES = {v: k for k, v in OPS.items()}


def default_socket_path():
    """The daemon's default socket, as libvkresample computes it: $VKRESAMPLE_SOCKET if set and
    not empty, else $XDG_RUNTIME_DIR/vkresample.sock, else /tmp/vkresample-<uid>.sock."""
    env = os.environ.get('VKRESAMPLE_SOCKET')
    if env:
        return env
    runtime = os.environ.get('XDG_RUNTIME_DIR')
    if runtime:
        return runtime + '/vkresample.sock'
    return '/tmp/vkresample-%d.sock' % os.getuid()


# ------------------------------------------------------------------ frame packing
def pack_header(msg_type, request_id, body_len, magic=MAGIC, version=VERSION, flags=0, n_fds=0,
                reserved=0):
    """A 32-byte frame header.  Every field can be overridden (tests send bad ones)."""
    return _HEADER.pack(magic, version, msg_type, flags, request_id, n_fds, reserved, body_len)


def unpack_header(data):
    """(magic, version, type, flags, request_id, n_fds, reserved, body_len) of 32 bytes."""
    return _HEADER.unpack(data)


def _count(value, name):
    """(n, values) for a size/scale_factor argument: None -> 0; scalar -> 1 (broadcast);
    sequence -> its length."""
    if value is None:
        return 0, []
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(np.asarray(value).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
        if not 1 <= len(values) <= MAX_SPATIAL:
            raise VkresampleError(VKR_E_VALUE, name, '%s has %d values: vkresample takes 1 to %d'
                                  % (name, len(values), MAX_SPATIAL))
        return len(values), values
    return 1, [value]


def _opt_bool(value):
    """The wire's tri-state: None -> 0, False -> 1, True -> 2; an int is sent as it is."""
    if value is None:
        return 0
    if isinstance(value, (bool, np.bool_)):
        return 2 if value else 1
    return int(value)


def pack_submit_body(shape, data=b'', mode='nearest', size=None, scale_factor=None,
                     align_corners=None, recompute_scale_factor=None, antialias=False,
                     backend='auto', op=OP_INTERPOLATE, n_tensors=1, dtype=DTYPE_F32,
                     layout=LAYOUT_CONTIGUOUS, storage=STORAGE_INLINE, data_offset=None,
                     data_bytes=None, n_size=None, n_scale=None, result_storage=RESULT_INLINE,
                     fd_index=0):
    """A SUBMIT body for an interpolate job: job header, interpolate parameters, tensor
    descriptor, then `data` (bytes-like, float32 little-endian).  mode/backend may be names or
    numbers; align_corners/recompute_scale_factor may be None/False/True or the raw byte.  For a
    tensor in a memfd: storage=STORAGE_MEMFD, fd_index, data_offset (in the memfd) and data_bytes,
    and no data.  The defaults describe a well-formed job; every raw field can be overridden for
    negative tests."""
    mode_id = MODES[mode] if isinstance(mode, str) else int(mode)
    backend_id = BACKENDS[backend] if isinstance(backend, str) else int(backend)
    ns, sizes = _count(size, 'size')
    nf, scales = _count(scale_factor, 'scale_factor')
    sizes = [int(v) for v in sizes] + [0] * (MAX_SPATIAL - len(sizes))
    scales = [float(v) for v in scales] + [0.0] * (MAX_SPATIAL - len(scales))
    ac = _opt_bool(align_corners)
    rsf = _opt_bool(recompute_scale_factor)
    shape = [int(d) for d in shape]
    rank = len(shape)
    if data_offset is None:
        data_offset = SUBMIT_FIXED_BYTES
    if data_bytes is None:
        data_bytes = memoryview(data).nbytes
    fixed = _SUBMIT_INTERP.pack(op, backend_id, n_tensors, result_storage,
                                mode_id, ac, rsf, int(antialias),
                                ns if n_size is None else n_size, nf if n_scale is None else n_scale,
                                0, *sizes, *scales,
                                dtype, layout, rank, storage, fd_index,
                                *(shape[:MAX_RANK] + [0] * (MAX_RANK - min(rank, MAX_RANK))),
                                data_offset, data_bytes)
    return b''.join((fixed, data))


def _pack_desc(shape, data_offset, data_bytes, dtype=DTYPE_F32, layout=LAYOUT_CONTIGUOUS,
               storage=STORAGE_INLINE, fd_index=0):
    shape = [int(d) for d in shape]
    rank = len(shape)
    return _TENSOR_DESC.pack(dtype, layout, rank, storage, fd_index,
                             *(shape[:MAX_RANK] + [0] * (MAX_RANK - min(rank, MAX_RANK))),
                             data_offset, data_bytes)


def pack_grid_body(op, shapes, datas=(), mode='bilinear', padding_mode='zeros',
                   align_corners=None, size=(), backend='auto', n_tensors=None, n_size=None,
                   memfds=None, result_storage=RESULT_INLINE):
    """A SUBMIT body for a grid op (OP_GRID_SAMPLE: shapes of input and grid; OP_AFFINE_GRID:
    theta's, with size (N, C, H, W[, ...]); OP_AFFINE_SAMPLE: input's and theta's, with size the
    output's spatial extents).  datas: the tensors' bytes (float32 little-endian), appended in
    order; when shorter than shapes, the descriptors still claim prod(shape) * 4 bytes each (the
    caller sends the bytes itself).  memfds: None, or per tensor None (inline) or (fd_index,
    data_offset) for a tensor in one of the frame's memfds (its bytes are then not in the body).
    mode / padding_mode: names or numbers (affine_grid sends 0 for both).  Raw fields can be
    overridden for negative tests."""
    if op == OP_AFFINE_GRID:
        mode_id = padding_id = 0
    else:
        mode_id = GRID_MODES[mode] if isinstance(mode, str) else int(mode)
        padding_id = PADDING_MODES[padding_mode] if isinstance(padding_mode, str) else int(padding_mode)
    backend_id = BACKENDS[backend] if isinstance(backend, str) else int(backend)
    size = [int(v) for v in size]
    if len(size) > AFFINE_GRID_MAX_SIZE:
        raise VkresampleError(VKR_E_VALUE, 'size', 'size has %d values: the wire carries at most %d'
                              % (len(size), AFFINE_GRID_MAX_SIZE))
    n = len(shapes)
    fixed = JOB_HEADER_BYTES + INTERP_PARAMS_BYTES + n * TENSOR_DESC_BYTES
    body = bytearray()
    body += _JOB_HEADER.pack(op, backend_id, n if n_tensors is None else n_tensors, result_storage)
    body += _GRID.pack(mode_id, padding_id, _opt_bool(align_corners),
                       len(size) if n_size is None else n_size, 0,
                       *(size + [0] * (AFFINE_GRID_MAX_SIZE - len(size))), 0)
    offset = fixed
    for k, shape in enumerate(shapes):
        nbytes = 4
        for d in shape:
            nbytes *= int(d)
        where = memfds[k] if memfds is not None else None
        if where is None:
            body += _pack_desc(shape, offset, nbytes)
            offset += nbytes
        else:
            body += _pack_desc(shape, where[1], nbytes, storage=STORAGE_MEMFD, fd_index=where[0])
    for data in datas:
        body += data
    return bytes(body)


def pack_result_body(backend_used, shape, data=b'', storage=STORAGE_INLINE):
    """A RESULT body: backend_used ('vulkan', 'cpu' or a number), the output's descriptor, then
    data when storage is STORAGE_INLINE (a memfd output carries no bytes, data_offset 0)."""
    backend_id = BACKENDS[backend_used] if isinstance(backend_used, str) else int(backend_used)
    nbytes = 4
    for d in shape:
        nbytes *= int(d)
    offset = RESULT_FIXED_BYTES if storage == STORAGE_INLINE else 0
    return (_RESULT_HEAD.pack(backend_id, 0, 0) + _pack_desc(shape, offset, nbytes, storage=storage)
            + (bytes(data) if storage == STORAGE_INLINE else b''))


def pack_error_body(code, field, message):
    """An ERROR body: i32 code, the field's and the message's lengths, then both (UTF-8)."""
    f, m = field.encode(), message.encode()
    return _ERROR_HEAD.pack(code, len(f), len(m)) + f + m


def pack_pong_body(backend_mask, default_backend, device):
    """A PONG body: the backends served (bit 1 << id), the default backend, the device name."""
    d = device.encode()
    return _PONG_HEAD.pack(backend_mask, default_backend, len(d)) + d


def pack_stats_reply_body(st):
    """A STATS_REPLY body from a dict as unpack_stats returns it."""
    name = st['device'].encode()
    rows = st['jobs']
    body = bytearray(_STATS_HEAD.pack(
        st['uptime_ms'], st['bytes_in'], st['bytes_out'], st['memfd_bytes_in'],
        st['memfd_bytes_out'], st['queued'], st['running'], st['clients'], st['workers'],
        st['latency_p50_us'], st['latency_p99_us'], st['jobs_busy'], st['jobs_cancelled'],
        st['frames_refused'], len(rows), len(name), STATS_VULKAN_LOST if st['vulkan_lost'] else 0,
        st['jobs_moved_to_cpu'], st['connections_refused'], st['connections_timed_out'],
        st['accept_pauses']))
    for r in rows:
        op = OPS[r['op']] if isinstance(r['op'], str) else int(r['op'])
        backend = BACKENDS[r['backend']] if isinstance(r['backend'], str) else int(r['backend'])
        body += _STATS_ROW.pack(op, backend, 0, r['done'], r['failed'], r['in_flight'])
    return bytes(body + name)


def unpack_result(body):
    """The fixed part of a RESULT body: {'backend_used', 'storage', 'fd_index', 'shape',
    'data_offset', 'data_bytes', 'reserved'} (reserved: True if any reserved byte is set).
    VkresampleError(VKR_E_SERVER) when the body is too short or the rank is out of range."""
    if len(body) < RESULT_FIXED_BYTES:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'RESULT body of %d bytes' % len(body))
    backend_used, r1, r2 = _RESULT_HEAD.unpack_from(body)
    desc = _TENSOR_DESC.unpack_from(body, 8)
    dtype, layout, rank, storage, fd_index = desc[:5]
    shape = desc[5:5 + MAX_RANK]
    if not 1 <= rank <= MAX_RANK:
        raise VkresampleError(VKR_E_SERVER, 'output.rank', 'RESULT rank %d' % rank)
    return {'backend_used': _BACKEND_NAMES.get(backend_used, backend_used), 'dtype': dtype,
            'layout': layout, 'storage': storage, 'fd_index': fd_index,
            'shape': tuple(shape[:rank]), 'data_offset': desc[13], 'data_bytes': desc[14],
            'reserved': bool(r1 or r2 or any(shape[rank:]))}


def unpack_error(body):
    """(code, field, message) of an ERROR body; VkresampleError(VKR_E_SERVER) if malformed."""
    if len(body) < _ERROR_HEAD.size:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'ERROR body of %d bytes' % len(body))
    code, fl, ml = _ERROR_HEAD.unpack_from(body)
    if code >= 0 or len(body) != _ERROR_HEAD.size + fl + ml:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'malformed ERROR body from the daemon')
    return (code, bytes(body[8:8 + fl]).decode('utf-8', 'replace'),
            bytes(body[8 + fl:8 + fl + ml]).decode('utf-8', 'replace'))


def unpack_pong(body):
    """{'device', 'backends', 'backend_mask', 'default_backend'} of a PONG body."""
    if len(body) < _PONG_HEAD.size:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'PONG body of %d bytes' % len(body))
    mask, default, nl = _PONG_HEAD.unpack_from(body)
    if len(body) != _PONG_HEAD.size + nl:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'PONG name length %d does not match '
                              'body_len %d' % (nl, len(body)))
    return {
        'device': bytes(body[8:8 + nl]).decode('utf-8', 'replace'),
        'backends': [_BACKEND_NAMES.get(b, str(b)) for b in range(32) if mask & (1 << b)],
        'backend_mask': mask,
        'default_backend': _BACKEND_NAMES.get(default, str(default)),
    }


def unpack_stats(body):
    """A STATS_REPLY body as a dict: uptime_ms, bytes_in, bytes_out, memfd_bytes_in,
    memfd_bytes_out, queued, running, clients, workers, latency_p50_us, latency_p99_us,
    jobs_busy, jobs_cancelled, frames_refused, vulkan_lost (bool: the Vulkan device was lost),
    jobs_moved_to_cpu, connections_refused, connections_timed_out, accept_pauses, device, and
    jobs: a list of {'op', 'backend', 'done', 'failed', 'in_flight'} (op and backend by name)."""
    if len(body) < STATS_FIXED_BYTES:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'STATS_REPLY body of %d bytes' % len(body))
    f = _STATS_HEAD.unpack_from(body)
    n_rows, nl, flags = f[14], f[15], f[16]
    if flags & ~STATS_VULKAN_LOST or len(body) != STATS_FIXED_BYTES + n_rows * STATS_ROW_BYTES + nl:
        raise VkresampleError(VKR_E_SERVER, 'body_len', 'malformed STATS_REPLY from the daemon')
    keys = ('uptime_ms', 'bytes_in', 'bytes_out', 'memfd_bytes_in', 'memfd_bytes_out', 'queued',
            'running', 'clients', 'workers', 'latency_p50_us', 'latency_p99_us', 'jobs_busy',
            'jobs_cancelled', 'frames_refused')
    st = dict(zip(keys, f[:14]))
    st['vulkan_lost'] = bool(flags & STATS_VULKAN_LOST)
    st.update(zip(('jobs_moved_to_cpu', 'connections_refused', 'connections_timed_out', 'accept_pauses'), f[17:21]))
    st['jobs'] = []
    for i in range(n_rows):
        op, backend, rsv, done, failed, in_flight = _STATS_ROW.unpack_from(
            body, STATS_FIXED_BYTES + i * STATS_ROW_BYTES)
        if rsv:
            raise VkresampleError(VKR_E_SERVER, 'reserved', 'STATS_REPLY row %d has reserved '
                                  'bytes set' % i)
        st['jobs'].append({'op': _OP_NAMES.get(op, op), 'backend': _BACKEND_NAMES.get(backend, backend),
                           'done': done, 'failed': failed, 'in_flight': in_flight})
    off = STATS_FIXED_BYTES + n_rows * STATS_ROW_BYTES
    st['device'] = bytes(body[off:off + nl]).decode('utf-8', 'replace')
    return st


# ------------------------------------------------------------------ memfd tensors
# Memfds are mapped with mmap(2) through ctypes rather than the mmap module: an mmap object keeps a
# dup of the descriptor for as long as it lives (and numpy views keep it alive), whereas here a
# mapping holds no descriptor at all.  The mapping is unmapped when the last numpy view of it is
# gone (each view's .base is the _Mapping), never under a live view.
_PROT_READ, _PROT_WRITE, _MAP_SHARED = 0x1, 0x2, 0x01
_libc = ctypes.CDLL(None, use_errno=True)
_c_mmap = getattr(_libc, 'mmap64', None) or _libc.mmap
_c_mmap.restype = ctypes.c_void_p
_c_mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                    ctypes.c_int64 if hasattr(_libc, 'mmap64') else ctypes.c_long)
_c_munmap = _libc.munmap
_c_munmap.restype = ctypes.c_int
_c_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value


class _Mapping:
    """A shared read-write mapping of a whole memfd, exposed to numpy (float32, flat) through
    __array_interface__.  fd: the owning MemfdTensor's descriptor while it is open, else -1 (a
    mapping with fd -1 is plain memory to the job path)."""
    __slots__ = ('addr', 'nbytes', 'fd')

    def __init__(self, fd, nbytes):
        self.addr, self.nbytes, self.fd = 0, 0, -1
        if nbytes:
            addr = _c_mmap(None, nbytes, _PROT_READ | _PROT_WRITE, _MAP_SHARED, fd, 0)
            if addr is None or addr == _MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, 'mmap of %d bytes: %s' % (nbytes, os.strerror(err)))
            self.addr, self.nbytes = addr, nbytes

    @property
    def __array_interface__(self):
        return {'version': 3, 'shape': (self.nbytes // 4,), 'typestr': '<f4',
                'data': (self.addr, False)}

    def array(self, shape):
        """A writable float32 view of the mapping's first prod(shape) elements."""
        n = 1
        for d in shape:
            n *= d
        if not self.nbytes:
            return np.zeros(shape, np.float32)
        return np.asarray(self)[:n].reshape(shape)

    def __del__(self, _munmap=_c_munmap):
        if self.addr:
            _munmap(self.addr, self.nbytes)
            self.addr = 0


def _mapping_of(a):
    """The _Mapping a numpy array's memory belongs to, or None."""
    base = a
    for _ in range(16):
        base = getattr(base, 'base', None)
        if base is None or isinstance(base, (_Mapping, _Lease)):
            return base
    return None


def _check_shape(shape, name='shape'):
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as e:
        raise VkresampleError(VKR_E_INVALID_ARG, name, '%s must be a sequence of integers: %s'
                              % (name, e)) from None
    if not 1 <= len(shape) <= MAX_RANK or any(not 0 <= d < (1 << 31) for d in shape):
        raise VkresampleError(VKR_E_INVALID_ARG, name, '%s %s: 1 to %d extents of 0 to 2^31 - 1'
                              % (name, shape, MAX_RANK))
    return shape


def _memfd_of(nbytes, name):
    """A new memfd of nbytes (not yet sealed)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, nbytes)
    except OSError:
        os.close(fd)
        raise
    return fd


def _memfd_copy(a, what):
    """A new sealed memfd holding the bytes of the contiguous array a (written, not mapped: each
    page is filled once, never zeroed first).  Returns the descriptor."""
    try:
        fd = _memfd_of(a.nbytes, 'vkresample-input')
        try:
            view = memoryview(a.reshape(-1)).cast('B')
            done = 0
            while done < a.nbytes:
                done += os.pwrite(fd, view[done:done + (1 << 30)], done)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, MEMFD_SEALS)
        except BaseException:
            os.close(fd)
            raise
    except OSError as e:
        raise VkresampleError(VKR_E_NOMEM, what, 'cannot copy %d bytes into a memfd: %s'
                              % (a.nbytes, e.strerror or e)) from e
    return fd


class _Closing:
    """close() on leaving a with block and when collected (subclasses define close)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class MemfdTensor(_Closing):
    """A float32 tensor in a sealed memfd (sealed against shrinking, growing and further seals),
    mapped read-write: ``.array`` is a C-contiguous numpy view of it (no copy).  Pass the tensor
    (or any C-contiguous view of ``.array``) to Client.interpolate / grid_sample / affine_grid /
    affine_sample as an input, and the daemon reads it from the memfd itself: no byte crosses the
    socket; pass it as ``out=`` and the daemon writes the output into it (its shape must then be
    the output's).  Reuse it for as many jobs as you like; it is not copied or re-created.

    close() (or the with-block's end) closes the descriptor; the memory stays valid for as long as
    numpy views of it exist and is unmapped with the last one.  Do not change an input while a job
    that reads it runs (this module's calls block, so that is only a concern across threads)."""

    def __init__(self, shape, data=None, name='vkresample-tensor'):
        shape = _check_shape(shape)
        nbytes = 4
        for d in shape:
            nbytes *= d
        try:
            fd = _memfd_of(nbytes, name)
        except OSError as e:
            raise VkresampleError(VKR_E_NOMEM, 'memfd', 'cannot create a memfd of %d bytes: %s'
                                  % (nbytes, e.strerror or e)) from e
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, MEMFD_SEALS)
            self._map = _Mapping(fd, nbytes)
        except OSError as e:
            os.close(fd)
            raise VkresampleError(VKR_E_NOMEM, 'memfd', 'cannot seal and map a memfd of %d bytes: %s'
                                  % (nbytes, e.strerror or e)) from e
        self._map.fd = fd
        self._fd = fd
        self.shape = shape
        self.nbytes = nbytes
        self.array = self._map.array(shape)
        if data is not None:
            self.array[...] = data

    @property
    def closed(self):
        return self._fd < 0

    def fileno(self):
        """The memfd (-1 once closed).  It stays this object's: do not close it yourself."""
        return self._fd

    def close(self):
        """Close the memfd (idempotent).  The mapping lives on while views of .array exist."""
        if self._fd >= 0:
            self._map.fd = -1
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __repr__(self):
        return 'MemfdTensor(shape=%s, fd=%d)' % (self.shape, self._fd)


def memfd_tensor(shape, data=None):
    """A new MemfdTensor of shape (zero-filled, or holding data)."""
    return MemfdTensor(shape, data)


# ------------------------------------------------------------------ the per-connection pool
# The default path for large numpy tensors (issue 18): sealed memfds made once per connection,
# mapped once, pre-faulted, and reused job after job, so that neither side page-faults or maps
# anew (the daemon keeps its mappings of a reused memfd: daemon/server.c, mapping_find).  An
# input is copied into a pooled buffer (one copy); an output is written by the daemon into one
# (RESULT_INTO_FD) and returned as a numpy array that views it (no copy): the array's base is a
# _Lease, and the buffer goes back to the pool only when the lease, that is the last view of the
# array, is collected.  A leased buffer is never handed out again while a view of it lives.
_MADV_POPULATE_WRITE = 23        # Linux 5.14: fault every page in, writable, in one call
_c_madvise = _libc.madvise
_c_madvise.restype = ctypes.c_int
_c_madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096
POOL_MAX_BYTES = 256 << 20       # Client(pool_bytes=...): the free buffers a connection keeps
POOL_MAX_BUFFERS = 8             # Client(pool_buffers=...): at most this many free buffers
POOL_MAX_OPEN_LEASES = 64        # results alive beyond this many give up their memfd (no reuse)


def _size_class(nbytes):
    """The capacity of the buffer that serves nbytes: a whole number of pages, rounded up to a
    quarter of nbytes' power of two (at most 25 % more), so jobs of one size share buffers."""
    n = max(int(nbytes), _PAGE)
    step = max(_PAGE, 1 << max(0, n.bit_length() - 3))
    return (n + step - 1) // step * step


class _PoolBuffer:
    """One pooled memfd (sealed like every memfd of this module) and its mapping."""
    __slots__ = ('fd', 'map', 'cap', 'pool', 'dead', 'gen')

    def __init__(self, pool, cap):
        fd = _memfd_of(cap, 'vkresample-pool')
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, MEMFD_SEALS)
            self.map = _Mapping(fd, cap)
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.cap, self.pool, self.dead, self.gen = fd, cap, pool, False, pool.gen
        if _c_madvise(self.map.addr, cap, _MADV_POPULATE_WRITE) != 0:
            # an older kernel: touch every page once (memfd pages read as zeros: writing one
            # keeps it zero and makes it present)
            np.asarray(self.map).view(np.uint8)[::_PAGE] = 0

    def view(self, shape):
        return self.map.array(shape)

    def destroy(self):
        """Close the memfd (the mapping goes with the last reference)."""
        self.dead = True
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class _Lease:
    """The base of a returned array that views a pooled buffer; its collection gives the buffer
    back to its pool.  Looks like a _Mapping to _mapping_of (addr, nbytes, fd), so a result
    passed back as an input travels by its memfd, with no copy."""
    __slots__ = ('buf', 'addr', 'nbytes', 'shape', '__weakref__')

    def __init__(self, buf, shape):
        self.buf, self.addr, self.shape = buf, buf.map.addr, tuple(shape)
        self.nbytes = buf.cap

    @property
    def fd(self):
        return self.buf.fd

    @property
    def __array_interface__(self):
        return {'version': 3, 'shape': self.shape, 'typestr': '<f4', 'data': (self.addr, False)}

    def __del__(self):
        buf, self.buf = self.buf, None
        if buf is not None:
            try:
                buf.pool.give_back(buf)
            except Exception:      # noqa: BLE001 - at interpreter exit, say
                pass


class _Pool:
    """The free pooled buffers of one connection of one process: at most max_buffers of them
    and max_bytes in all (over a bound, the least recently returned of a size with several free
    go first).  Buffers handed out are the caller's until give_back; a pool closed (the Client
    closed), or one in a forked child's memory, destroys what comes back."""

    def __init__(self, max_bytes=POOL_MAX_BYTES, max_buffers=POOL_MAX_BUFFERS):
        self.max_bytes, self.max_buffers = max_bytes, max_buffers
        self.pid = os.getpid()
        self.free = []               # least recently returned first
        self.free_bytes = 0
        self.leased = 0              # buffers handed out and not yet back
        self.created = 0             # buffers made (a test's and the curious' counter)
        self.closed = False
        self._lock = threading.Lock()   # taken without blocking by give_back (see there)
        self._pending = []               # (buffer, reuse) returned while the lock was taken
        self.gen = 0                     # fork()s of this process since the pool was made
        _POOLS.add(self)

    def take(self, nbytes):
        """A buffer of at least nbytes, the caller's until give_back: the smallest free one of
        its size class up to twice that (the most recently returned of them), else a new one
        of its size class."""
        cap = _size_class(nbytes)
        with self._lock:
            self._drain()
            best = None
            for i in range(len(self.free) - 1, -1, -1):
                got = self.free[i].cap
                if cap <= got <= 2 * cap and (best is None or got < self.free[best].cap):
                    best = i
            if best is not None:
                buf = self.free.pop(best)
                self.free_bytes -= buf.cap
                self.leased += 1
                buf.gen = self.gen
                return buf
            try:
                buf = _PoolBuffer(self, cap)
            except OSError as e:
                raise VkresampleError(VKR_E_NOMEM, 'memfd', 'cannot create, seal and map a pooled '
                                      'memfd of %d bytes: %s' % (cap, e.strerror or e)) from e
            self.created += 1
            self.leased += 1
            return buf

    def give_back(self, buf, reuse=True):
        """buf is no longer used by anyone: keep it for reuse, or destroy it (reuse False: a
        job whose end is not known may still write into it).  Called from a lease's __del__,
        that is from whatever thread drops an array, at any point, even inside take() (a
        collection it triggers): when the lock is taken the buffer waits in _pending for the
        next call, so nothing blocks and the free list never changes under take()."""
        if self.pid != os.getpid():      # the parent's pool in a forked child (its lock may
            self.leased -= 1                 # be held for ever, by a thread the child lacks)
            buf.destroy()
            return
        if not self._lock.acquire(blocking=False):
            self._pending.append((buf, reuse))
            return
        try:
            self._put(buf, reuse)
            self._drain()
        finally:
            self._lock.release()

    def _drain(self):
        while self._pending:
            self._put(*self._pending.pop())

    def _put(self, buf, reuse):
        self.leased -= 1
        if not reuse or buf.dead or buf.fd < 0 or self.closed or self.pid != os.getpid() \
                or buf.gen != self.gen or buf.cap > self.max_bytes or self.max_buffers <= 0:
            buf.destroy()
            return
        self.free.append(buf)
        self.free_bytes += buf.cap
        while self.free and (len(self.free) > self.max_buffers or self.free_bytes > self.max_bytes):
            # the least recently returned buffer of a size that has several free, so that many
            # results of one size dropped at once do not push out the buffer of another size
            # (the input's, typically); else the least recently returned of all
            caps = [b.cap for b in self.free]
            i = next((k for k, cap in enumerate(caps) if caps.count(cap) > 1), 0)
            old = self.free.pop(i)
            self.free_bytes -= old.cap
            old.destroy()

    def close(self):
        """Destroy the free buffers; those handed out are destroyed when they come back."""
        if self.pid != os.getpid():
            # a forked child's copy of the parent's pool: close this process's copies of its
            # descriptors, without the lock (a thread of the parent may have held it at fork())
            self.closed = True
            free, self.free, self.free_bytes = self.free, [], 0
            for buf in free + [b for b, _ in self._pending]:
                buf.destroy()
            self._pending = []
            return
        with self._lock:
            self.closed = True
            self._drain()
            free, self.free, self.free_bytes = self.free, [], 0
        for buf in free:
            buf.destroy()

    def stats(self):
        with self._lock:
            self._drain()
        return {'free': len(self.free), 'free_bytes': self.free_bytes, 'leased': self.leased,
                'created': self.created}


# Buffers in use when the process forks are never reused: a child may still hold its copy of an
# array that views one (MAP_SHARED), and the parent's next output must not land in it.
_POOLS = weakref.WeakSet()


def _after_fork_in_parent():
    for pool in list(_POOLS):
        pool.gen += 1


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_parent=_after_fork_in_parent)


def _lease_array(buf, shape):
    """A float32 array of shape viewing buf, which returns to its pool with the array's last view."""
    return np.asarray(_Lease(buf, shape))


# ------------------------------------------------------------------ client
class Client(_Closing):
    """A blocking connection to vkresampled.  path: the socket (None: default_socket_path()).
    timeout: seconds for each socket operation (None: wait forever).  Usable as a context
    manager; close() is idempotent.  Not thread-safe: one Client per thread.

    memfd_threshold: how tensors that are plain numpy arrays travel.  A number of bytes N (the
    default, MEMFD_THRESHOLD_BYTES: 1 MiB, as libvkresample; 0 means every tensor): a tensor of at
    least N bytes travels in shared memory, a smaller one inline through the socket (one copy
    each way: gathered by sendmsg from the array, read straight into the new result).  None:
    every tensor inline.  Whatever the threshold, a MemfdTensor (or a view of its .array) travels
    by its memfd without any copy, and ``out=`` takes the output into one.  The attribute can be
    changed between jobs; last_transport tells how the last job's tensors went.

    pool (the default True): the shared memory is a pool of sealed memfds of this connection,
    mapped once, pre-faulted and reused (so same-size jobs reuse the same memfds, and the daemon
    its mappings of them): an input is copied once into a pooled buffer ('pool' in
    last_transport); the daemon writes an output into a pooled buffer and the returned array
    views it, no copy ('pool').  That buffer is reused only once the array and every view of it
    are gone.  At most pool_buffers free buffers of pool_bytes in all are kept (a tensor bigger
    than pool_bytes goes as with pool=False); a forked child
    gets a pool of its own.  Results alive in a process that forks are shared memory (MAP_SHARED)
    with the child, as MemfdTensors are, and their buffers are never reused after the fork (so a
    child's copy does not change when the parent drops its own and runs more jobs).  pool=False: a new memfd per tensor instead ('memfd
    copy'), and outputs in a memfd the daemon makes ('daemon memfd'), mapped."""

    def __init__(self, path=None, timeout=None, memfd_threshold=MEMFD_THRESHOLD_BYTES, pool=True,
                 pool_bytes=POOL_MAX_BYTES, pool_buffers=POOL_MAX_BUFFERS):
        if memfd_threshold is not None and (isinstance(memfd_threshold, bool) or not isinstance(
                memfd_threshold, (int, np.integer)) or memfd_threshold < 0):
            raise VkresampleError(VKR_E_INVALID_ARG, 'memfd_threshold', 'memfd_threshold must be None '
                                  'or a number of bytes >= 0, not %r' % (memfd_threshold,))
        for name, value in (('pool_bytes', pool_bytes), ('pool_buffers', pool_buffers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise VkresampleError(VKR_E_INVALID_ARG, name, '%s must be a number >= 0, not %r'
                                      % (name, value))
        self.path = default_socket_path() if path is None else path
        self.timeout = timeout
        self.memfd_threshold = memfd_threshold
        self.pool = bool(pool)
        self._pool_limits = (int(pool_bytes), int(pool_buffers))
        self._pool = None
        self.last_backend = None      # 'vulkan' or 'cpu': what ran the last interpolate
        self.last_transport = None    # {'input': 'inline' | 'memfd' | 'memfd copy', ..., 'output':
        #                               'inline' | 'out memfd' | 'daemon memfd'} of the last job
        self._next_id = 1
        self._sock = None
        self._hdr = bytearray(HEADER_BYTES)
        self._desc = bytearray(RESULT_FIXED_BYTES)
        self._ancbuf = socket.CMSG_SPACE(MAX_FDS_PER_FRAME * 4)
        self._pid = None
        self._connect()

    def _connect(self):
        """Open this process's connection to self.path (VkresampleError VKR_E_IO if it fails)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise VkresampleError(VKR_E_IO, 'socket', 'cannot connect to the daemon at %s: %s'
                                  % (self.path, e.strerror or e)) from e
        self._sock = sock
        self._pid = os.getpid()
        self._next_id = 1
        if self._pool is not None:
            # the pool of the connection this one replaces (a forked child's copy of the
            # parent's): its buffers are the parent's shared memory, never this process's outputs
            self._pool.close()
        self._pool = _Pool(*self._pool_limits)

    # -------------------------------------------------------------- lifetime
    def close(self):
        """Close the connection (idempotent).  In a process forked after it was opened, only
        this process's copy of the descriptor is closed: the parent's connection is untouched."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()
        if self._pool is not None:
            self._pool.close()

    def pool_stats(self):
        """This connection's pool: {'free', 'free_bytes', 'leased', 'created'} (buffers kept
        free, their bytes, buffers in use by results alive or the job running, buffers made)."""
        self._own_connection()
        return self._pool.stats() if self._pool is not None else None

    def fileno(self):
        """The connection's descriptor (-1 once closed); in a forked child, the child's own."""
        self._own_connection()
        return self._sock.fileno() if self._sock is not None else -1

    def _own_connection(self):
        """After fork() the child's Client still holds the parent's socket: the daemon sees one
        connection, both processes would send the same request ids on it and each could read the
        other's reply.  So in a process other than the one that connected, drop the inherited
        descriptor (close(2) of this process's copy only: nothing is sent or read on it, the
        parent's connection stays as it was) and connect anew to the same path with the same
        timeout (memfd_threshold is an attribute: it carries over).  MemfdTensors made before the
        fork stay usable (the memfd is inherited), but their mapping is MAP_SHARED: the parent,
        the child and its siblings all see each other's writes to them."""
        if self._sock is not None and self._pid != os.getpid():
            sock, self._sock = self._sock, None
            sock.close()
            self._connect()

    # -------------------------------------------------------------- raw frames
    def _require_open(self):
        self._own_connection()
        if self._sock is None:
            raise VkresampleError(VKR_E_IO, '', 'the connection is closed')

    def _take_id(self):
        rid = self._next_id
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return rid

    def send_raw(self, data, fds=()):
        """Send bytes as they are (any frame, well-formed or not), passing the descriptors fds
        (SCM_RIGHTS) with the first byte.  Raises VkresampleError (VKR_E_IO) if the socket
        fails."""
        self._require_open()
        try:
            view = memoryview(data).cast('B')
            if fds:
                n = self._sock.sendmsg([view], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                 array.array('i', fds))])
                view = view[n:]
            self._sock.sendall(view)
        except OSError as e:
            refusal = self._refusal() if isinstance(e, (BrokenPipeError, ConnectionResetError)) else None
            if refusal is not None:
                raise refusal from None
            raise VkresampleError(VKR_E_IO, '', 'sending to the daemon failed: %s' % e) from e

    def _send_parts(self, parts, fds=()):
        """Send the bytes-like parts (contiguous) back to back as one stream, gathered by sendmsg
        (no concatenation; a small frame is one system call), the descriptors fds with the first
        byte.  Errors as send_raw's."""
        views = [v for v in (memoryview(p).cast('B') for p in parts) if v.nbytes]
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))] if fds else []
        try:
            while views:
                n = self._sock.sendmsg(views, anc)
                anc = []
                while views and n >= views[0].nbytes:
                    n -= views[0].nbytes
                    del views[0]
                if n:
                    views[0] = views[0][n:]
        except OSError as e:
            refusal = self._refusal() if isinstance(e, (BrokenPipeError, ConnectionResetError)) else None
            if refusal is not None:
                raise refusal from None
            raise VkresampleError(VKR_E_IO, '', 'sending to the daemon failed: %s' % e) from e

    def _refusal(self):
        """After a failed send: the daemon's ERROR with request_id 0 (it refused the connection
        itself and closed it) as a VkresampleError if one is waiting, else None.  Only peeks:
        the frame stays in the stream for recv_frame()."""
        try:
            data = self._sock.recv(HEADER_BYTES + MAX_CONTROL_BODY_BYTES, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except OSError:
            return None
        if len(data) < HEADER_BYTES:
            return None
        fields = _HEADER.unpack_from(data)
        if fields[2] != MSG_ERROR or fields[4] != 0 or len(data) != HEADER_BYTES + fields[-1]:
            return None
        try:
            code, field, message = unpack_error(data[HEADER_BYTES:])
        except VkresampleError:
            return None
        return VkresampleError(code, field, message)

    def _recv_exact(self, n, what):
        """Up to n bytes as a bytearray: fewer only when the stream ends."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                k = self._sock.recv_into(view[got:], min(n - got, 1 << 24))
            except InterruptedError:
                continue
            except OSError as e:
                raise VkresampleError(VKR_E_IO, '', 'reading %s failed: %s' % (what, e)) from e
            if k == 0:
                break
            got += k
        view.release()
        if got < n:
            del buf[got:]
        return buf

    def _recv_header(self):
        """The next 32 header bytes (fewer only when the stream ends) and the descriptors that
        came with them."""
        view, got, fds = memoryview(self._hdr), 0, []
        while got < HEADER_BYTES:
            try:
                n, anc, flags, _ = self._sock.recvmsg_into([view[got:]], self._ancbuf)
            except InterruptedError:
                continue
            except OSError as e:
                raise VkresampleError(VKR_E_IO, '', 'reading a frame header failed: %s' % e) from e
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array('i', payload[:len(payload) - len(payload) % 4]))
            if flags & socket.MSG_CTRUNC:
                for fd in fds:
                    os.close(fd)
                raise VkresampleError(VKR_E_SERVER, 'n_fds', 'more descriptors arrived than a '
                                      'frame may carry')
            if not n:
                break
            got += n
        return bytes(view[:got]), fds

    def _recv_into(self, views):
        """Fill the writable byte views, in order, from the stream (one recvmsg scatters into
        all of them when the bytes are there); VkresampleError(VKR_E_IO) if it ends first."""
        views = [v for v in views if v.nbytes]
        total = sum(v.nbytes for v in views)
        got = 0
        while views:
            try:
                k = self._sock.recvmsg_into(views)[0]
            except InterruptedError:
                continue
            except OSError as e:
                raise VkresampleError(VKR_E_IO, '', 'reading a frame body failed: %s' % e) from e
            if k == 0:
                raise VkresampleError(VKR_E_IO, '', 'the daemon closed the connection within a '
                                      'frame body (%d of %d bytes)' % (got, total))
            got += k
            while views and k >= views[0].nbytes:
                k -= views[0].nbytes
                del views[0]
            if k:
                views[0] = views[0][k:]

    def recv_frame(self, max_body=None):
        """Read one frame.  Returns a Frame (header fields, the body: bytes, or a bytearray
        when over 4 KiB, to avoid a copy; and fds: the descriptors that came with the header,
        now the caller's to close), or None if the daemon closed the connection at a frame
        boundary.  The header is not validated (tests look at what came).  The body is read
        only if body_len <= max_body (None: no limit, the whole body is allocated at once: pass
        a limit unless the peer is trusted), else VkresampleError(VKR_E_TOO_LARGE) is raised.
        A stream that ends inside a frame raises VkresampleError(VKR_E_IO)."""
        self._require_open()
        head, fds = self._recv_header()
        try:
            if not head:
                return None
            if len(head) < HEADER_BYTES:
                raise VkresampleError(VKR_E_IO, '', 'the daemon closed the connection within a '
                                      'frame header (%d of %d bytes)' % (len(head), HEADER_BYTES))
            fields = _HEADER.unpack(bytes(head))
            body_len = fields[-1]
            if max_body is not None and body_len > max_body:
                raise VkresampleError(VKR_E_TOO_LARGE, 'body_len', 'frame body of %d bytes is '
                                      'over the limit of %d' % (body_len, max_body))
            body = self._recv_exact(body_len, 'a frame body')
            if len(body) < body_len:
                raise VkresampleError(VKR_E_IO, '', 'the daemon closed the connection within a '
                                      'frame body (%d of %d bytes)' % (len(body), body_len))
        except VkresampleError:
            for fd in fds:
                os.close(fd)
            raise
        return Frame(*fields, bytes(body) if len(body) <= MAX_CONTROL_BODY_BYTES else body,
                     tuple(fds))

    # -------------------------------------------------------------- requests
    def _fail(self, code, field, message):
        """The connection is out of step: close it and raise."""
        self.close()
        raise VkresampleError(code, field, message)

    def _reply(self, request_id, expect_type, max_body, n_fds=0, into_shape=None):
        """Read the reply to request_id: its body (bytes, or a bytearray over 4 KiB).  A reply
        of expect_type must carry n_fds descriptors (any other none), returned to the caller as
        the second value, now its own.  into_shape: for an inline RESULT whose body is exactly
        max_body bytes, the output's shape: its bytes are then read straight into a new float32
        array (no intermediate buffer), returned third, with the body's first 96 bytes as the
        body.  Any other reply, or a body over max(max_body, 4096) bytes, is read and checked as
        it is.  The daemon's ERROR raises its code and message; a broken stream closes the
        connection and raises."""
        try:
            head, fds = self._recv_header()
        except VkresampleError:
            self.close()
            raise
        try:
            if not head:
                self._fail(VKR_E_IO, '', 'the daemon closed the connection without replying')
            if len(head) < HEADER_BYTES:
                self._fail(VKR_E_IO, '', 'the daemon closed the connection within a frame header '
                           '(%d of %d bytes)' % (len(head), HEADER_BYTES))
            magic, version, mtype, flags, rid, hdr_fds, reserved, body_len = _HEADER.unpack(head)
            limit = max(max_body, MAX_CONTROL_BODY_BYTES)
            if body_len > limit:
                self._fail(VKR_E_SERVER, 'body_len', 'reply frame body of %d bytes is over the '
                           'limit of %d' % (body_len, limit))
            want_fds = n_fds if mtype == expect_type and rid == request_id else 0
            if magic != MAGIC or version != VERSION or flags or hdr_fds != want_fds or reserved \
                    or len(fds) != want_fds:
                self._fail(VKR_E_SERVER, 'header', 'bad frame header from the daemon: magic 0x%08x '
                           'version %d flags %d n_fds %d (%d descriptors) reserved %d' % (
                               magic, version, flags, hdr_fds, len(fds), reserved))
            if into_shape is not None and mtype == MSG_RESULT and rid == request_id \
                    and body_len == max_body:
                out = np.empty(into_shape, np.float32)
                try:
                    self._recv_into([memoryview(self._desc), memoryview(out.reshape(-1)).cast('B')])
                except VkresampleError:
                    self.close()
                    raise
                return self._desc, fds, out
            body = self._recv_exact(body_len, 'a frame body')
            if len(body) < body_len:
                self._fail(VKR_E_IO, '', 'the daemon closed the connection within a frame body '
                           '(%d of %d bytes)' % (len(body), body_len))
            if len(body) <= MAX_CONTROL_BODY_BYTES:
                body = bytes(body)
            if rid == 0 and mtype == MSG_ERROR and request_id != 0:
                # request_id 0: the daemon refuses the connection itself (--allow-uid, a per-uid
                # cap, a stalled frame) and closes it after this ERROR
                try:
                    code, field, message = unpack_error(body)
                finally:
                    self.close()
                raise VkresampleError(code, field, message)
            if rid != request_id:
                self._fail(VKR_E_SERVER, 'request_id', 'reply carries request_id %d, expected %d'
                           % (rid, request_id))
            if mtype == MSG_ERROR:
                try:
                    code, field, message = unpack_error(body)
                except VkresampleError:
                    self.close()
                    raise
                raise daemon_error(code, field, message)
            if mtype != expect_type:
                self._fail(VKR_E_SERVER, 'type', 'reply has message type %d, expected %d'
                           % (mtype, expect_type))
            if mtype != MSG_RESULT and len(body) > MAX_CONTROL_BODY_BYTES:
                self._fail(VKR_E_SERVER, 'body_len', 'reply body of %d bytes' % len(body))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return body, fds, None

    def ping(self):
        """Round trip a PING.  Returns {'device': str, 'backends': [names],
        'backend_mask': int, 'default_backend': name}."""
        return self._control(MSG_PING, MSG_PONG, unpack_pong)

    def stats(self):
        """The daemon's counters (STATS): a dict with uptime_ms, clients, workers, queued,
        running, latency_p50_us, latency_p99_us, bytes_in, bytes_out (sockets), memfd_bytes_in,
        memfd_bytes_out, jobs_busy, jobs_cancelled, frames_refused, vulkan_lost,
        jobs_moved_to_cpu, connections_refused, connections_timed_out, accept_pauses, device, and
        jobs: one {'op', 'backend', 'done', 'failed', 'in_flight'} per (op, backend) that has seen
        a job."""
        return self._control(MSG_STATS, MSG_STATS_REPLY, unpack_stats)

    def _control(self, msg_type, reply_type, unpack):
        self._require_open()
        rid = self._take_id()
        self.send_raw(pack_header(msg_type, rid, 0))
        body = self._reply(rid, reply_type, MAX_CONTROL_BODY_BYTES)[0]
        try:
            return unpack(body)
        except VkresampleError:
            self.close()
            raise

    def memfd_tensor(self, shape, data=None):
        """A new MemfdTensor of shape (zero-filled, or holding a copy of data): a float32 tensor in
        a sealed memfd whose .array is a numpy view of it.  Pass it (or a C-contiguous view of its
        .array) as an input, or as out=, to any job: its memfd travels, never its bytes, so a
        tensor filled in place and reused for many jobs costs no copy and no new memfd.  Close it
        (or use it as a context manager) when done."""
        return MemfdTensor(shape, data)

    def interpolate(self, x, size=None, scale_factor=None, mode='nearest', align_corners=None,
                    recompute_scale_factor=None, antialias=False, backend='auto', out=None):
        """torch.nn.functional.interpolate(x, ...) on the daemon.  x: a float32 numpy array
        (N, C, W), (N, C, H, W) or (N, C, D, H, W), any byte order or strides (it is sent as
        contiguous little-endian), or a MemfdTensor.  size / scale_factor: a scalar (every spatial
        axis) or a sequence (one per axis).  Returns a new float32 array, or with out= (a
        MemfdTensor of the output's shape) writes the output into it and returns out.array.
        Raises VkresampleError: the daemon's code, field and message (PyTorch's wording) when it
        refuses the job."""
        self._require_open()
        x, x_fd = self._tensor_arg(x, 'input')
        if mode not in MODES:
            raise VkresampleError(VKR_E_NOT_IMPLEMENTED, 'mode', 'Input Error: unknown mode %r: '
                                  'expected one of %s' % (mode, ', '.join(MODES)))
        _check_backend(backend)
        _check_opt_bool(align_corners, 'align_corners')
        _check_opt_bool(recompute_scale_factor, 'recompute_scale_factor')
        size, scale_factor = _torch_interpolate_args(x.shape, size, scale_factor, mode,
                                                     align_corners, recompute_scale_factor,
                                                     antialias)

        def pack(where, result_storage):
            return pack_submit_body(
                x.shape, b'', mode=mode, size=size, scale_factor=scale_factor,
                align_corners=None if align_corners is None else bool(align_corners),
                recompute_scale_factor=(None if recompute_scale_factor is None
                                        else bool(recompute_scale_factor)),
                antialias=bool(antialias), backend=backend, data_bytes=x.nbytes,
                storage=STORAGE_INLINE if where[0] is None else STORAGE_MEMFD,
                fd_index=0 if where[0] is None else where[0][0],
                data_offset=None if where[0] is None else where[0][1],
                result_storage=result_storage)
        return self._job([(x, x_fd, 'input')], _expected_shape(x.shape, size, scale_factor), out,
                         pack, 'size and scale_factor both or neither given, or of the wrong length')

    def grid_sample(self, x, grid, mode='bilinear', padding_mode='zeros', align_corners=None,
                    backend='auto', out=None):
        """torch.nn.functional.grid_sample(x, grid, ...) on the daemon.  x: float32 (N, C, H, W)
        with grid (N, Ho, Wo, 2), or (N, C, D, H, W) with grid (N, Do, Ho, Wo, 3) (numpy arrays
        or MemfdTensors).  Returns a new float32 array (N, C, Ho, Wo) / (N, C, Do, Ho, Wo), or
        out.array with out= (a MemfdTensor of that shape).  An unknown mode or padding_mode
        raises VkresampleError(VKR_E_VALUE) here with PyTorch's ValueError text; what the daemon
        refuses raises its code and message (PyTorch's wording)."""
        self._require_open()
        _check_grid_modes(mode, padding_mode)
        _check_backend(backend)
        _check_opt_bool(align_corners, 'align_corners')
        x, x_fd = self._tensor_arg(x, 'input')
        grid, grid_fd = self._tensor_arg(grid, 'grid')

        def pack(where, result_storage):
            return pack_grid_body(OP_GRID_SAMPLE, [x.shape, grid.shape], mode=mode,
                                  padding_mode=padding_mode, align_corners=align_corners,
                                  backend=backend, memfds=where, result_storage=result_storage)
        return self._job([(x, x_fd, 'input'), (grid, grid_fd, 'grid')],
                         _grid_sample_shape(x.shape, grid.shape, mode), out, pack,
                         'grid_sampler() refuses these shapes')

    def affine_grid(self, theta, size, align_corners=None, backend='auto', out=None):
        """torch.nn.functional.affine_grid(theta, size, ...) on the daemon.  theta: float32
        (N, 2, 3) for size (N, C, H, W), (N, 3, 4) for size (N, C, D, H, W) (a numpy array or a
        MemfdTensor).  Returns a new float32 grid (N, H, W, 2) / (N, D, H, W, 3), or out.array
        with out= (a MemfdTensor of that shape).  A size of another length raises
        VkresampleError(VKR_E_NOT_IMPLEMENTED) here with PyTorch's NotImplementedError text."""
        self._require_open()
        _check_backend(backend)
        _check_opt_bool(align_corners, 'align_corners')
        theta, theta_fd = self._tensor_arg(theta, 'theta')
        sizes = _int_list(size, 'size')
        if len(sizes) not in (4, 5):
            raise VkresampleError(VKR_E_NOT_IMPLEMENTED, 'size',
                                  'affine_grid only supports 4D and 5D sizes, for 2D and 3D affine '
                                  'transforms, respectively. Got size {}.'.format(size))

        def pack(where, result_storage):
            return pack_grid_body(OP_AFFINE_GRID, [theta.shape], align_corners=align_corners,
                                  size=sizes, backend=backend, memfds=where,
                                  result_storage=result_storage)
        return self._job([(theta, theta_fd, 'theta')],
                         _affine_grid_shape(theta.shape, sizes, align_corners is True), out, pack,
                         'affine_grid refuses these arguments')

    def affine_sample(self, x, theta, size, mode='bilinear', padding_mode='zeros',
                      align_corners=None, backend='auto', out=None):
        """grid_sample(x, affine_grid(theta, (N, C) + size, align_corners), mode, padding_mode,
        align_corners) as one job on the daemon (the grid never crosses the socket).  x: float32
        (N, C, H, W) with theta (N, 2, 3) and size (Ho, Wo), or (N, C, D, H, W) with theta
        (N, 3, 4) and size (Do, Ho, Wo) (numpy arrays or MemfdTensors).  Returns a new float32
        array (N, C) + size, or out.array with out= (a MemfdTensor of that shape)."""
        self._require_open()
        _check_grid_modes(mode, padding_mode)
        _check_backend(backend)
        _check_opt_bool(align_corners, 'align_corners')
        x, x_fd = self._tensor_arg(x, 'input')
        theta, theta_fd = self._tensor_arg(theta, 'theta')
        sizes = _int_list(size, 'size')
        if len(sizes) > MAX_SPATIAL:
            raise VkresampleError(VKR_E_VALUE, 'size', 'affine_sample: size must give the %d output '
                                  'spatial extents of a %dD input, got %d value(s)'
                                  % (x.ndim - 2, x.ndim, len(sizes)))

        def pack(where, result_storage):
            return pack_grid_body(OP_AFFINE_SAMPLE, [x.shape, theta.shape], mode=mode,
                                  padding_mode=padding_mode, align_corners=align_corners,
                                  size=sizes, backend=backend, memfds=where,
                                  result_storage=result_storage)
        return self._job([(x, x_fd, 'input'), (theta, theta_fd, 'theta')],
                         _affine_sample_shape(x.shape, theta.shape, sizes, mode, align_corners is True),
                         out, pack, 'affine_sample refuses these arguments')

    # -------------------------------------------------------------- the job path
    @staticmethod
    def _tensor_arg(x, name):
        """(x as a float32 array of any byte order and strides (the job makes it contiguous
        little-endian as it sends or copies it), (fd, byte offset) of the open memfd it lies in
        or None).  x: a numpy array (or anything np.asarray takes) or a MemfdTensor;
        an array that is a C-contiguous float32 view into an open MemfdTensor keeps its memfd."""
        if isinstance(x, MemfdTensor):
            if x.closed:
                raise VkresampleError(VKR_E_INVALID_ARG, name, 'the MemfdTensor is closed')
            return x.array, (x.fileno(), 0)
        a = _as_f32(x, name, convert=False)
        if a.base is not None and a.nbytes and a.dtype == np.dtype('<f4') and a.flags.c_contiguous:
            m = _mapping_of(a)
            if m is not None and m.fd >= 0:
                off = a.__array_interface__['data'][0] - m.addr
                if 0 <= off and off + a.nbytes <= m.nbytes and off % 4 == 0:
                    return a, (m.fd, off)
        return a, None

    @staticmethod
    def _out_arg(out, want):
        """(the array to return, its memfd) for out=: a MemfdTensor, or a C-contiguous float32
        view that starts at byte 0 of an open MemfdTensor (the daemon writes from byte 0)."""
        if isinstance(out, MemfdTensor):
            if out.closed:
                raise VkresampleError(VKR_E_INVALID_ARG, 'out', 'the MemfdTensor is closed')
            arr, fd = out.array, out.fileno()
        else:
            m = _mapping_of(out) if isinstance(out, np.ndarray) else None
            if m is None or m.fd < 0 or out.dtype != np.dtype('<f4') or not out.flags.c_contiguous \
                    or out.__array_interface__['data'][0] != m.addr:
                raise VkresampleError(VKR_E_INVALID_ARG, 'out', 'out must be an open MemfdTensor '
                                      '(Client.memfd_tensor), or a C-contiguous float32 view that '
                                      'starts at its first byte')
            arr, fd = out, m.fd
        if want is not None and tuple(arr.shape) != tuple(want):
            raise VkresampleError(VKR_E_VALUE, 'out', 'out has shape %s; the output has shape %s'
                                  % (tuple(arr.shape), tuple(want)))
        return arr, fd

    def _job(self, tensors, want, out, pack, refused_why):
        """Choose each tensor's transport, pack the SUBMIT (pack(where, result_storage): where
        per tensor None for inline or (fd_index, byte offset)), run it and return the output.
        tensors: (array, (fd, offset) or None, name) in the op's order; want: the output shape
        PyTorch gives (None when it refuses the job)."""
        threshold = self.memfd_threshold
        out_bytes = None
        if want is not None:
            out_bytes = 4
            for d in want:
                out_bytes *= d
        if out is None and not any(t[1] for t in tensors) and (threshold is None or (
                all(t[0].nbytes < threshold for t in tensors)
                and (out_bytes is None or out_bytes < threshold))):
            # the common small-job path: everything inline
            self.last_transport = dict.fromkeys([t[2] for t in tensors] + ['output'], 'inline')
            return self._run_job(pack([None] * len(tensors), RESULT_INLINE),
                                 [_contiguous(t[0]) for t in tensors], want, refused_why)
        pool = self._pool if self.pool and threshold is not None else None
        pool_max = pool.max_bytes if pool is not None else -1   # bigger: fresh memfds, as pool=False
        fds, temp_fds, where, inline, transport, bufs = [], [], [], [], {}, []
        out_buf, done, ok = None, False, False
        try:
            for a, at, name in tensors:
                if at is not None:
                    transport[name] = 'memfd'
                elif threshold is not None and a.nbytes >= threshold:
                    if 0 < a.nbytes <= pool_max:
                        buf = pool.take(a.nbytes)
                        bufs.append(buf)
                        np.copyto(buf.view(a.shape), a)      # the input's one copy
                        at = (buf.fd, 0)
                        transport[name] = 'pool'
                    else:
                        a = _contiguous(a)
                        at = (_memfd_copy(a, name), 0)
                        temp_fds.append(at[0])
                        transport[name] = 'memfd copy'
                else:
                    transport[name] = 'inline'
                    where.append(None)
                    inline.append(_contiguous(a))
                    continue
                if at[0] not in fds:
                    fds.append(at[0])
                where.append((fds.index(at[0]), at[1]))
            result_storage, out_arr = RESULT_INLINE, None
            if out is not None:
                out_arr, out_fd = self._out_arg(out, want)
                for (a, at, name), w in zip(tensors, where):
                    if at is not None and at[0] == out_fd and at[1] < out_arr.nbytes:
                        raise VkresampleError(VKR_E_VALUE, 'out', 'out overlaps %s: the output '
                                              'would overwrite its own input' % name)
                fds.append(out_fd)
                result_storage = RESULT_INTO_FD
                transport['output'] = 'out memfd'
            elif out_bytes is not None and threshold is not None and 0 < out_bytes <= pool_max \
                    and out_bytes >= threshold:
                out_buf = pool.take(out_bytes)
                out_arr = out_buf.view(want)
                fds.append(out_buf.fd)
                result_storage = RESULT_INTO_FD
                transport['output'] = 'pool'
            elif out_bytes is not None and threshold is not None and out_bytes >= threshold \
                    and (pool is None or out_bytes > pool_max):
                result_storage = RESULT_DAEMON_FD
                transport['output'] = 'daemon memfd'
            else:
                transport['output'] = 'inline'
            fixed = pack(where, result_storage)
            self.last_transport = transport
            result = self._run_job(fixed, inline, want, refused_why, fds, temp_fds, result_storage,
                                   out_arr)
            done = ok = True
        except VkresampleError:
            done = True           # the daemon answered, or the connection (and its pool) is closed
            raise
        finally:
            for fd in temp_fds:
                os.close(fd)
            temp_fds.clear()
            for buf in bufs:
                pool.give_back(buf, reuse=done)
            if out_buf is not None and not ok:
                pool.give_back(out_buf, reuse=done)
        if out_buf is None:
            return result
        lease = _lease_array(out_buf, want)
        if pool.leased > POOL_MAX_OPEN_LEASES:
            out_buf.destroy()     # so many results alive: this one keeps its memory, not its memfd
        return lease

    def _run_job(self, fixed, arrays, want, refused_why, fds=(), temp_fds=None,
                 result_storage=RESULT_INLINE, out=None):
        """Send a SUBMIT (fixed: the body's descriptors; arrays: the inline contiguous '<f4'
        tensors, sent after it in order; fds: the frame's descriptors) and return the RESULT's
        tensor, checked against want (the output shape PyTorch gives, or None when PyTorch
        refuses the job: the daemon must then answer with an ERROR, raised as VkresampleError).
        temp_fds (a list) are closed, and the list emptied, once the frame is sent."""
        rid = self._take_id()
        total = len(fixed)
        for a in arrays:
            total += a.nbytes
        try:
            try:
                self._send_parts([_HEADER.pack(MAGIC, VERSION, MSG_SUBMIT, 0, rid, len(fds), 0, total),
                                  fixed] + [a.reshape(-1) for a in arrays], fds)
            finally:
                if temp_fds:
                    for fd in temp_fds:
                        os.close(fd)
                    temp_fds.clear()
        except VkresampleError:
            # The daemon may have refused the job and closed before reading all of it.
            try:
                self._reply(rid, MSG_RESULT, 0)
            except VkresampleError as e:
                if e.code not in (VKR_E_IO, VKR_E_SERVER):
                    self.close()
                    raise
            self.close()
            raise
        n_out = 1
        for d in want or ():
            n_out *= d
        if result_storage == RESULT_INLINE:
            body, rfds, arr = self._reply(rid, MSG_RESULT, RESULT_FIXED_BYTES + 4 * n_out,
                                          into_shape=want)
        else:
            body, rfds, arr = self._reply(rid, MSG_RESULT, RESULT_FIXED_BYTES,
                                          n_fds=1 if result_storage == RESULT_DAEMON_FD else 0)
        try:
            return self._decode_result(body, want, refused_why, result_storage, arr, out, rfds)
        finally:
            for fd in rfds:
                os.close(fd)

    def _decode_result(self, body, want, refused_why, result_storage=RESULT_INLINE, arr=None,
                       out=None, fds=()):
        """The output of a RESULT body (or of its first 96 bytes when arr holds the inline
        bytes already), checked against what the job asked for.  out: the out= array
        (RESULT_INTO_FD); fds: the daemon's output memfd (RESULT_DAEMON_FD; the caller closes)."""
        if want is None:
            self._fail(VKR_E_SERVER, 'output', 'the daemon returned a result for a job PyTorch '
                       'refuses (%s)' % refused_why)
        if len(body) < RESULT_FIXED_BYTES:
            self._fail(VKR_E_SERVER, 'body_len', 'RESULT body of %d bytes' % len(body))
        backend_used, r1, r2 = _RESULT_HEAD.unpack_from(body)
        desc = _TENSOR_DESC.unpack_from(body, 8)
        dtype, layout, rank, storage, r3 = desc[:5]
        shape, off, nbytes = desc[5:5 + MAX_RANK], desc[13], desc[14]
        want_storage = (STORAGE_INLINE, STORAGE_MEMFD, STORAGE_OUTPUT_FD)[
            (RESULT_INLINE, RESULT_DAEMON_FD, RESULT_INTO_FD).index(result_storage)]
        if r1 or r2 or r3 or dtype != DTYPE_F32 or layout != LAYOUT_CONTIGUOUS \
                or storage != want_storage or not 1 <= rank <= MAX_RANK \
                or any(shape[rank:]) or backend_used not in (BACKENDS['vulkan'], BACKENDS['cpu']):
            self._fail(VKR_E_SERVER, 'output', 'malformed RESULT descriptor from the daemon')
        shape = tuple(shape[:rank])
        n = 1
        for d in want:
            n *= d
        body_len = RESULT_FIXED_BYTES + nbytes if arr is not None else len(body)
        inline = storage == STORAGE_INLINE
        if shape != want or off != (RESULT_FIXED_BYTES if inline else 0) or nbytes != 4 * n \
                or body_len != RESULT_FIXED_BYTES + (nbytes if inline else 0):
            self._fail(VKR_E_SERVER, 'output', 'the daemon\'s result (shape %s, %d bytes) does not '
                       'match the expected output shape %s' % (shape, nbytes, want))
        self.last_backend = _BACKEND_NAMES[backend_used]
        if storage == STORAGE_OUTPUT_FD:
            return out
        if storage == STORAGE_MEMFD:
            return self._map_result(fds[0], nbytes, want)
        if arr is not None:
            return arr
        out = np.frombuffer(body, dtype='<f4', count=n, offset=RESULT_FIXED_BYTES).reshape(want)
        out = out.astype(np.float32, copy=False)
        return out if out.flags.writeable else out.copy()

    def _map_result(self, fd, nbytes, want):
        """The daemon's output memfd as a float32 array of shape want, mapped (not copied) once it
        is proven that no access can fault: sealed against shrinking, long enough."""
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            size = os.fstat(fd).st_size
        except OSError as e:
            self._fail(VKR_E_SERVER, 'output', 'the daemon\'s output descriptor is not a memfd: %s' % e)
        if not seals & fcntl.F_SEAL_SHRINK or size < nbytes:
            self._fail(VKR_E_SERVER, 'output', 'the daemon\'s output memfd (%d bytes, seals 0x%x) is '
                       'not sealed against shrinking or shorter than the output (%d bytes)'
                       % (size, seals, nbytes))
        try:
            return _Mapping(fd, nbytes).array(want)
        except OSError as e:
            raise VkresampleError(VKR_E_NOMEM, 'output', 'cannot map the %d-byte output memfd: %s'
                                  % (nbytes, e.strerror or e)) from e


# ------------------------------------------------------------------ argument checks
def _as_f32(x, name, convert=True):
    """x as a contiguous little-endian float32 array of rank 1..MAX_RANK (VkresampleError if it
    is not float32 or has a rank the wire cannot carry).  A torch tensor is read through
    numpy; one of another dtype (bfloat16, float16, ...) is refused by name, before numpy
    would fail on it with a bare TypeError."""
    dtype = getattr(x, 'dtype', None)
    if type(x).__module__.startswith('torch') and str(dtype).startswith('torch.') \
            and str(dtype) != 'torch.float32':
        raise VkresampleError(VKR_E_DTYPE, name + '.dtype', "dtype %s is not supported: "
                              "vkresample takes float32 (convert with .float())" % dtype)
    try:
        x = np.asarray(x)
    except Exception as e:   # noqa: BLE001 - a tensor on a GPU, one that requires grad, ...
        raise VkresampleError(VKR_E_VALUE, name, 'cannot read %s as a numpy array: %s'
                              % (_tp_name(x), e)) from None
    if x.dtype.kind != 'f' or x.dtype.itemsize != 4:
        raise VkresampleError(VKR_E_DTYPE, name + '.dtype', "dtype %s is not supported: "
                              "vkresample takes float32" % x.dtype)
    if not 1 <= x.ndim <= MAX_RANK:
        raise VkresampleError(VKR_E_VALUE, name + '.rank', '%s has %d dimensions: the protocol '
                              'carries 1 to %d' % (name, x.ndim, MAX_RANK))
    return np.ascontiguousarray(x, dtype='<f4') if convert else x


def _contiguous(a):
    """a as a C-contiguous little-endian float32 array (itself when it is one)."""
    return np.ascontiguousarray(a, dtype='<f4')


def _check_backend(backend):
    if backend not in BACKENDS:
        raise VkresampleError(VKR_E_VALUE, 'backend', 'backend %r is not one of %s'
                              % (backend, ', '.join(BACKENDS)))


def _check_opt_bool(value, name):
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise VkresampleError(VKR_E_VALUE, name, '%s must be None, False or True, not %r'
                              % (name, value))


def _check_grid_modes(mode, padding_mode):
    """grid_sample's own checks, in its order and words (torch.nn.functional.grid_sample)."""
    if not isinstance(mode, str) or mode not in GRID_MODES:
        raise VkresampleError(VKR_E_VALUE, 'mode', "nn.functional.grid_sample(): expected mode to be "
                              "'bilinear', 'nearest' or 'bicubic', but got: '{}'".format(mode))
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise VkresampleError(VKR_E_VALUE, 'padding_mode', "nn.functional.grid_sample(): expected "
                              "padding_mode to be 'zeros', 'border', or 'reflection', but got: "
                              "'{}'".format(padding_mode))


def _int_list(value, name):
    try:
        values = [int(v) for v in (np.asarray(value).reshape(-1) if isinstance(value, np.ndarray)
                                   else value)]
    except (TypeError, ValueError) as e:
        raise VkresampleError(VKR_E_VALUE, name, '%s must be a sequence of integers: %s'
                              % (name, e)) from None
    if any(not -(1 << 63) <= v < (1 << 63) for v in values):
        raise VkresampleError(VKR_E_VALUE, name, '%s %s does not fit in 64 bits' % (name, values))
    return values


# ------------------------------------------------------------------ PyTorch's size / scale_factor rules
# torch 1.13's F.interpolate normalizes size / scale_factor in Python and hands them to a C++
# op whose argument parser checks their types; what either refuses raises TypeError (or, for
# the Python arithmetic of the recompute path, the exception Python raises) before any job
# exists.  These functions give the same verdicts and the same words, so a size of (3.0, 3.0)
# or (True, 3) is refused here as torch refuses it instead of being truncated on the wire.
# What torch refuses later (ValueError, NotImplementedError, RuntimeError) the daemon decides.
_HEAPTYPE = 1 << 9      # Py_TPFLAGS_HEAPTYPE: CPython's tp_name is "module.name" only for static types


def _tp_name(obj):
    """Py_TYPE(obj)->tp_name, as torch's parser prints it: 'float', 'numpy.float64', 'Tensor'."""
    t = type(obj)
    if t.__flags__ & _HEAPTYPE or t.__module__ == 'builtins':
        return t.__name__
    return '%s.%s' % (t.__module__, t.__name__)


def _is_index(obj):
    """THPUtils_checkIndex (and the integral one-element tensor rule): an int-like, not a bool.
    The test torch's parser puts to the first element of a 'tuple of SymInts'."""
    if isinstance(obj, bool):
        return False
    if _is_torch_int_scalar(obj):
        return True
    try:
        operator.index(obj)
        return True
    except Exception:   # noqa: BLE001 - whatever __index__ raises means "not an index"
        return False


def _is_double(obj):
    """The first-element test of a 'tuple of floats': a Python number or a numpy scalar."""
    return isinstance(obj, (int, float, complex, np.integer, np.bool_, np.floating,
                            np.complexfloating))


def _as_double(obj):
    """PyFloat_AsDouble: __float__, else __index__ (a str is not a number here)."""
    as_float = getattr(type(obj), '__float__', None)
    if as_float is not None:
        return float(as_float(obj))
    return float(operator.index(obj))


def _interp_op(mode, dim, antialias):
    """(the C++ op F.interpolate calls, its 'scales' parameters, takes align_corners) or None
    where F.interpolate raises before calling one (the daemon refuses those)."""
    scales = {1: 'float scales', 2: 'float scales_h, float scales_w',
              3: 'float scales_d, float scales_h, float scales_w'}.get(dim)
    if mode in ('nearest', 'nearest-exact') and dim in (1, 2, 3):
        return ('upsample_nearest%dd' if mode == 'nearest' else '_upsample_nearest_exact%dd') % dim, scales, False
    if mode == 'area' and dim in (1, 2, 3):
        return 'adaptive_avg_pool%dd' % dim, None, False
    linear = {'linear': 1, 'bilinear': 2, 'trilinear': 3, 'bicubic': 2}
    if linear.get(mode) == dim:
        name = {'linear': 'upsample_linear1d', 'bilinear': 'upsample_bilinear2d',
                'trilinear': 'upsample_trilinear3d', 'bicubic': 'upsample_bicubic2d'}[mode]
        if antialias:
            name = '_' + name + '_aa'
        return name, scales, True
    return None


def _parse_list(values, op, param, kind, pos_word):
    """torch's getSymIntList / getDoublelist: every element converted, or TypeError naming the
    first that is not (1-based position, CPython's type name)."""
    out = []
    for i, v in enumerate(values):
        try:
            if kind == 'int':
                n = operator.index(v)
                if not -(1 << 63) <= n < (1 << 63):
                    raise OverflowError
                out.append(int(n))
            else:
                out.append(_as_double(v))
        except Exception:   # noqa: BLE001 - torch turns every unpacking failure into this TypeError
            raise VkresampleTypeError(
                VKR_E_VALUE, 'size' if kind == 'int' else 'scale_factor',
                "%s(): argument '%s' must be %s, but found element of type %s at pos %d"
                % (op, param, pos_word, _tp_name(v), i + 1)) from None
    return out


def _torch_interpolate_args(in_shape, size, scale_factor, mode, align_corners,
                            recompute_scale_factor, antialias):
    """(size, scale_factor) as numbers for the wire (an int / float or a list of them, as given),
    after torch 1.13's own type checks of F.interpolate; raises VkresampleTypeError (or the
    exception Python's arithmetic raises on the recompute path) where torch raises before any
    kernel runs.  Arguments F.interpolate refuses with ValueError / NotImplementedError before
    those checks come back unchanged but for their types, for the daemon to refuse in torch's
    words."""
    dim = len(in_shape) - 2
    seq = (list, tuple)

    def loose(value, kind):          # the daemon refuses these: make them carriable, nothing more
        def conv(v):
            if kind == 'float':
                return float(v)
            return min(max(int(v), -(1 << 63)), (1 << 63) - 1)
        def conv_or_0(v):
            try:
                return conv(v)
            except Exception:   # noqa: BLE001
                return 0
        if value is None:
            return None
        if isinstance(value, seq):      # (an empty one as one 0: the daemon's earlier check fires)
            return [conv_or_0(v) for v in value[:MAX_SPATIAL]] or [0]
        return conv_or_0(value)

    def daemon_decides():
        return loose(size, 'int'), loose(scale_factor, 'float')

    # F.interpolate's checks, in its order; the daemon words the ValueErrors it can see itself
    if mode in ('nearest', 'area', 'nearest-exact') and align_corners is not None:
        return daemon_decides()
    if (size is None) == (scale_factor is None):
        return daemon_decides()
    given, what = (size, 'output') if size is not None else (scale_factor, 'scale_factor')
    if isinstance(given, seq) and len(given) != dim:
        # the wire cannot tell a tuple from a list or carry any length: decided here
        raise VkresampleValueError(
            VKR_E_VALUE, 'size' if size is not None else 'scale_factor',
            'Input and %s must have the same number of spatial dimensions, but got input with '
            'spatial dimensions of %s and %s %s. Please provide input tensor in (N, C, d1, d2, '
            '...,dK) format and %s in %s format.'
            % (what, list(in_shape[2:]), 'output size of' if size is not None else
               'scale_factor of shape', '{}'.format(given),
               'output size' if size is not None else 'scale_factor',
               '(o1, o2, ...,oK)' if size is not None else '(s1, s2, ...,sK)'))
    if recompute_scale_factor and size is not None:
        return daemon_decides()

    output_size = None if size is None else (size if isinstance(size, seq) else [size] * dim)
    scale_factors = (None if scale_factor is None else
                     (scale_factor if isinstance(scale_factor, seq) else [scale_factor] * dim))
    recompute = scale_factors is not None and (recompute_scale_factor or mode == 'area')
    if recompute:
        # F.interpolate's own arithmetic: its exceptions are torch's
        try:
            [int(math.floor(float(in_shape[i + 2]) * scale_factors[i])) for i in range(dim)]
        except Exception as e:   # noqa: BLE001 - torch raises exactly what this raises
            err = _python_error_type(type(e))
            raise err(VKR_E_VALUE, 'scale_factor', str(e)) from None
    op = _interp_op(mode, dim, bool(antialias))
    if antialias and not (mode in ('bilinear', 'bicubic') and len(in_shape) == 4) or op is None:
        return daemon_decides()
    if recompute:
        return None, ([float(v) for v in scale_factor] if isinstance(scale_factor, seq)
                      else float(scale_factor))

    name, scales, has_ac = op
    if mode == 'area':
        ints = 'tuple of SymInts' if dim == 2 else 'tuple of ints'
        if dim > 1:     # F.adaptive_avg_pool2d/3d: None keeps the input's size, always a list
            output_size = [d if v is None else v for v, d in zip(output_size, in_shape[2:])]
        first = output_size[0] if output_size else None
        if output_size and not _is_index(first):
            raise VkresampleTypeError(VKR_E_VALUE, 'size', "%s(): argument 'output_size' (position 2) "
                                      "must be %s, not %s" % (name, ints, _tp_name(output_size)))
        sizes = _parse_list(output_size, name, 'output_size', 'int', ints)
        return sizes if isinstance(size, seq) else sizes[0], None

    def combination():
        ac, ac_param = ('bool, ', 'bool align_corners, ') if has_ac else ('', '')
        os_t, sf_t = _tp_name(output_size), _tp_name(scale_factors)
        return ("%s() received an invalid combination of arguments - got (Tensor, %s, %s%s), but "
                "expected one of:\n"
                " * (Tensor input, tuple of SymInts output_size, %stuple of floats scale_factors)\n"
                "      didn't match because some of the arguments have invalid types: "
                "(Tensor, !%s!, %s!%s!)\n"
                " * (Tensor input, tuple of SymInts output_size, %s%s, *, Tensor out)\n"
                % (name, os_t, ac, sf_t, ac_param, os_t, ac, sf_t, ac_param, scales))

    if output_size is not None:
        if output_size and not _is_index(output_size[0]):
            raise VkresampleTypeError(VKR_E_VALUE, 'size', combination())
        sizes = _parse_list(output_size, name, 'output_size', 'int', 'tuple of SymInts')
        return sizes if isinstance(size, seq) else sizes[0], None
    if scale_factors and not _is_double(scale_factors[0]):
        raise VkresampleTypeError(VKR_E_VALUE, 'scale_factor', combination())
    scales_f = _parse_list(scale_factors, name, 'scale_factors', 'float', 'tuple of floats')
    return None, scales_f if isinstance(scale_factor, seq) else scales_f[0]


_ERROR_TYPES = {TypeError: VkresampleTypeError, ValueError: VkresampleValueError}


def _python_error_type(base):
    """A VkresampleError that is also the Python exception `base` torch raised (one class per
    base, made on first use)."""
    if base not in _ERROR_TYPES:
        _ERROR_TYPES[base] = type('Vkresample' + base.__name__, (VkresampleError, base), {})
    return _ERROR_TYPES[base]


def _is_torch_int_scalar(obj):
    """A one-element integral (or bool) torch tensor: torch's parser takes it as an int."""
    t = type(obj)
    if t.__name__ != 'Tensor' or not t.__module__.startswith('torch'):
        return False
    try:
        return obj.numel() == 1 and not obj.is_floating_point() and not obj.is_complex()
    except Exception:   # noqa: BLE001
        return False


# ------------------------------------------------------------------ expected output shapes
# The same rules as proto/plan.c: the shape PyTorch gives, or None where it refuses.
def _grid_sample_shape(in_shape, grid_shape, mode):
    dim = len(in_shape) - 2
    if len(in_shape) not in (4, 5) or len(grid_shape) != len(in_shape):
        return None
    if in_shape[0] != grid_shape[0] or grid_shape[-1] != dim or any(d <= 0 for d in in_shape[2:]):
        return None
    if len(in_shape) == 5 and mode == 'bicubic':
        return None
    return tuple(int(d) for d in in_shape[:2]) + tuple(int(d) for d in grid_shape[1:-1])


def _affine_grid_shape(theta_shape, size, align_corners):
    if len(size) not in (4, 5):
        return None
    sp = len(size) - 2
    if len(theta_shape) != 3 or theta_shape[1] != sp or theta_shape[2] != sp + 1:
        return None
    if not (align_corners and min(size[2:]) == 1) and min(size) <= 0:
        return None
    if size[0] < 0 or theta_shape[0] != size[0]:
        return None
    return (int(size[0]),) + tuple(int(d) for d in size[2:]) + (sp,)


def _affine_sample_shape(in_shape, theta_shape, size, mode, align_corners):
    if len(in_shape) not in (4, 5) or len(size) != len(in_shape) - 2:
        return None
    full = [int(in_shape[0]), int(in_shape[1])] + list(size)
    if _affine_grid_shape(theta_shape, full, align_corners) is None:
        return None
    if any(d <= 0 for d in in_shape[2:]) or (len(in_shape) == 5 and mode == 'bicubic'):
        return None
    return tuple(full)


def _expected_shape(in_shape, size, scale_factor):
    """The output shape F.interpolate gives for these arguments (size, else floor(n * s) in
    double precision), or None when PyTorch refuses them (both or neither given, a count that
    is neither 1 nor the number of spatial axes): the daemon must then answer with an ERROR."""
    spatial = [int(d) for d in in_shape[2:]]
    dim = len(spatial)
    if (size is None) == (scale_factor is None) or dim < 1:
        return None
    values = size if size is not None else scale_factor
    values = values if isinstance(values, list) else [values] * dim
    if len(values) != dim:
        return None
    if size is not None:
        out = [int(v) for v in values]
    else:
        out = []
        for n, s in zip(spatial, values):
            o = float(n) * float(s)
            if o != o or abs(o) >= 9.2e18:
                return None
            out.append(int(math.floor(o)))
    return tuple(int(d) for d in in_shape[:2]) + tuple(out)
