# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled event-id text: the canonical UUID string of 16 bytes, and random UUIDv4s.

``agentlog.schemas.events`` uses these when the extension is built and its
pure-Python equivalents otherwise (a unit test holds the two equal). Every
event gets an id: a random one (new events) or a UUIDv5 (decisions), and
formatting the text is most of what that costs in Python.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_New
from libc.stdint cimport uint8_t

cdef extern from "Python.h":
    void* PyUnicode_DATA(object)

cdef const char* _HEX = b"0123456789abcdef"
cdef int _BUFFER = 4096  # bytes of os.urandom per refill: 256 ids

cdef bytes _random = b""
cdef Py_ssize_t _used = 0


cdef str _text(const uint8_t* raw, uint8_t version):
    cdef str out = PyUnicode_New(36, 127)
    cdef char* dst = <char*> PyUnicode_DATA(out)
    cdef int i, j = 0
    cdef uint8_t b
    for i in range(16):
        b = raw[i]
        if i == 6:
            b = (b & 0x0F) | version
        elif i == 8:
            b = (b & 0x3F) | 0x80
        if i == 4 or i == 6 or i == 8 or i == 10:
            dst[j] = 45  # '-'
            j += 1
        dst[j] = _HEX[b >> 4]
        dst[j + 1] = _HEX[b & 0x0F]
        j += 2
    return out


def uuid_text(bytes raw, int version):
    """``str(uuid.UUID(bytes=raw[:16]))`` with ``version`` (0x40, 0x50) and the RFC variant set."""
    if PyBytes_GET_SIZE(raw) < 16:
        raise ValueError(f"need 16 bytes for a UUID, got {PyBytes_GET_SIZE(raw)}")
    return _text(<const uint8_t*> PyBytes_AS_STRING(raw), <uint8_t> version)


def random_uuid4_text():
    """A random UUIDv4 string, from ``os.urandom`` bytes fetched 4 KiB at a time."""
    global _random, _used
    if _used + 16 > PyBytes_GET_SIZE(_random):
        _random = os.urandom(_BUFFER)
        _used = 0
    cdef str out = _text(<const uint8_t*> PyBytes_AS_STRING(_random) + _used, 0x40)
    _used += 16
    return out


def _forget():
    """Drop the unused random bytes (in a forked child: the parent would reuse them)."""
    global _random, _used
    _random = b""
    _used = 0


os.register_at_fork(after_in_child=_forget)
