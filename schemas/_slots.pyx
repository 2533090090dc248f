# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled slot filling for the constructors of :mod:`agentlog.schemas.slots`.

A :class:`SlotFiller` knows the slot offsets of some fields of one class
(read once from the slots' member descriptors) and stores a tuple of values
into an instance in one call: what the generated ``__init__`` otherwise does
with one descriptor ``__set__`` call per field, which costs most of building
an event in Python. ``agentlog.schemas.slots`` uses it when this extension is
built and the descriptor calls otherwise (a unit test holds the two equal).

:func:`install_init` goes one step further: it points the class's C-level
``tp_init`` at a compiled constructor that binds the arguments itself (what the
generated Python ``__init__`` does, without a Python frame), and hands every
call it does not fully understand (a missing or unknown argument, one given
twice, too many positional ones) to that Python ``__init__``, which then builds
the instance or raises its usual ``TypeError``. ``cls.__init__`` stays the
Python function (signatures, ``inspect``, explicit ``cls.__init__(obj, ...)``
calls); ``cls(...)`` takes the compiled path.

Also :func:`utc_now`: ``datetime.now(UTC)`` from ``clock_gettime``, without the
method lookup and timezone call of the Python spelling (every new envelope
takes one).
"""

from cpython.datetime cimport datetime_new, import_datetime
from cpython.object cimport PyObject, PyTypeObject
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
    ctypedef int (*initproc)(PyObject*, PyObject*, PyObject*) except -1
    ctypedef struct PyTypeObjectInit "PyTypeObject":
        initproc tp_init
    bint PyDict_Next(object, Py_ssize_t*, PyObject**, PyObject**)
    PyObject* PyDict_GetItemWithError(object, PyObject*) except? NULL

cdef extern from *:
    """
    #include <structmember.h>
    #include <time.h>
    static inline void agentlog_store(PyObject **slot, PyObject *v) {
        PyObject *old = *slot;
        Py_INCREF(v);
        *slot = v;
        Py_XDECREF(old);
    }
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
    void agentlog_store(PyObject** slot, PyObject* v) noexcept
    int agentlog_realtime(long long* sec, long* nsec)

cdef object _UTC = UTC
cdef object _object_new = object.__new__
cdef enum:
    _MAX_FIELDS = 64  # a compiled __init__'s values live on the C stack


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
    cdef dict index  # name -> position in names

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
        self.index = {name: i for i, name in enumerate(names)}

    def __dealloc__(self):
        free(self.offsets)

    cdef void store(self, object obj, PyObject** values) noexcept:
        """Store ``values[i]`` (borrowed, not NULL) into slot ``i`` of ``obj`` (type checked)."""
        cdef Py_ssize_t i
        for i in range(self.n):
            agentlog_store(agentlog_slot_at(obj, self.offsets[i]), values[i])

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
        for i in range(self.n):
            agentlog_store(agentlog_slot_at(obj, self.offsets[i]), PyTuple_GET_ITEM(values, i))

    def copy(self, obj, dict changes):
        """A new instance with ``obj``'s slots, the ``changes`` (name -> value) replacing some.

        What ``dataclasses.replace`` gives for a class whose ``__init__`` only
        stores its arguments, without the ``__init__`` call. Returns
        ``NotImplemented`` when it cannot answer exactly: ``obj`` is not an
        instance of this very class, one of its slots is empty, or a change
        names a field outside ``names`` (the caller's Python path then copies
        or raises).
        """
        if type(obj) is not self.cls:
            return NotImplemented
        cdef Py_ssize_t i
        cdef PyObject* old
        cdef PyObject* found
        cdef PyObject* key
        cdef PyObject* value
        cdef Py_ssize_t at = 0
        new = _object_new(self.cls)
        for i in range(self.n):
            old = agentlog_slot_at(obj, self.offsets[i])[0]
            if old == NULL:
                return NotImplemented  # an unset slot: reading it must raise AttributeError
            agentlog_store(agentlog_slot_at(new, self.offsets[i]), old)
        while PyDict_Next(changes, &at, &key, &value):
            found = PyDict_GetItemWithError(self.index, key)
            if found == NULL:
                return NotImplemented  # not a field: the Python path names it
            agentlog_store(agentlog_slot_at(new, self.offsets[<Py_ssize_t> <object> found]), value)
        return new


cdef object _MISSING = object()  # no default
cdef dict _INITS = {}  # class -> its _CompiledInit


cdef class _CompiledInit:
    """What the compiled ``tp_init`` of one class needs: slots, parameters, defaults."""

    cdef SlotFiller filler
    cdef object python_init
    cdef Py_ssize_t n
    cdef tuple positional  # field index of each positional parameter, in order
    cdef dict index  # field name -> field index
    cdef tuple defaults  # per field: the default, or _MISSING
    cdef tuple factories  # per field: the default factory, or None

    cdef int run(self, object obj, tuple args, object kwds) except -1:
        cdef PyObject* values[_MAX_FIELDS]
        cdef Py_ssize_t i, j, at = 0, nargs = PyTuple_GET_SIZE(args)
        cdef PyObject* key
        cdef PyObject* value
        cdef PyObject* found
        cdef list made = None  # owns the objects default factories return
        if nargs > PyTuple_GET_SIZE(self.positional):
            return self.fallback(obj, args, kwds)
        for i in range(self.n):
            values[i] = NULL
        for i in range(nargs):
            values[<Py_ssize_t> self.positional[i]] = PyTuple_GET_ITEM(args, i)
        if kwds is not None:
            while PyDict_Next(kwds, &at, &key, &value):
                found = PyDict_GetItemWithError(self.index, key)
                if found == NULL:
                    return self.fallback(obj, args, kwds)  # unknown name
                j = <Py_ssize_t> <object> found
                if values[j] != NULL:
                    return self.fallback(obj, args, kwds)  # given twice
                values[j] = value
        for i in range(self.n):
            if values[i] != NULL:
                continue
            default = self.defaults[i]
            if default is not _MISSING:
                values[i] = <PyObject*> default
                continue
            factory = self.factories[i]
            if factory is None:
                return self.fallback(obj, args, kwds)  # a required argument is missing
            if made is None:
                made = []
            fresh = factory()
            made.append(fresh)  # holds it until the slot does
            values[i] = <PyObject*> fresh
        self.filler.store(obj, values)
        return 0

    cdef int fallback(self, object obj, tuple args, object kwds) except -1:
        if kwds is None:
            self.python_init(obj, *args)
        else:
            self.python_init(obj, *args, **kwds)
        return 0


cdef int _compiled_tp_init(PyObject* obj, PyObject* args, PyObject* kwds) except -1:
    cls = type(<object> obj)
    spec = _INITS.get(cls)
    if spec is None:  # a subclass inherited the slot: its nearest registered base
        for base in cls.__mro__:
            spec = _INITS.get(base)
            if spec is not None:
                break
        else:
            raise TypeError(f"{cls.__name__} has no compiled __init__")
    return (<_CompiledInit> spec).run(
        <object> obj, <tuple> args, <object> kwds if kwds != NULL else None
    )


def install_init(
    type cls, tuple names, tuple positional, tuple defaults, tuple factories, python_init
):
    """Make ``cls(...)`` bind its arguments in C and fill the slots ``names`` (field order).

    Args:
        cls: the class (its ``__init__`` must already be ``python_init``).
        names: the fields, in order.
        positional: the field index of each positional parameter, in order.
        defaults: per field, its default or ``MISSING`` (:data:`MISSING`).
        factories: per field, its default factory or None.
        python_init: the equivalent Python ``__init__``, for every call the
            compiled one leaves to it.

    Raises:
        TypeError: a name is not a writable object slot, ``cls.__init__`` is not
            ``python_init``, or the class has more than 64 fields.
    """
    cdef Py_ssize_t n = len(names)
    if n > _MAX_FIELDS:
        raise TypeError(f"{cls.__name__} has {n} fields; the compiled __init__ takes at most 64")
    if not (len(defaults) == len(factories) == n) or len(positional) > n:
        raise TypeError("names, defaults and factories must be as long, positional no longer")
    if cls.__dict__.get("__init__") is not python_init:
        raise TypeError(f"{cls.__name__}.__init__ is not the given python_init")
    spec = _CompiledInit()
    spec.filler = SlotFiller(cls, names)
    spec.python_init = python_init
    spec.n = n
    spec.positional = positional
    spec.index = {name: i for i, name in enumerate(names)}
    spec.defaults = defaults
    spec.factories = factories
    _INITS[cls] = spec
    (<PyTypeObjectInit*> cls).tp_init = _compiled_tp_init


#: The marker of a field without a default, for :func:`install_init`.
MISSING = _MISSING


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
