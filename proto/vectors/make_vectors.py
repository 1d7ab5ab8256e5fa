#!/usr/bin/python3
"""Writes proto/vectors/*.hex, the golden frames, straight from PROTOCOL.md's tables with plain
struct.pack: independent of both codecs (proto/proto.c, client/python/vkresample.py), which
tests/unit/test_vectors.c and tests/unit/test_vectors.py check against these files byte for byte.
Rerun it only when the protocol changes on purpose, and review the diff.

usage: make_vectors.py [OUTDIR]          (default: the directory of this script)"""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
def hdr(t, rid, blen, nfds=0):
    return struct.pack('<IHHIIIIQ', 0x31524B56, 1, t, 0, rid, nfds, 0, blen)
def desc(shape, storage, fd_index, off, nbytes):
    sh = list(shape) + [0] * (8 - len(shape))
    return struct.pack('<HHBBH8qQQ', 1, 1, len(shape), storage, fd_index, *sh, off, nbytes)
def f32(vals):
    return struct.pack('<%df' % len(vals), *vals)
def write(name, comment, frame, notes=()):
    lines = ['# ' + l for l in comment.strip().split('\n')]
    for i in range(0, len(frame), 16):
        chunk = frame[i:i + 16]
        lines.append(' '.join('%02x' % b for b in chunk))
    with open(os.path.join(OUT, name), 'w') as f:
        f.write('\n'.join(lines) + '\n')

