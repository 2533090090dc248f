# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False, auto_pickle=False, autotestdict=False
"""Compiled Avro binary encoder and decoder for the dataclasses of agentlog events.

The same format, byte for byte, as the Python code that ``agentlog.streams.codec``
generates per schema (that code documents the format and is the fallback when
this extension is not built). Python builds, once per schema, a *program*: one
:class:`Record` per Avro record, whose fields are :class:`Type` operations
(``bind(schema)`` translated); :func:`encode` and :func:`decode` interpret it,
and :class:`Codec` does whole events for ``AvroCodec.encode`` and ``decode``.

Semantics kept identical to the generated code (``tests/unit/test_codec_compiled.py``
compares the two, and fastavro):

* values of the expected exact type (``str``, ``int``, ``bytes``, ``float``,
  aware UTC ``datetime``, ``tuple``, ``dict``) are written here; any other value
  goes through the generated Python code for its type (``slow`` encoders given to
  :func:`configure`), so odd values encode or fail exactly as they do there;
* JSON fields: plain values (dicts with str keys, lists, tuples, str, int,
  float, bool, None, not nested too deep) are written and read here exactly as
  the codec's ``dumps_json`` and ``loads_json`` write and read them; anything
  else goes through those two functions, whose result or error stands;
* decoding raises the codec's ``_Truncated`` where the generated code raises
  ``_Truncated`` or ``IndexError``, ``_Corrupt`` with the same messages where it
  raises ``_Corrupt``, and lets other errors (bad UTF-8, bad JSON, timestamps
  out of range) propagate as the generated code does;
* an encoding error is re-raised as :class:`FieldError`, naming the innermost
  record and field being written and the field's value, as the codec's
  ``_explain`` finds them in a traceback of generated code.

Decoded records are allocated with the type's ``tp_alloc`` (what
``object.__new__`` does) and their slots filled directly, as the generated code
does through the slot descriptors' ``__set__``: a frozen dataclass's
``__setattr__`` and ``__init__`` are skipped. Encoding reads the slots of
instances of exactly the record's class directly, and uses ``getattr`` on
anything else.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.datetime cimport PyDateTime_CheckExact, datetime_new, import_datetime
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact, PyFloat_FromDouble
from cpython.long cimport PyLong_CheckExact, PyLong_FromLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove

from types import MemberDescriptorType

import_datetime()

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags

    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

    PyTypeObject* Py_TYPE(object)
    bint PyBool_Check(object)
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    bint PyUnicode_IS_COMPACT_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bytes PyUnicode_AsUTF8String(object)
    double PyFloat_Unpack8(const char*, int) except? -1.0
    int PyFloat_Pack8(double, char*, int) except -1
    PyObject* PyDateTime_DATE_GET_TZINFO(object)
    int PyDateTime_GET_YEAR(object)
    int PyDateTime_GET_MONTH(object)
    int PyDateTime_GET_DAY(object)
    int PyDateTime_DATE_GET_HOUR(object)
    int PyDateTime_DATE_GET_MINUTE(object)
    int PyDateTime_DATE_GET_SECOND(object)
    int PyDateTime_DATE_GET_MICROSECOND(object)

cdef extern from *:
    """
    static PyObject *agentlog_avro_alloc(PyTypeObject *tp) { return tp->tp_alloc(tp, 0); }

    static inline PyObject *agentlog_avro_get_slot(PyObject *o, Py_ssize_t offset) {
        return *(PyObject **)((char *)o + offset);
    }

    static inline void agentlog_avro_set_slot(PyObject *o, Py_ssize_t offset, PyObject *v) {
        PyObject **slot = (PyObject **)((char *)o + offset);
        PyObject *old = *slot;
        Py_INCREF(v);
        *slot = v;
        Py_XDECREF(old);
    }
    """
    object agentlog_avro_alloc(PyTypeObject* tp)
    PyObject* agentlog_avro_get_slot(object o, Py_ssize_t offset)
    void agentlog_avro_set_slot(object o, Py_ssize_t offset, object v)


# --- the program ----------------------------------------------------------------------

cdef enum Kind:
    K_NULL
    K_BOOLEAN
    K_INT
    K_LONG
    K_DOUBLE
    K_BYTES
    K_STRING
    K_JSON
    K_TIMESTAMP
    K_RECORD
    K_NULLABLE
    K_ARRAY
    K_MAP

cdef dict _KINDS = {
    "null": K_NULL,
    "boolean": K_BOOLEAN,
    "int": K_INT,
    "long": K_LONG,
    "double": K_DOUBLE,
    "bytes": K_BYTES,
    "string": K_STRING,
    "json": K_JSON,
    "timestamp": K_TIMESTAMP,
    "record": K_RECORD,
    "nullable": K_NULLABLE,
    "array": K_ARRAY,
    "map": K_MAP,
}

#: Kinds whose values of an unexpected Python type go through the generated code.
_SLOW_KINDS = ("int", "long", "double", "bytes", "string", "timestamp")

cdef extern from *:
    """
    /* Member type and flag of a writable object slot (structmember.h). */
    #define AGENTLOG_T_OBJECT_EX 16
    #define AGENTLOG_READONLY 1
    /* Nesting of records beyond which encoding and decoding give up (recursive schemas). */
    #define AGENTLOG_MAX_DEPTH 1000
    #define AGENTLOG_MICROS_PER_DAY 86400000000LL
    /* datetime(1, 1, 1, tzinfo=UTC) and datetime.max, in microseconds since the epoch. */
    #define AGENTLOG_MIN_MICROS (-62135596800000000LL)
    #define AGENTLOG_MAX_MICROS 253402300799999999LL
    """
    const int _T_OBJECT_EX "AGENTLOG_T_OBJECT_EX"
    const int _READONLY "AGENTLOG_READONLY"
    const int _MAX_DEPTH "AGENTLOG_MAX_DEPTH"
    const int64_t _MICROS_PER_DAY "AGENTLOG_MICROS_PER_DAY"
    const int64_t _MIN_MICROS "AGENTLOG_MIN_MICROS"
    const int64_t _MAX_MICROS "AGENTLOG_MAX_MICROS"


cdef class Type:
    """One Avro type of a record field: ``kind`` as in ``agentlog.schemas.catalogue.AvroType``.

    ``inner`` is the :class:`Record` of a record, or the item, value or non-null
    :class:`Type` of an array, map or nullable union; ``null_index`` the branch
    of null in a nullable union; ``min_item`` the fewest bytes an array item or
    map entry takes (bounds a block count by the bytes left).
    """

    cdef int kind
    cdef Type item
    cdef Record record
    cdef int null_index
    cdef Py_ssize_t min_item

    def __init__(self, str kind, object inner=None, int null_index=0, Py_ssize_t min_item=0):
        code = _KINDS.get(kind)
        if code is None:
            raise ValueError(f"unknown Avro type kind {kind!r}")
        self.kind = code
        if self.kind == K_RECORD:
            if not isinstance(inner, Record):
                raise TypeError("a record Type needs its Record")
            self.record = inner
        elif self.kind in (K_NULLABLE, K_ARRAY, K_MAP):
            if not isinstance(inner, Type):
                raise TypeError(f"a {kind} Type needs its inner Type")
            self.item = inner
        if null_index not in (0, 1):
            raise ValueError("null_index must be 0 or 1")
        if min_item < 0:
            raise ValueError("min_item must not be negative")
        self.null_index = null_index
        self.min_item = min_item


cdef class Record:
    """An Avro record bound to its slotted dataclass ``cls``; fields set by :meth:`set_fields`."""

    cdef object cls
    cdef PyTypeObject* tp
    cdef readonly str name
    cdef tuple names
    cdef tuple types
    cdef Py_ssize_t n
    cdef Py_ssize_t* offsets

    def __cinit__(self):
        self.offsets = NULL
        self.n = 0
        self.names = ()
        self.types = ()

    def __init__(self, str name, type cls):
        self.name = name
        self.cls = cls
        self.tp = <PyTypeObject*>cls

    def __dealloc__(self):
        free(self.offsets)

    def set_fields(self, list fields):
        """Set the fields: ``(name, Type)`` pairs, in schema (and dataclass) order.

        Raises:
            TypeError: a field is not a writable object slot of ``cls``.
        """
        cdef Py_ssize_t i, n = len(fields)
        cdef PyMemberDef* member
        names, types = [], []
        offsets = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
        if offsets == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                name, t = fields[i]
                if not isinstance(name, str) or not isinstance(t, Type):
                    raise TypeError("fields are (str, Type) pairs")
                descriptor = self.cls.__dict__.get(name)
                if (
                    type(descriptor) is not MemberDescriptorType
                    or descriptor.__objclass__ is not self.cls
                ):
                    raise TypeError(f"{self.cls.__name__}.{name} is not a slot of its own")
                member = (<PyMemberDescrObject*>descriptor).d_member
                if member.type != _T_OBJECT_EX or member.flags & _READONLY:
                    raise TypeError(f"{self.cls.__name__}.{name} is not a writable object slot")
                offsets[i] = member.offset
                names.append(name)
                types.append(t)
        except BaseException:
            free(offsets)
            raise
        free(self.offsets)
        self.offsets = offsets
        self.names = tuple(names)
        self.types = tuple(types)
        self.n = n


# --- configuration: what the codec module lends ----------------------------------------

class FieldError(Exception):
    """Encoding failed on field ``field`` of record ``record`` whose value is ``value``.

    ``error`` is the exception raised (also the ``__cause__``).
    """

    def __init__(self, record, field, value, error):
        super().__init__(record, field, value, error)
        self.record = record
        self.field = field
        self.value = value
        self.error = error


cdef object _Truncated = None
cdef object _Corrupt = None
cdef object _dumps = None
cdef object _loads = None
cdef object _timestamp_of = None
cdef PyObject* _UTC = NULL
cdef object _utc_ref = None
cdef list _slow = [None] * (K_MAP + 1)
cdef bint _configured = False


def configure(*, truncated, corrupt, dumps, loads, utc, timestamp_of, slow):
    """Give the extension what it shares with the generated Python code.

    Args:
        truncated: exception class raised when the body ends early.
        corrupt: exception class raised, with a message, when it breaks the schema.
        dumps: value -> canonical JSON text.
        loads: JSON text -> value.
        utc: the tzinfo of decoded timestamps (``datetime.UTC``).
        timestamp_of: microseconds since the epoch -> datetime, used outside
            the years 1-9999 (to raise what the generated code raises).
        slow: ``{kind: encode(out: bytearray, value)}`` for kinds int, long,
            double, bytes, string and timestamp: the generated code for a value
            of another Python type than the one written here.
    """
    global _Truncated, _Corrupt, _dumps, _loads, _timestamp_of, _UTC, _utc_ref, _configured
    for kind in _SLOW_KINDS:
        if not callable(slow.get(kind)):
            raise TypeError(f"no slow encoder for {kind}")
    for kind in _SLOW_KINDS:
        _slow[_KINDS[kind]] = slow[kind]
    _Truncated, _Corrupt, _dumps, _loads = truncated, corrupt, dumps, loads
    _timestamp_of = timestamp_of
    _utc_ref = utc
    _UTC = <PyObject*>utc
    _configured = True


# --- calendar arithmetic (proleptic Gregorian, as datetime) -----------------------------

cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept:
    y -= m <= 2
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef object _datetime_of(int64_t micros):
    if micros < _MIN_MICROS or micros > _MAX_MICROS:
        return _timestamp_of(micros)  # raises as the generated code does
    cdef int64_t days = micros // _MICROS_PER_DAY
    cdef int64_t rest = micros % _MICROS_PER_DAY
    if rest < 0:
        rest += _MICROS_PER_DAY
        days -= 1
    cdef int64_t z = days + 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    cdef int64_t day = doy - (153 * mp + 2) // 5 + 1
    cdef int64_t month = mp + 3 if mp < 10 else mp - 9
    cdef int64_t year = yoe + era * 400 + (month <= 2)
    cdef int64_t secs = rest // 1000000
    return datetime_new(
        <int>year, <int>month, <int>day, <int>(secs // 3600), <int>(secs // 60 % 60),
        <int>(secs % 60), <int>(rest % 1000000), _utc_ref,
    )


# --- encoding -----------------------------------------------------------------------------

cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity
    bint heap


cdef inline void _buf_on(Buf* b, char* stack, Py_ssize_t capacity) noexcept:
    # an empty buffer writing into ``stack`` until it needs more (then the heap: free it)
    b.data = stack
    b.size = 0
    b.capacity = capacity
    b.heap = False


cdef int _grow(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t capacity = b.capacity * 2
    cdef char* data
    while capacity < b.size + extra:
        capacity *= 2
    if b.heap:
        data = <char*>realloc(b.data, capacity)
    else:
        data = <char*>malloc(capacity)
        if data != NULL:
            memcpy(data, b.data, b.size)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.capacity = capacity
    b.heap = True
    return 0


cdef inline int _reserve(Buf* b, Py_ssize_t extra) except -1:
    if b.size + extra > b.capacity:
        return _grow(b, extra)
    return 0


cdef inline int _put_byte(Buf* b, char c) except -1:
    _reserve(b, 1)
    b.data[b.size] = c
    b.size += 1
    return 0


cdef inline int _put_long(Buf* b, int64_t value) except -1:
    cdef uint64_t z = (<uint64_t>value << 1) ^ <uint64_t>(value >> 63)
    _reserve(b, 10)
    while z > 0x7F:
        b.data[b.size] = <char>((z & 0x7F) | 0x80)
        b.size += 1
        z >>= 7
    b.data[b.size] = <char>z
    b.size += 1
    return 0


cdef inline int _put_raw(Buf* b, const char* data, Py_ssize_t n) except -1:
    _reserve(b, n)
    memcpy(b.data + b.size, data, n)
    b.size += n
    return 0


cdef inline int _put_bytes(Buf* b, const char* data, Py_ssize_t n) except -1:
    _put_long(b, n)
    return _put_raw(b, data, n)


cdef int _put_str(Buf* b, object s) except -1:
    # s is an exact str
    cdef bytes utf8
    if PyUnicode_IS_COMPACT_ASCII(s):
        return _put_bytes(b, <const char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))
    utf8 = PyUnicode_AsUTF8String(s)
    return _put_bytes(b, PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8))


cdef int _put_slow(Buf* b, int kind, object value) except -1:
    out = bytearray()
    _slow[kind](out, value)
    return _put_raw(b, PyByteArray_AS_STRING(out), PyByteArray_GET_SIZE(out))


ctypedef const unsigned char* Bytes


# --- JSON: canonical text written and read here, for the values JSON fields usually hold ---
#
# dumps_json (json.JSONEncoder with sort_keys, separators "," and ":", ensure_ascii
# False, allow_nan False) writes, for dicts with str keys, lists, tuples, str, int,
# float, bool and None of exactly those types, the text written below. Anything
# else (subclasses, non-str keys, NaN, ints beyond 64 bits, deep nesting, cycles) is
# handed to dumps_json itself, whose output or exception stands. Likewise the
# parser below reads standard JSON into what loads_json returns, and hands anything
# unusual (surrogate escapes, long numbers, infinities, bad UTF-8, errors of any
# kind, deep nesting) to loads_json, so errors are always loads_json's.

cdef extern from *:
    """
    /* JSON nesting beyond which the compiled paths defer to dumps_json / loads_json. */
    #define AGENTLOG_JSON_MAX_DEPTH 200
    /* Decoded keys: how many are kept (a power of 2), and the longest kept. */
    #define AGENTLOG_KEY_CACHE_SIZE 256
    #define AGENTLOG_KEY_CACHE_MAX_LENGTH 32
    /* Dicts of at most this many entries are sorted on the C stack. */
    #define AGENTLOG_JSON_SMALL_DICT 16
    /* The high bit of each of 8 bytes: no byte of a word is ASCII if word & it. */
    #define AGENTLOG_HIGH_BITS 0x8080808080808080ULL
    #define AGENTLOG_ONES 0x0101010101010101ULL
    /* Byte tests on 8 bytes at once: whether any byte is zero, or below n (n <= 128). */
    #define AGENTLOG_HAS_ZERO(w) (((w) - AGENTLOG_ONES) & ~(w) & AGENTLOG_HIGH_BITS)
    #define AGENTLOG_HAS_LESS(w, n) (((w) - AGENTLOG_ONES * (n)) & ~(w) & AGENTLOG_HIGH_BITS)

    /* Whether none of the 8 bytes at p needs escaping in a JSON string. */
    static inline int agentlog_json_plain_out(const unsigned char *p) {
        uint64_t w;
        memcpy(&w, p, 8);
        return !(AGENTLOG_HAS_ZERO(w ^ (AGENTLOG_ONES * 0x22))  /* quote */
                 | AGENTLOG_HAS_ZERO(w ^ (AGENTLOG_ONES * 0x5C))  /* backslash */
                 | AGENTLOG_HAS_LESS(w, 0x20));
    }

    /* As agentlog_json_plain_out, and none of the 8 bytes is beyond ASCII. */
    static inline int agentlog_json_plain_in(const unsigned char *p) {
        uint64_t w;
        memcpy(&w, p, 8);
        return !((w & AGENTLOG_HIGH_BITS)
                 | AGENTLOG_HAS_ZERO(w ^ (AGENTLOG_ONES * 0x22))  /* quote */
                 | AGENTLOG_HAS_ZERO(w ^ (AGENTLOG_ONES * 0x5C))  /* backslash */
                 | AGENTLOG_HAS_LESS(w, 0x20));
    }
    """
    const int _JSON_MAX_DEPTH "AGENTLOG_JSON_MAX_DEPTH"
    const uint64_t _HIGH_BITS "AGENTLOG_HIGH_BITS"
    enum: _JSON_SMALL_DICT "AGENTLOG_JSON_SMALL_DICT"
    enum: _KEY_CACHE_SIZE "AGENTLOG_KEY_CACHE_SIZE"
    enum: _KEY_CACHE_MAX_LENGTH "AGENTLOG_KEY_CACHE_MAX_LENGTH"
    bint _json_plain_out "agentlog_json_plain_out"(const unsigned char* p) noexcept
    bint _json_plain_in "agentlog_json_plain_in"(const unsigned char* p) noexcept

cdef extern from "Python.h":
    char* PyOS_double_to_string(double, char, int, int, int*) except NULL
    double PyOS_string_to_double(const char*, char**, PyObject*) except? -1.0
    void PyMem_Free(void*)
    const int Py_DTSF_ADD_DOT_0
    bint Py_IS_FINITE(double)
    object PyUnicode_New(Py_ssize_t, Py_UCS4)
    bint PyDict_Next(object, Py_ssize_t*, PyObject**, PyObject**)
    int PyUnicode_Compare(object, object) except? -1

cdef object _ABORT = object()  # "not handled here": defer to dumps_json / loads_json
cdef const char* _HEX = "0123456789abcdef"


cdef int _json_put_str(Buf* b, object s) except -1:
    # A JSON string of exact str s, as json's escape_unicode (ensure_ascii=False).
    # 0: not handled (surrogates cannot be UTF-8 encoded; dumps_json will say so)
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, stop, start = 0
    cdef unsigned char c = 0
    cdef bytes utf8 = None
    if PyUnicode_IS_COMPACT_ASCII(s):
        p = <const unsigned char*>PyUnicode_DATA(s)
        n = PyUnicode_GET_LENGTH(s)
    else:
        try:
            utf8 = PyUnicode_AsUTF8String(s)
        except UnicodeEncodeError:
            return 0
        p = <const unsigned char*>PyBytes_AS_STRING(utf8)
        n = PyBytes_GET_SIZE(utf8)
    _reserve(b, n + 2)
    b.data[b.size] = c'"'
    b.size += 1
    i = 0
    while i < n:
        if i + 8 <= n and _json_plain_out(p + i):
            i += 8
            continue
        stop = i + 8 if i + 8 <= n else n
        while i < stop:  # byte by byte up to 8, to the next byte to escape
            c = p[i]
            if c < 0x20 or c == c'"' or c == c'\\':
                break
            i += 1
        if i == stop:
            continue
        _put_raw(b, <const char*>p + start, i - start)
        start = i + 1
        _reserve(b, 6)
        b.data[b.size] = c'\\'
        if c == c'"' or c == c'\\':
            b.data[b.size + 1] = <char>c
        elif c == c'\n':
            b.data[b.size + 1] = c'n'
        elif c == c'\r':
            b.data[b.size + 1] = c'r'
        elif c == c'\t':
            b.data[b.size + 1] = c't'
        elif c == c'\b':
            b.data[b.size + 1] = c'b'
        elif c == c'\f':
            b.data[b.size + 1] = c'f'
        else:
            b.data[b.size + 1] = c'u'
            b.data[b.size + 2] = c'0'
            b.data[b.size + 3] = c'0'
            b.data[b.size + 4] = _HEX[c >> 4]
            b.data[b.size + 5] = _HEX[c & 0xF]
            b.size += 4
        b.size += 2
        i += 1
    _put_raw(b, <const char*>p + start, n - start)
    _put_byte(b, c'"')
    return 1


cdef int _json_put_int(Buf* b, object v) except -1:
    cdef int overflow = 0
    cdef long long n = PyLong_AsLongLongAndOverflow(v, &overflow)
    cdef unsigned long long u
    cdef char digits[24]
    cdef int i = 24
    if overflow:
        return 0
    u = (0 - <unsigned long long>n) if n < 0 else <unsigned long long>n
    while True:
        i -= 1
        digits[i] = <char>(c'0' + u % 10)
        u //= 10
        if u == 0:
            break
    if n < 0:
        i -= 1
        digits[i] = c'-'
    _put_raw(b, digits + i, 24 - i)
    return 1


cdef int _json_put_float(Buf* b, double d) except -1:
    # float.__repr__, as json writes finite floats
    cdef char* text
    cdef Py_ssize_t n = 0
    if not Py_IS_FINITE(d):
        return 0
    text = PyOS_double_to_string(d, c'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        while text[n]:
            n += 1
        _put_raw(b, text, n)
    finally:
        PyMem_Free(text)
    return 1


cdef int _json_put_small_dict(Buf* b, object v, Py_ssize_t n, int depth) except -1:
    # As below, without a list of keys: the entries, sorted by key on the C stack.
    cdef PyObject* keys[_JSON_SMALL_DICT]
    cdef PyObject* values[_JSON_SMALL_DICT]
    cdef PyObject* key
    cdef PyObject* value
    cdef Py_ssize_t pos = 0, i = 0, j, count = 0
    try:
        while PyDict_Next(v, &pos, &key, &value):
            if count >= n or not PyUnicode_CheckExact(<object>key):
                return 0
            j = count
            while j > 0 and PyUnicode_Compare(<object>keys[j - 1], <object>key) > 0:
                keys[j] = keys[j - 1]
                values[j] = values[j - 1]
                j -= 1
            Py_INCREF(<object>key)  # held: writing values may run a collection
            Py_INCREF(<object>value)
            keys[j] = key
            values[j] = value
            count += 1
        if count != n:
            return 0
        _put_byte(b, c'{')
        for i in range(n):
            if i:
                _put_byte(b, c',')
            if not _json_put_str(b, <object>keys[i]):
                return 0
            _put_byte(b, c':')
            if not _json_put(b, <object>values[i], depth + 1):
                return 0
        _put_byte(b, c'}')
        return 1
    finally:
        for i in range(count):
            Py_DECREF(<object>keys[i])
            Py_DECREF(<object>values[i])


cdef int _json_put(Buf* b, object v, int depth) except -1:
    """Write v as dumps_json does: 1, or 0 if not handled here (b is then partly written)."""
    cdef Py_ssize_t i, n
    cdef list keys
    if v is None:
        _put_raw(b, "null", 4)
        return 1
    if v is True:
        _put_raw(b, "true", 4)
        return 1
    if v is False:
        _put_raw(b, "false", 5)
        return 1
    if PyUnicode_CheckExact(v):
        return _json_put_str(b, v)
    if PyLong_CheckExact(v):
        return _json_put_int(b, v)
    if PyFloat_CheckExact(v):
        return _json_put_float(b, PyFloat_AS_DOUBLE(v))
    if depth >= _JSON_MAX_DEPTH:
        return 0
    if type(v) is dict:
        n = len(<dict>v)
        if n == 0:
            _put_raw(b, "{}", 2)
            return 1
        if n <= _JSON_SMALL_DICT:
            return _json_put_small_dict(b, v, n, depth)
        keys = list(<dict>v)
        for key in keys:
            if not PyUnicode_CheckExact(key):
                return 0
        if n > 1:
            keys.sort()
        _put_byte(b, c'{')
        for i in range(n):
            if i:
                _put_byte(b, c',')
            key = keys[i]
            value = (<dict>v).get(key, _ABORT)
            if value is _ABORT or not _json_put_str(b, key):
                return 0
            _put_byte(b, c':')
            if not _json_put(b, value, depth + 1):
                return 0
        _put_byte(b, c'}')
        return 1
    if type(v) is list or type(v) is tuple:
        _put_byte(b, c'[')
        i = 0
        for x in v:
            if i:
                _put_byte(b, c',')
            i += 1
            if not _json_put(b, x, depth + 1):
                return 0
        _put_byte(b, c']')
        return 1
    return 0


cdef int _put_json(Buf* b, object v) except -1:
    # The Avro string of dumps_json(v): written here, or by dumps_json when not handled.
    cdef Py_ssize_t start = b.size, n
    cdef char length[10]
    cdef Buf lb
    _reserve(b, 10)
    b.size += 10  # room for the longest length; moved up once the text is written
    if _json_put(b, v, 0):
        n = b.size - start - 10
        _buf_on(&lb, length, 10)
        _put_long(&lb, n)
        memmove(b.data + start + lb.size, b.data + start + 10, n)
        memcpy(b.data + start, length, lb.size)
        b.size = start + lb.size + n
        return 0
    b.size = start
    text = _dumps(v)
    if PyUnicode_CheckExact(text):
        return _put_str(b, text)
    return _put_slow(b, K_STRING, text)


cdef inline bint _is_space(unsigned char c) noexcept:
    return c == c' ' or c == c'\n' or c == c'\r' or c == c'\t'


cdef inline Py_ssize_t _skip_space(Bytes p, Py_ssize_t i, Py_ssize_t end) noexcept:
    while i < end and _is_space(p[i]):
        i += 1
    return i


cdef inline bint _all_ascii(Bytes p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0
    cdef uint64_t word, acc = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        acc |= word
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & _HIGH_BITS) == 0


cdef object _ascii_str(Bytes p, Py_ssize_t n):
    # str of n ASCII bytes
    text = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(text), p, n)
    return text


cdef object _utf8_str(Bytes p, Py_ssize_t n):
    if _all_ascii(p, n):
        return _ascii_str(p, n)
    return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)


# Keys of JSON objects and Avro maps repeat: the str of a recent short ASCII key is
# reused (with its hash computed once), not built again. Direct-mapped, by a hash of
# the bytes; entries are strong references to compact ASCII str.
cdef PyObject* _keys[_KEY_CACHE_SIZE]


cdef object _key_str(Bytes p, Py_ssize_t n):
    # str of n ASCII bytes, from the cache if there
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    cdef PyObject* cached
    if n > _KEY_CACHE_MAX_LENGTH:
        return _ascii_str(p, n)
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    h ^= h >> 32
    cached = _keys[h & (_KEY_CACHE_SIZE - 1)]
    if (
        cached != NULL
        and PyUnicode_GET_LENGTH(<object>cached) == n
        and memcmp(PyUnicode_DATA(<object>cached), p, n) == 0
    ):
        return <object>cached
    key = _ascii_str(p, n)
    Py_INCREF(key)
    _keys[h & (_KEY_CACHE_SIZE - 1)] = <PyObject*>key
    if cached != NULL:
        Py_DECREF(<object>cached)
    return key


cdef object _utf8_key(Bytes p, Py_ssize_t n):
    if _all_ascii(p, n):
        return _key_str(p, n)
    return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)


cdef inline int _hex_value(unsigned char c) noexcept:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef object _json_str(Bytes p, Py_ssize_t* at, Py_ssize_t end, bint key=False):
    # p[at] is just after the opening quote; _ABORT if not handled
    cdef Py_ssize_t i = at[0], start = at[0], n, stop
    cdef unsigned char c
    cdef bint escaped = False, ascii = True, closed = False
    cdef char* buffer
    cdef Py_ssize_t size = 0, j
    cdef int h, k
    cdef unsigned int cp
    while not closed:  # 8 plain bytes at a time, else byte by byte up to 8
        if i + 8 <= end and _json_plain_in(p + i):
            i += 8
            continue
        if i >= end:
            return _ABORT
        stop = i + 8 if i + 8 <= end else end
        while i < stop:
            c = p[i]
            if c == c'"':
                closed = True
                break
            if c < 0x20:
                return _ABORT  # strict: control characters must be escaped
            if c == c'\\':
                escaped = True
                i += 2
                continue
            if c >= 0x80:
                ascii = False
            i += 1
    at[0] = i + 1
    n = i - start
    if not escaped:
        if ascii:
            return _key_str(p + start, n) if key else _ascii_str(p + start, n)
        try:
            return PyUnicode_DecodeUTF8(<const char*>p + start, n, NULL)
        except UnicodeDecodeError:
            return _ABORT
    buffer = <char*>malloc(n)
    if buffer == NULL:
        raise MemoryError()
    try:
        j = start
        while j < i:
            c = p[j]
            if c != c'\\':
                buffer[size] = <char>c
                size += 1
                j += 1
                continue
            c = p[j + 1]
            j += 2
            if c == c'"' or c == c'\\' or c == c'/':
                buffer[size] = <char>c
            elif c == c'n':
                buffer[size] = c'\n'
            elif c == c't':
                buffer[size] = c'\t'
            elif c == c'r':
                buffer[size] = c'\r'
            elif c == c'b':
                buffer[size] = c'\b'
            elif c == c'f':
                buffer[size] = c'\f'
            elif c == c'u':
                if j + 4 > i:
                    return _ABORT
                cp = 0
                for k in range(4):
                    h = _hex_value(p[j + k])
                    if h < 0:
                        return _ABORT
                    cp = cp * 16 + <unsigned int>h
                j += 4
                if 0xD800 <= cp <= 0xDFFF:
                    return _ABORT  # surrogates (and pairs of them): loads_json's business
                if cp < 0x80:
                    buffer[size] = <char>cp
                elif cp < 0x800:
                    buffer[size] = <char>(0xC0 | (cp >> 6))
                    size += 1
                    buffer[size] = <char>(0x80 | (cp & 0x3F))
                else:
                    buffer[size] = <char>(0xE0 | (cp >> 12))
                    size += 1
                    buffer[size] = <char>(0x80 | ((cp >> 6) & 0x3F))
                    size += 1
                    buffer[size] = <char>(0x80 | (cp & 0x3F))
            else:
                return _ABORT
            size += 1
        try:
            return PyUnicode_DecodeUTF8(buffer, size, NULL)
        except UnicodeDecodeError:
            return _ABORT
    finally:
        free(buffer)


cdef object _json_number(Bytes p, Py_ssize_t* at, Py_ssize_t end):
    # -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, as json's scanner matches numbers
    cdef Py_ssize_t i = at[0], start = at[0], digits, k
    cdef bint is_float = False
    cdef int64_t value = 0
    cdef char text[64]
    cdef char* stop
    cdef double d
    if i < end and p[i] == c'-':
        i += 1
    if i >= end or not (c'0' <= p[i] <= c'9'):
        return _ABORT
    if p[i] == c'0':
        i += 1
        if i < end and c'0' <= p[i] <= c'9':
            return _ABORT
    else:
        while i < end and c'0' <= p[i] <= c'9':
            i += 1
    digits = i - start
    if i < end and p[i] == c'.':
        i += 1
        if i >= end or not (c'0' <= p[i] <= c'9'):
            return _ABORT
        while i < end and c'0' <= p[i] <= c'9':
            i += 1
        is_float = True
    if i < end and (p[i] == c'e' or p[i] == c'E'):
        i += 1
        if i < end and (p[i] == c'+' or p[i] == c'-'):
            i += 1
        if i >= end or not (c'0' <= p[i] <= c'9'):
            return _ABORT
        while i < end and c'0' <= p[i] <= c'9':
            i += 1
        is_float = True
    at[0] = i
    if not is_float:
        if digits > 18:
            return _ABORT
        for k in range(start + (p[start] == c'-'), i):
            value = value * 10 + (p[k] - c'0')
        return PyLong_FromLongLong(-value if p[start] == c'-' else value)
    if i - start >= 64:
        return _ABORT
    memcpy(text, p + start, i - start)
    text[i - start] = 0
    try:
        d = PyOS_string_to_double(text, &stop, NULL)
    except ValueError:
        return _ABORT
    if stop != text + (i - start) or not Py_IS_FINITE(d):
        return _ABORT  # loads_json refuses numbers out of float range
    return PyFloat_FromDouble(d)


cdef object _json_value(Bytes p, Py_ssize_t* at, Py_ssize_t end, int depth):
    cdef Py_ssize_t i = _skip_space(p, at[0], end)
    cdef unsigned char c
    cdef dict entries
    cdef list items
    if i >= end:
        return _ABORT
    c = p[i]
    if c == c'"':
        at[0] = i + 1
        return _json_str(p, at, end)
    if c == c'-' or c'0' <= c <= c'9':
        at[0] = i
        return _json_number(p, at, end)
    if c == c'{' or c == c'[':
        if depth >= _JSON_MAX_DEPTH:
            return _ABORT
        i = _skip_space(p, i + 1, end)
        if c == c'{':
            entries = {}
            if i < end and p[i] == c'}':
                at[0] = i + 1
                return entries
            while True:
                if i >= end or p[i] != c'"':
                    return _ABORT
                at[0] = i + 1
                key = _json_str(p, at, end, True)
                if key is _ABORT:
                    return _ABORT
                i = _skip_space(p, at[0], end)
                if i >= end or p[i] != c':':
                    return _ABORT
                at[0] = i + 1
                value = _json_value(p, at, end, depth + 1)
                if value is _ABORT:
                    return _ABORT
                entries[key] = value
                i = _skip_space(p, at[0], end)
                if i < end and p[i] == c',':
                    i = _skip_space(p, i + 1, end)
                    continue
                if i < end and p[i] == c'}':
                    at[0] = i + 1
                    return entries
                return _ABORT
        items = []
        if i < end and p[i] == c']':
            at[0] = i + 1
            return items
        at[0] = i
        while True:
            value = _json_value(p, at, end, depth + 1)
            if value is _ABORT:
                return _ABORT
            items.append(value)
            i = _skip_space(p, at[0], end)
            if i < end and p[i] == c',':
                at[0] = i + 1
                continue
            if i < end and p[i] == c']':
                at[0] = i + 1
                return items
            return _ABORT
    if end - i >= 4 and memcmp(p + i, b"null", 4) == 0:
        at[0] = i + 4
        return None
    if end - i >= 4 and memcmp(p + i, b"true", 4) == 0:
        at[0] = i + 4
        return True
    if end - i >= 5 and memcmp(p + i, b"false", 5) == 0:
        at[0] = i + 5
        return False
    return _ABORT


cdef object _read_json(Bytes p, Py_ssize_t n):
    # loads_json(p[:n].decode())
    cdef Py_ssize_t at = 0
    value = _json_value(p, &at, n, 0)
    if value is not _ABORT and _skip_space(p, at, n) == n:
        return value
    return _loads(PyUnicode_DecodeUTF8(<const char*>p, n, NULL))


def json_dumps(value):
    """``dumps_json(value)``, written here where it can be (for tests)."""
    cdef char stack[256]
    cdef Buf b
    _buf_on(&b, stack, sizeof(stack))
    try:
        if _json_put(&b, value, 0):
            return PyUnicode_DecodeUTF8(b.data, b.size, NULL)
        return _dumps(value)
    finally:
        if b.heap:
            free(b.data)


def json_loads(bytes data):
    """``loads_json(data.decode())``, read here where it can be (for tests)."""
    return _read_json(<Bytes>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef int _encode(Buf* b, Type t, object v, int depth) except -1:
    cdef int kind = t.kind
    cdef int overflow = 0
    cdef long long n
    cdef int64_t days
    if kind == K_STRING:
        if PyUnicode_CheckExact(v):
            return _put_str(b, v)
        return _put_slow(b, kind, v)
    if kind == K_INT or kind == K_LONG:
        if PyLong_CheckExact(v) or PyBool_Check(v):
            n = PyLong_AsLongLongAndOverflow(v, &overflow)
            if not overflow and (kind == K_LONG or -2147483648 <= n <= 2147483647):
                return _put_long(b, n)
        return _put_slow(b, kind, v)  # out of range: raises as the generated code
    if kind == K_NULLABLE:
        if v is None:
            return _put_byte(b, <char>(2 * t.null_index))
        _put_byte(b, <char>(2 * (1 - t.null_index)))
        return _encode(b, t.item, v, depth)
    if kind == K_RECORD:
        return _encode_record(b, t.record, v, depth + 1)
    if kind == K_TIMESTAMP:
        if PyDateTime_CheckExact(v) and PyDateTime_DATE_GET_TZINFO(v) == _UTC:
            days = _days_from_civil(
                PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)
            )
            return _put_long(
                b,
                (
                    days * 86400
                    + PyDateTime_DATE_GET_HOUR(v) * 3600
                    + PyDateTime_DATE_GET_MINUTE(v) * 60
                    + PyDateTime_DATE_GET_SECOND(v)
                ) * 1000000
                + PyDateTime_DATE_GET_MICROSECOND(v),
            )
        return _put_slow(b, kind, v)
    if kind == K_JSON:
        return _put_json(b, v)
    if kind == K_MAP:
        return _encode_map(b, t, v, depth)
    if kind == K_ARRAY:
        return _encode_array(b, t, v, depth)
    if kind == K_BOOLEAN:
        return _put_byte(b, 1 if v else 0)
    if kind == K_DOUBLE:
        if PyFloat_CheckExact(v):
            _reserve(b, 8)
            PyFloat_Pack8(PyFloat_AS_DOUBLE(v), b.data + b.size, 1)
            b.size += 8
            return 0
        return _put_slow(b, kind, v)
    if kind == K_BYTES:
        if PyBytes_CheckExact(v):
            return _put_bytes(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
        return _put_slow(b, kind, v)
    return 0  # K_NULL: nothing


cdef int _encode_array(Buf* b, Type t, object v, int depth) except -1:
    # The generated code: if v: write len(v), then each item; then the 0 block.
    cdef Type item = t.item
    if v:
        _put_long(b, len(v))
        if type(v) is tuple:
            for x in <tuple>v:
                _encode(b, item, x, depth)
        else:
            for x in v:
                _encode(b, item, x, depth)
    return _put_byte(b, 0)


cdef int _encode_map(Buf* b, Type t, object v, int depth) except -1:
    cdef Type item = t.item
    if v:
        _put_long(b, len(v))
        if type(v) is dict:
            for key, x in (<dict>v).items():
                if PyUnicode_CheckExact(key):
                    _put_str(b, key)
                else:
                    _put_slow(b, K_STRING, key)
                _encode(b, item, x, depth)
        else:
            for key, x in v.items():
                if PyUnicode_CheckExact(key):
                    _put_str(b, key)
                else:
                    _put_slow(b, K_STRING, key)
                _encode(b, item, x, depth)
    return _put_byte(b, 0)


cdef int _encode_record(Buf* b, Record r, object o, int depth) except -1:
    cdef Py_ssize_t i = 0
    cdef PyObject* slot
    cdef bint exact = Py_TYPE(o) == r.tp
    value = None
    try:
        if depth > _MAX_DEPTH:
            raise RecursionError("maximum recursion depth exceeded while encoding Avro")
        for i in range(r.n):
            value = None
            slot = agentlog_avro_get_slot(o, r.offsets[i]) if exact else NULL
            if slot != NULL:
                value = <object>slot
            else:  # another type, or an unset slot: whatever getattr says
                value = getattr(o, <str>r.names[i])
            _encode(b, <Type>r.types[i], value, depth)
    except FieldError:
        raise
    except Exception as e:
        raise FieldError(r.name, r.names[i] if r.n else None, value, e) from e
    return 0


def encode(Record record, bytes header, object value):
    """``header`` followed by the Avro binary encoding of ``value``, a ``record``.

    Raises:
        FieldError: a field value does not fit the schema.
    """
    if not _configured:
        raise RuntimeError("agentlog.streams._avro_fast.configure() was not called")
    return _encode_value(record, header, value)


cdef bytes _encode_value(Record record, bytes header, object value):
    cdef char stack[512]
    cdef Buf b
    _buf_on(&b, stack, sizeof(stack))
    try:
        _put_raw(&b, PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header))
        _encode_record(&b, record, value, 0)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        if b.heap:
            free(b.data)


# --- decoding -------------------------------------------------------------------------------

cdef int64_t _read_long_slow(Bytes data, Py_ssize_t* at, Py_ssize_t end) except? -1:
    # As codec._read_long: IndexError (truncated) past the end, at most 10 bytes, 64 bits.
    cdef Py_ssize_t pos = at[0]
    cdef uint64_t n = 0, b
    cdef int shift = 0
    while True:
        if pos >= end:
            raise _Truncated()
        b = data[pos]
        pos += 1
        if shift == 63:
            if b >= 0x80:
                raise _Corrupt("varint longer than 10 bytes")
            if b > 1:
                raise _Corrupt("varint exceeds 64 bits")
            n |= b << 63
            break
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    at[0] = pos
    return <int64_t>((n >> 1) ^ (0 - (n & 1)))


cdef inline int64_t _read_long(Bytes data, Py_ssize_t* at, Py_ssize_t end) except? -1:
    cdef Py_ssize_t pos = at[0]
    cdef unsigned char b
    if pos < end:
        b = data[pos]
        if b < 0x80:
            at[0] = pos + 1
            return (b >> 1) ^ -(<int64_t>(b & 1))
    return _read_long_slow(data, at, end)


cdef inline Py_ssize_t _read_length(Bytes data, Py_ssize_t* at, Py_ssize_t end) except -1:
    cdef int64_t n = _read_long(data, at, end)
    if n < 0:
        raise _Corrupt(f"negative length {n}")
    if n > end - at[0]:
        raise _Truncated()
    return <Py_ssize_t>n


cdef object _read_str(Bytes data, Py_ssize_t* at, Py_ssize_t end):
    cdef Py_ssize_t n = _read_length(data, at, end)
    cdef Py_ssize_t pos = at[0]
    text = _utf8_str(data + pos, n)
    at[0] = pos + n
    return text


cdef object _read_key(Bytes data, Py_ssize_t* at, Py_ssize_t end):
    cdef Py_ssize_t n = _read_length(data, at, end)
    cdef Py_ssize_t pos = at[0]
    text = _utf8_key(data + pos, n)
    at[0] = pos + n
    return text


cdef object _decode(Bytes data, Py_ssize_t* at, Py_ssize_t end, Type t, int depth):
    cdef int kind = t.kind
    cdef int64_t n
    cdef Py_ssize_t pos, size
    cdef unsigned char b
    if kind == K_STRING:
        return _read_str(data, at, end)
    if kind == K_INT:
        n = _read_long(data, at, end)
        if n < -2147483648 or n > 2147483647:
            raise _Corrupt(f"{n} does not fit an Avro int")
        return PyLong_FromLongLong(n)
    if kind == K_LONG:
        return PyLong_FromLongLong(_read_long(data, at, end))
    if kind == K_NULLABLE:
        n = _read_long(data, at, end)
        if n == t.null_index:
            return None
        if n == 1 - t.null_index:
            return _decode(data, at, end, t.item, depth)
        raise _Corrupt(f"union index {n}")
    if kind == K_RECORD:
        return _decode_record(data, at, end, t.record, depth + 1)
    if kind == K_TIMESTAMP:
        return _datetime_of(_read_long(data, at, end))
    if kind == K_JSON:
        size = _read_length(data, at, end)
        pos = at[0]
        value = _read_json(data + pos, size)
        at[0] = pos + size
        return value
    if kind == K_MAP or kind == K_ARRAY:
        return _decode_blocks(data, at, end, t, depth)
    if kind == K_BOOLEAN:
        pos = at[0]
        if pos >= end:
            raise _Truncated()
        b = data[pos]
        at[0] = pos + 1
        if b > 1:
            raise _Corrupt(f"boolean byte {b}")
        return b == 1
    if kind == K_DOUBLE:
        pos = at[0]
        if 8 > end - pos:
            raise _Truncated()
        at[0] = pos + 8
        return PyFloat_FromDouble(PyFloat_Unpack8(<const char*>data + pos, 1))
    if kind == K_BYTES:
        size = _read_length(data, at, end)
        pos = at[0]
        at[0] = pos + size
        return PyBytes_FromStringAndSize(<const char*>data + pos, size)
    return None  # K_NULL


cdef object _decode_blocks(Bytes data, Py_ssize_t* at, Py_ssize_t end, Type t, int depth):
    cdef bint is_map = t.kind == K_MAP
    cdef Type item = t.item
    cdef int64_t signed_count
    cdef uint64_t count, i
    cdef list items = None
    cdef dict entries = None
    if is_map:
        entries = {}
    else:
        items = []
    while True:
        signed_count = _read_long(data, at, end)
        if signed_count == 0:
            break
        if signed_count < 0:
            count = 0 - <uint64_t>signed_count
            _read_long(data, at, end)  # the block's byte size, not needed
        else:
            count = <uint64_t>signed_count
        # count * min_item > bytes left: the block cannot fit (and must not allocate)
        if t.min_item and count > <uint64_t>((end - at[0]) // t.min_item):
            raise _Truncated()
        i = 0
        while i < count:
            if is_map:
                key = _read_key(data, at, end)
                entries[key] = _decode(data, at, end, item, depth)
            else:
                items.append(_decode(data, at, end, item, depth))
            i += 1
    if is_map:
        return entries
    return tuple(items)


cdef object _decode_record(Bytes data, Py_ssize_t* at, Py_ssize_t end, Record r, int depth):
    cdef Py_ssize_t i
    if depth > _MAX_DEPTH:
        raise RecursionError("maximum recursion depth exceeded while decoding Avro")
    o = agentlog_avro_alloc(r.tp)
    for i in range(r.n):
        agentlog_avro_set_slot(o, r.offsets[i], _decode(data, at, end, <Type>r.types[i], depth))
    return o


def decode(Record record, bytes data, Py_ssize_t start, Py_ssize_t end):
    """``(value, pos)``: the ``record`` encoded in ``data[start:end]``, and where it ends.

    Raises:
        the codec's ``_Truncated`` or ``_Corrupt``, or what bad UTF-8, bad JSON
        or out-of-range timestamps raise.
    """
    cdef Py_ssize_t pos = start
    if not _configured:
        raise RuntimeError("agentlog.streams._avro_fast.configure() was not called")
    if not 0 <= start <= end <= PyBytes_GET_SIZE(data):
        raise ValueError(f"bad range {start}:{end} of {PyBytes_GET_SIZE(data)} bytes")
    value = _decode_record(<Bytes>PyBytes_AS_STRING(data), &pos, end, record, 0)
    return value, pos


# --- whole events: the hot path of AvroCodec.encode and AvroCodec.decode -------------------

cdef class _Event:
    cdef Record record
    cdef bytes header
    cdef str name
    cdef uint64_t fingerprint
    # where event.envelope.type is: slot offsets, and the Envelope class
    cdef bint checkable
    cdef Py_ssize_t envelope_offset
    cdef Py_ssize_t type_offset
    cdef PyTypeObject* envelope_tp


cdef class Codec:
    """Every event of a codec, by class and by fingerprint, for :meth:`encode` and :meth:`decode`.

    Both return None instead of raising: on anything but the plain success, the
    caller takes its general path, which finds (and reports) what is wrong.
    """

    cdef dict by_type
    cdef list events  # sorted by fingerprint
    cdef uint64_t* fingerprints
    cdef Py_ssize_t n

    def __cinit__(self):
        self.by_type = {}
        self.events = []
        self.fingerprints = NULL
        self.n = 0

    def __dealloc__(self):
        free(self.fingerprints)

    def add(self, Record record, bytes header, str name):
        """Add the event ``name``: its program and its 10-byte single-object header."""
        cdef _Event event = _Event()
        cdef uint64_t fingerprint
        cdef Py_ssize_t i
        cdef Record envelope
        cdef Type first
        if PyBytes_GET_SIZE(header) != 10 or header[:2] != b"\xc3\x01":
            raise ValueError("header must be C3 01 and the 8-byte fingerprint")
        memcpy(&fingerprint, PyBytes_AS_STRING(header) + 2, 8)
        event.record, event.header, event.name = record, header, name
        event.fingerprint = fingerprint
        event.checkable = False
        first = <Type>record.types[0] if record.n else None
        if first is not None and record.names[0] == "envelope" and first.kind == K_RECORD:
            envelope = first.record
            if "type" in envelope.names:
                i = envelope.names.index("type")
                event.checkable = (<Type>envelope.types[i]).kind == K_STRING
                event.envelope_offset = record.offsets[0]
                event.type_offset = envelope.offsets[i]
                event.envelope_tp = envelope.tp
        events = [e for e in self.events if (<_Event>e).fingerprint != fingerprint]
        events.append(event)
        events.sort(key=lambda e: (<_Event>e).fingerprint)
        fingerprints = <uint64_t*>malloc(len(events) * sizeof(uint64_t))
        if fingerprints == NULL:
            raise MemoryError()
        for i in range(len(events)):
            fingerprints[i] = (<_Event>events[i]).fingerprint
        free(self.fingerprints)
        self.fingerprints = fingerprints
        self.events = events
        self.n = len(events)
        self.by_type[record.cls] = event

    cdef _Event _find(self, uint64_t fingerprint):
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) // 2
            if self.fingerprints[mid] < fingerprint:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.n and self.fingerprints[lo] == fingerprint:
            return <_Event>self.events[lo]
        return None

    cdef bint _typed(self, _Event event, object value):
        # value.envelope.type == event.name, value being an event.record.cls
        cdef PyObject* envelope
        cdef PyObject* name
        if not event.checkable:
            return False
        envelope = agentlog_avro_get_slot(value, event.envelope_offset)
        if envelope == NULL or Py_TYPE(<object>envelope) != event.envelope_tp:
            return False
        name = agentlog_avro_get_slot(<object>envelope, event.type_offset)
        return (
            name != NULL and PyUnicode_CheckExact(<object>name) and <str>name == event.name
        )

    def encode(self, value):
        """The single-object encoding of event ``value``; None if anything is amiss."""
        cdef _Event event
        found = self.by_type.get(type(value))
        if found is None or not _configured:
            return None
        event = <_Event>found
        if not self._typed(event, value):
            return None
        try:
            return _encode_value(event.record, event.header, value)
        except Exception:
            return None

    def decode(self, data):
        """The event in single-object encoded ``data`` (bytes); None if anything is amiss."""
        cdef Bytes p
        cdef Py_ssize_t end, pos = 10
        cdef uint64_t fingerprint
        cdef _Event event
        if type(data) is not bytes or not _configured:
            return None
        p = <Bytes>PyBytes_AS_STRING(data)
        end = PyBytes_GET_SIZE(data)
        if end < 10 or p[0] != 0xC3 or p[1] != 0x01:
            return None
        memcpy(&fingerprint, p + 2, 8)
        event = self._find(fingerprint)
        if event is None:
            return None
        try:
            value = _decode_record(p, &pos, end, event.record, 0)
        except Exception:
            return None
        if pos != end or not self._typed(event, value):
            return None
        return value


# --- partitioning: Kafka's default partitioner hash ------------------------------------


def murmur2(bytes data):
    """Kafka's murmur2 of ``data``, unsigned 32 bits: ``aiokafka.partitioner.murmur2`` in C.

    The Java client's ``Utils.murmur2`` (seed 0x9747b28c), which picks the
    partition of a keyed record; aiokafka's pure-Python one costs ~13 us per
    UUID-sized key, this ~0.1 us. A unit test holds the two equal.
    """
    cdef const unsigned char* p = <const unsigned char*> PyBytes_AS_STRING(data)
    cdef Py_ssize_t length = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, base = length & ~(<Py_ssize_t> 3), extra = length & 3
    cdef uint32_t m = 0x5BD1E995
    cdef uint32_t h = (<uint32_t> 0x9747B28C) ^ <uint32_t> length
    cdef uint32_t k
    for i in range(0, base, 4):
        k = (<uint32_t> p[i]) | (<uint32_t> p[i + 1] << 8) | (<uint32_t> p[i + 2] << 16) | (
            <uint32_t> p[i + 3] << 24
        )
        k *= m
        k ^= k >> 24
        k *= m
        h *= m
        h ^= k
    if extra >= 3:
        h ^= <uint32_t> p[base + 2] << 16
    if extra >= 2:
        h ^= <uint32_t> p[base + 1] << 8
    if extra >= 1:
        h ^= <uint32_t> p[base]
        h *= m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    return h
