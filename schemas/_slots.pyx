# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled slot filling for the constructors of :mod:`agentlog.schemas.slots`.

A :class:`SlotFiller` knows the slot offsets of some fields of one class
(read once from the slots' member descriptors) and stores a tuple of values
into an instance in one call: what the generated ``__init__`` otherwise does
with one descriptor ``__set__`` call per field, which costs most of building
an event in Python. ``agentlog.schemas.slots`` uses it when this extension is
built and the descriptor calls otherwise (a unit test holds the two equal).

Also :func:`utc_now`: ``datetime.now(UTC)`` from ``clock_gettime``, without the
method lookup and timezone call of the Python spelling (every new envelope
takes one).
"""

from cpython.datetime cimport datetime_new, import_datetime
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdlib cimport free, malloc

from datetime import UTC
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

    bint PyObject_TypeCheck(object, PyTypeObject*)

cdef extern from *:
    """
    #include <structmember.h>
    #include <time.h>
    static inline PyObject **agentlog_slot_at(PyObject *o, Py_ssize_t offset) {
        return (PyObject **)((char *)o + offset);
    }
    static inline int agentlog_realtime(long long *sec, long *nsec) {
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
        *sec = (long long)ts.tv_sec;
        *nsec = ts.tv_nsec;
        return 0;
    }
    """
    int T_OBJECT_EX
    int READONLY
    PyObject** agentlog_slot_at(object o, Py_ssize_t offset)
    int agentlog_realtime(long long* sec, long* nsec)

cdef object _UTC = UTC


cdef class SlotFiller:
    """Stores values into the named slots of instances of one class, in the given order.

    Args:
        cls: a class with ``__slots__`` (a ``dataclass(slots=True)``).
        names: the slots to fill, in the order :meth:`fill` receives values.

    Raises:
        TypeError: a name is not a writable object slot of ``cls``.
    """

    cdef readonly type cls
    cdef readonly tuple names
    cdef Py_ssize_t n
    cdef Py_ssize_t* offsets

    def __cinit__(self, type cls, tuple names):
        self.offsets = NULL
        cdef Py_ssize_t n = len(names)
        cdef Py_ssize_t* offsets = <Py_ssize_t*> malloc(max(n, 1) * sizeof(Py_ssize_t))
        if offsets == NULL:
            raise MemoryError()
        cdef PyMemberDef* member
        try:
            for i, name in enumerate(names):
                descriptor = getattr(cls, name, None)
                if type(descriptor) is not MemberDescriptorType:
                    raise TypeError(f"{cls.__name__}.{name} is not a slot")
                member = (<PyMemberDescrObject*> descriptor).d_member
                if member.type != T_OBJECT_EX or member.flags & READONLY:
                    raise TypeError(f"{cls.__name__}.{name} is not a writable object slot")
                offsets[i] = member.offset
        except BaseException:
            free(offsets)
            raise
        self.offsets = offsets
        self.n = n
        self.cls = cls
        self.names = names

    def __dealloc__(self):
        free(self.offsets)

    def fill(self, obj, tuple values):
        """Store ``values[i]`` into slot ``names[i]`` of ``obj``, replacing what is there.

        Raises:
            TypeError: ``obj`` is not an instance of the class, or the count differs.
        """
        if not PyObject_TypeCheck(obj, <PyTypeObject*> self.cls):
            raise TypeError(
                f"fill needs a {self.cls.__name__} instance, not {type(obj).__name__}"
            )
        if PyTuple_GET_SIZE(values) != self.n:
            raise TypeError(f"fill takes {self.n} values, got {PyTuple_GET_SIZE(values)}")
        cdef Py_ssize_t i
        cdef PyObject** slot
        cdef PyObject* old
        cdef PyObject* value
        for i in range(self.n):
            value = PyTuple_GET_ITEM(values, i)
            slot = agentlog_slot_at(obj, self.offsets[i])
            old = slot[0]
            Py_INCREF(<object> value)
            slot[0] = value
            Py_XDECREF(old)


def utc_now():
    """The current time as an aware UTC ``datetime`` (``datetime.now(UTC)``), microseconds."""
    cdef long long sec
    cdef long nsec
    if agentlog_realtime(&sec, &nsec) != 0:
        raise OSError("clock_gettime(CLOCK_REALTIME) failed")
    return _utc(sec, <int>(nsec // 1000))


def utc_from_unix(long long seconds, int microseconds):
    """The aware UTC ``datetime`` of Unix time ``seconds`` plus ``microseconds`` (0-999999).

    What :func:`utc_now` builds from the clock; here for tests.
    """
    if not 0 <= microseconds < 1_000_000:
        raise ValueError(f"microseconds={microseconds} is not in 0..999999")
    return _utc(seconds, microseconds)


cdef object _utc(long long sec, int usec):
    cdef long long days = sec // 86400  # Cython floors like Python (cdivision off)
    cdef long long rest = sec - days * 86400
    cdef int y, m, d
    _civil(days, &y, &m, &d)
    return datetime_new(
        y, m, d, <int>(rest // 3600), <int>((rest // 60) % 60), <int>(rest % 60), usec, _UTC
    )


cdef void _civil(long long days, int* year, int* month, int* day) noexcept:
    """Year, month, day of ``days`` since 1970-01-01 (proleptic Gregorian; H. Hinnant's method)."""
    cdef long long z = days + 719468
    cdef long long era = (z if z >= 0 else z - 146096) // 146097
    cdef long long doe = z - era * 146097
    cdef long long yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef long long y = yoe + era * 400
    cdef long long doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef long long mp = (5 * doy + 2) // 153
    cdef long long dd = doy - (153 * mp + 2) // 5 + 1
    cdef long long m = mp + 3 if mp < 10 else mp - 9
    year[0] = <int>(y + (m <= 2))
    month[0] = <int>m
    day[0] = <int>dd