# 1 PING
write('ping.hex', 'PING, request_id 1: a header and no body.', hdr(1, 1, 0))
# 2 PONG
name = b'llvmpipe (LLVM 15.0.6, 256 bits)'
body = struct.pack('<IHH', 6, 1, len(name)) + name
write('pong.hex', 'PONG to request 1: backend_mask 6 (vulkan, cpu), default_backend 1 (vulkan),\ndevice "llvmpipe (LLVM 15.0.6, 256 bits)".', hdr(2, 1, len(body)) + body)
# 3 SUBMIT interpolate (PROTOCOL.md worked example)
params = struct.pack('<HBBBBBB3q3d', 1, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0.0, 0.0, 0.0)
body = struct.pack('<HHHH', 1, 2, 1, 0) + params + desc([1, 2, 2, 2], 0, 0, 152, 32) + f32(range(8))
write('submit_interpolate.hex', "SUBMIT, request 7: F.interpolate(x, size=4, mode='nearest'), x = arange(8) as (1, 2, 2, 2),\nbackend cpu, inline (PROTOCOL.md's worked example).", hdr(3, 7, len(body)) + body)
# 4 SUBMIT grid_sample
gp = lambda mode, pad, ac, size: struct.pack('<HHBBH5qQ', mode, pad, ac, len(size), 0, *(list(size) + [0] * (5 - len(size))), 0)
grid = [-1.0, -1.0, 0.5, 0.25]
body = struct.pack('<HHHH', 2, 2, 2, 0) + gp(1, 1, 2, []) + desc([1, 1, 2, 2], 0, 0, 240, 16) + desc([1, 1, 2, 2], 0, 0, 256, 16) + f32([0, 1, 2, 3]) + f32(grid)
write('submit_grid_sample.hex', "SUBMIT, request 8: F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros',\nalign_corners=True), x = arange(4) as (1, 1, 2, 2), grid (1, 1, 2, 2) = [[-1, -1], [0.5, 0.25]],\nbackend cpu; the two tensors' bytes back to back after both descriptors.", hdr(3, 8, len(body)) + body)
# 5 SUBMIT affine_grid
body = struct.pack('<HHHH', 3, 0, 1, 0) + gp(0, 0, 1, [1, 1, 2, 3]) + desc([1, 2, 3], 0, 0, 152, 24) + f32([1, 0, 0, 0, 1, 0])
write('submit_affine_grid.hex', "SUBMIT, request 9: F.affine_grid(theta, size=(1, 1, 2, 3), align_corners=False), theta the\nidentity (1, 2, 3), backend auto; mode and padding_mode 0.", hdr(3, 9, len(body)) + body)
# 6 SUBMIT affine_sample
body = struct.pack('<HHHH', 4, 1, 2, 0) + gp(2, 2, 0, [3, 3]) + desc([1, 1, 2, 2], 0, 0, 240, 16) + desc([1, 2, 3], 0, 0, 256, 24) + f32([0, 1, 2, 3]) + f32([1, 0, 0, 0, 1, 0])
write('submit_affine_sample.hex', "SUBMIT, request 10: grid_sample(x, affine_grid(theta, (1, 1, 3, 3)), mode='nearest',\npadding_mode='border', align_corners=None), x = arange(4) as (1, 1, 2, 2), theta the identity,\nsize (3, 3), backend vulkan.", hdr(3, 10, len(body)) + body)
# 7 SUBMIT with memfds
body = struct.pack('<HHHH', 2, 2, 2, 1) + gp(1, 1, 0, []) + desc([1, 3, 64, 64], 1, 0, 4096, 49152) + desc([1, 32, 32, 2], 0, 0, 240, 8192) + f32([0.0] * 2048)
write('submit_memfd.hex', "SUBMIT, request 11, n_fds 2: F.grid_sample of a (1, 3, 64, 64) input held in the frame's\ndescriptor 0 from byte 4096 (storage 1, fd_index 0), with an inline (1, 32, 32, 2) grid of zeros\n(its bytes start right after the descriptors: the memfd tensor takes none); result_storage 1:\nthe output goes into the frame's last descriptor (descriptor 1), from byte 0.", hdr(3, 11, len(body), 2) + body)
# 8 RESULT inline
out = []
for ch in range(2):
    for r in range(4):
        for c in range(4):
            out.append(float(ch * 4 + (r // 2) * 2 + c // 2))
body = struct.pack('<HHI', 2, 0, 0) + desc([1, 2, 4, 4], 0, 0, 96, 128) + f32(out)
write('result_inline.hex', 'RESULT to request 7 (submit_interpolate.hex): backend_used 2 (cpu), output (1, 2, 4, 4)\ninline at offset 96: every input value repeated 2 x 2.', hdr(4, 7, len(body)) + body)
# 9 RESULT memfd
body = struct.pack('<HHI', 1, 0, 0) + desc([1, 3, 32, 32], 1, 0, 0, 12288)
write('result_memfd.hex', "RESULT to request 12, n_fds 1: backend_used 1 (vulkan), output (1, 3, 32, 32) in a memfd of\nthe daemon's (storage 1, fd_index 0, from byte 0), passed with this frame; the body is the 96\nfixed bytes only.", hdr(4, 12, len(body), 1) + body)
# 10 RESULT output fd
body = struct.pack('<HHI', 2, 0, 0) + desc([1, 3, 32, 32], 2, 0, 0, 12288)
write('result_output_fd.hex', "RESULT to request 11 (submit_memfd.hex): backend_used 2 (cpu), output (1, 3, 32, 32) written\ninto the output memfd the SUBMIT supplied (storage 2, from byte 0); no descriptor, no data.", hdr(4, 11, len(body)) + body)
# 11 ERROR
field = b'align_corners'
msg = b"align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear"
body = struct.pack('<iHH', -5, len(field), len(msg)) + field + msg
write('error.hex', 'ERROR to request 13: VKR_E_VALUE (-5), field "align_corners", PyTorch\'s ValueError text as the\nmessage (F.interpolate(x, size=3, mode=\'nearest\', align_corners=True)).', hdr(5, 13, len(body)) + body)
# 12 ERROR busy
field = b'queue'
msg = b'client queue full: 64 jobs in flight on this connection (--max-client-jobs 64)'
body = struct.pack('<iHH', -16, len(field), len(msg)) + field + msg
write('error_busy.hex', 'ERROR to request 14: VKR_E_BUSY (-16), field "queue": a queue limit was full when the SUBMIT\narrived; its body was read and dropped, the connection carries on.', hdr(5, 14, len(body)) + body)
# 13 CANCEL
write('cancel.hex', 'CANCEL of request 8: empty body; the header\'s request_id names the job.', hdr(6, 8, 0))
# 14 STATS
write('stats.hex', 'STATS, request 15: empty body.', hdr(7, 15, 0))
# 15 STATS_REPLY
name = b'cpu'
fixed = struct.pack('<QQQQQIIIIQQQQQHHIQQQQ', 3723004, 1048576, 2097152, 4096, 8192, 2, 1, 3, 4, 250, 12000, 5, 6, 7, 2, len(name), 1,
                    8, 9, 10, 11)
rows = struct.pack('<HHIQQQ', 1, 2, 0, 100, 3, 2) + struct.pack('<HHIQQQ', 2, 2, 0, 40, 1, 1)
body = fixed + rows + name
write('stats_reply.hex', 'STATS_REPLY to request 15: uptime 3723004 ms, 1 MiB in, 2 MiB out, 4096 / 8192 memfd bytes,\n2 queued, 1 running, 3 clients, 4 workers, p50 250 us, p99 12000 us, 5 busy, 6 cancelled,\n7 refused frames; flags 1 (the Vulkan device was lost), 8 jobs moved to the CPU, 9 connections\nrefused, 10 timed out, 11 accept pauses; rows (interpolate, cpu: 100 done, 3 failed, 2 in flight)\nand (grid_sample, cpu: 40, 1, 1); device "cpu".', hdr(8, 15, len(body)) + body)
