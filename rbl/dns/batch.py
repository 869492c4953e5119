"""Batched UDP: many datagrams per system call with recvmmsg(2) and sendmmsg(2).

Python's socket module offers one datagram per call; on the DNS hot path the
two calls per query cost as much as answering it. Through ctypes, one
recvmmsg fills up to BATCH preallocated buffers and one sendmmsg sends every
reply back to its sender's address, as the kernel wrote it. Linux only; where
libc lacks these calls :func:`available` says so and the server reads one
datagram at a time.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
from collections.abc import Callable
from ctypes import POINTER, Structure, c_int, c_size_t, c_uint, c_uint32, c_void_p

import time

from rbl.dns.clients import LIMITED, MAPPED_TAG, RESOLVER, V4_MASK, V6_MASK, V6_TAG, ClientGate, truncated
from rbl.dns.wire import MAX_QUERY, MAX_UDP_REPLY, HotAnswer

BATCH = 64
BUFFER = max(MAX_QUERY, MAX_UDP_REPLY)  # larger queries arrive cut short; no UDP reply is larger
_NAME = 128  # sizeof(struct sockaddr_storage)
_NAME_U32, _NAME_U64 = _NAME // 4, _NAME // 8
_MSG_DONTWAIT = 0x40


class _Iovec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class _Msghdr(Structure):
    _fields_ = [("msg_name", c_void_p), ("msg_namelen", c_uint32), ("msg_iov", POINTER(_Iovec)),
                ("msg_iovlen", c_size_t), ("msg_control", c_void_p), ("msg_controllen", c_size_t),
                ("msg_flags", c_int)]


class _Mmsghdr(Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", c_uint)]


# Where the fields lie, in 4- and 8-byte words of one struct mmsghdr.
_U32 = ctypes.sizeof(_Mmsghdr) // 4
_U64 = ctypes.sizeof(_Mmsghdr) // 8
_LEN = _Mmsghdr.msg_len.offset // 4
_NAMELEN = (_Mmsghdr.msg_hdr.offset + _Msghdr.msg_namelen.offset) // 4
_LAYOUT = (ctypes.sizeof(_Mmsghdr) % 8 == 0 and _Mmsghdr.msg_len.offset % 4 == 0 and _Msghdr.msg_name.offset == 0
           and ctypes.sizeof(_Iovec) == 16 and _Iovec.iov_len.offset == 8)  # a 64-bit Linux

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _recvmmsg, _sendmmsg = _libc.recvmmsg, _libc.sendmmsg
except (OSError, AttributeError):
    _recvmmsg = _sendmmsg = None


def available() -> bool:
    return _recvmmsg is not None and _LAYOUT


class BatchSocket:
    """Receive a batch, answer each datagram, send the answers in one call."""

    def __init__(self, fd: int, family: int = 0):
        self.fd = fd
        self.family = family
        # An IPv4 or IPv6 socket's senders all have addresses of one size: the kernel
        # writes back the length it was given, so nothing needs resetting per datagram.
        self._fixed = {socket.AF_INET: 16, socket.AF_INET6: 28}.get(family)
        namelen = self._fixed or _NAME
        self._buffers = (ctypes.c_char * (BUFFER * BATCH))()
        self._names = (ctypes.c_char * (_NAME * BATCH))()
        self._view = memoryview(self._buffers).cast("B")
        self._name_view = memoryview(self._names).cast("B")
        # The senders' addresses as words, for the client gate: an int each, no bytes objects.
        self._name_u32 = self._name_view.cast("I")
        self._name_u64 = self._name_view.cast("Q")
        self._in_iov = (_Iovec * BATCH)()
        self._in = (_Mmsghdr * BATCH)()
        self._out_iov = (_Iovec * BATCH)()
        self._out = (_Mmsghdr * BATCH)()
        # Replies are copied into fixed buffers: asking ctypes for a bytes object's
        # address costs more than the copy.
        self._replies = (ctypes.c_char * (BUFFER * BATCH))()
        self._reply_view = memoryview(self._replies).cast("B")
        buffers, names = ctypes.addressof(self._buffers), ctypes.addressof(self._names)
        replies = ctypes.addressof(self._replies)
        for i in range(BATCH):
            self._in_iov[i].iov_base = buffers + i * BUFFER
            self._in_iov[i].iov_len = BUFFER
            header = self._in[i].msg_hdr
            header.msg_iov = ctypes.pointer(self._in_iov[i])
            header.msg_iovlen = 1
            header.msg_name = names + i * _NAME
            header.msg_namelen = namelen
            self._out_iov[i].iov_base = replies + i * BUFFER
            out = self._out[i].msg_hdr
            out.msg_iov = ctypes.pointer(self._out_iov[i])
            out.msg_iovlen = 1
            out.msg_name = names + i * _NAME
            out.msg_namelen = namelen
        self._names_at = names
        # The headers as plain integers: a ctypes attribute costs a wrapper object per access,
        # a memoryview index does not. Offsets are checked against ctypes' own at start.
        self._in_u32 = memoryview(self._in).cast("B").cast("I")
        self._out_u32 = memoryview(self._out).cast("B").cast("I")
        self._out_u64 = memoryview(self._out).cast("B").cast("Q")
        self._out_iov_u64 = memoryview(self._out_iov).cast("B").cast("Q")

    def _aim(self, k: int, i: int) -> None:
        self._out_u64[k * _U64] = self._names_at + i * _NAME
        self._out_u32[k * _U32 + _NAMELEN] = self._in_u32[i * _U32 + _NAMELEN]

    def _reset(self, count: int) -> None:
        """Headers back to one reply per datagram, and each sender's length to the buffer's."""
        namelen = self._fixed or _NAME
        for j in range(count):
            self._in_u32[j * _U32 + _NAMELEN] = namelen
            self._out_u64[j * _U64] = self._names_at + j * _NAME
            self._out_u32[j * _U32 + _NAMELEN] = namelen

    def _serve_gated(self, count: int, respond: Callable[..., bytes | None], with_client: bool,
                     hot_answer: HotAnswer | None, gate: ClientGate) -> None:
        """serve() with each sender's network looked up first (one word read, one dictionary
        lookup): a public resolver's queries go to the general path, and RRL accounts every
        reply (inlined: a method call per datagram costs as much as the accounting)."""
        view, reply_view, iov64, in32 = self._view, self._reply_view, self._out_iov_u64, self._in_u32
        names32, names64 = self._name_u32, self._name_u64
        u32, length_at, size = _U32, _LEN, BUFFER
        table, entry_for = gate.table, gate.entry
        rates, floors, slip, limited = gate.rates, gate.floors, gate.slip, gate.limited
        now = time.monotonic()
        v4 = self.family == socket.AF_INET
        k = 0
        for i in range(count):
            start = i * size
            data = bytes(view[start:start + in32[i * u32 + length_at]])
            if v4:
                key = names32[i * _NAME_U32 + 1] & V4_MASK  # sockaddr_in: the sender's /24
            else:
                key = names64[i * _NAME_U64 + 1] & V6_MASK  # sockaddr_in6: its /56...
                key = key | V6_TAG if key else names64[i * _NAME_U64 + 2] & V6_MASK | MAPPED_TAG  # ...or a mapped /24
            entry = table.get(key) or entry_for(key, now)
            flags = entry[0]
            if with_client or flags & RESOLVER:
                reply = respond(data, True, self.client(i), bool(flags & RESOLVER))
            else:
                reply = hot_answer(data) if hot_answer is not None else None
                if reply is None:
                    reply = respond(data, True)
            if reply is None:
                continue
            if flags & LIMITED:
                # The account of this kind (see rbl.dns.clients): credited, debited, floored at its debt.
                rcode = reply[3] & 0x0F
                kind = (0 if reply[7] or reply[6] else 1) if rcode == 0 else 1 if rcode == 3 else 2
                rate = rates[kind]
                balance = entry[1 + kind] + (now - entry[4 + kind]) * rate
                entry[4 + kind] = now
                balance = (rate if balance > rate else balance) - 1
                if balance < 0:
                    floor = floors[kind]
                    entry[1 + kind] = floor if balance < floor else balance
                    entry[7] += 1
                    if not slip or entry[7] % slip:
                        limited[kind][0] += 1
                        continue
                    limited[kind][1] += 1
                    reply = truncated(reply)
                else:
                    entry[1 + kind] = balance
            if k != i:
                self._aim(k, i)
            at = k * size
            reply_view[at:at + len(reply)] = reply
            iov64[k * 2 + 1] = len(reply)
            k += 1
        if k:
            _sendmmsg(self.fd, self._out, k, 0)
        if self._fixed is None or k != count:
            self._reset(count)

    def client(self, i: int) -> str | None:
        """The sender of datagram i, from the sockaddr the kernel wrote."""
        name = self._name_view[i * _NAME: (i + 1) * _NAME]
        family = int.from_bytes(name[:2], sys.byteorder)
        if family == socket.AF_INET:
            return socket.inet_ntop(socket.AF_INET, name[4:8])
        if family == socket.AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, name[8:24])
        return None

    def serve(self, respond: Callable[..., bytes | None], with_client: bool = False,
              hot_answer: HotAnswer | None = None, gate: ClientGate | None = None) -> bool:
        """Answer one batch; True when it read anything (more may be waiting).

        ``hot_answer`` (the snapshot's hot path) is tried before ``respond``:
        one call less per datagram for the queries it takes. ``gate`` (when it
        has public resolvers or a rate limit) is asked per sender's network.
        """
        count = _recvmmsg(self.fd, self._in, BATCH, _MSG_DONTWAIT, None)
        if count <= 0:
            return count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK)
        if gate is not None:
            self._serve_gated(count, respond, with_client, hot_answer, gate)
            return True
        view, reply_view, iov64, in32 = self._view, self._reply_view, self._out_iov_u64, self._in_u32
        u32, length_at, size = _U32, _LEN, BUFFER
        k = 0
        for i in range(count):
            start = i * size
            data = bytes(view[start:start + in32[i * u32 + length_at]])
            if with_client:
                reply = respond(data, True, self.client(i))
            else:
                reply = hot_answer(data) if hot_answer is not None else None
                if reply is None:
                    reply = respond(data, True)
            if reply is None:
                continue
            if k != i:
                self._aim(k, i)  # an earlier datagram went unanswered: reply k goes to sender i
            at = k * size
            reply_view[at:at + len(reply)] = reply
            iov64[k * 2 + 1] = len(reply)
            k += 1
        if k:
            _sendmmsg(self.fd, self._out, k, 0)  # a full buffer drops the rest, as UDP may
        if self._fixed is None or k != count:
            self._reset(count)
        return True  # something came: there may be more behind it (an empty read ends the burst)
