"""Blob codec: turns nested Python / numpy values into bytes and back, bit-exact and without running code.

Wire format, version 1. All integers are unsigned little-endian; u8 is one byte, u64 eight bytes.

    blob    := magic version flags body
    magic   := b"BFB\\x00"
    version := u8    1. A reader rejects any version above the highest it knows.
    flags   := u8    bit 0 set: body is zlib-compressed. Other bits must be 0.
    body    := value                          when flag bit 0 is clear
             | u64 raw_length  zlib(value)    when it is set; raw_length is the length of the value bytes
                                              (>= 1) and the zlib stream must end exactly at the blob's end.

A body holds exactly one value and nothing after it. A value is a one-byte ASCII tag and its payload:

    N  None           T  True           F  False
    i  int            u64 n (>= 1), n bytes two's-complement signed integer
    f  float          8 bytes IEEE 754 binary64
    c  complex        8 bytes real part, 8 bytes imaginary part, both binary64
    s  str            u64 n, n bytes UTF-8 (lone surrogates are kept, as Python's "surrogatepass" does)
    b  bytes          u64 n, n bytes
    u  numpy.str_     as s
    y  numpy.bytes_   as b
    l  list           u64 count, count values
    t  tuple          u64 count, count values
    d  dict           u64 count, count pairs (key value, then item value) in insertion order; keys distinct
    n  numpy scalar   dtype, then dtype.itemsize raw bytes
    a  numpy array    dtype layout u64 nbytes, then nbytes raw element bytes in the layout's order;
                      nbytes must equal product(shape) * dtype.itemsize
    o  object array   layout, then product(shape) values in C (row-major) order

    dtype  := u64 n, n bytes of UTF-8 JSON: numpy.lib.format.dtype_to_descr(dtype) with tuples written as
              JSON arrays. A descr is a string such as "<f8", "|S5", "<M8[ns]" (byte order, kind, itemsize,
              optional datetime unit) or a list of fields [name, descr] / [name, descr, shape], where name is
              a string or [title, name] and shape a list of ints. Object dtypes are never written.
    layout := u8 order (0 = C, 1 = Fortran), u8 ndim (<= 64), ndim x u64 dimensions
"""

from __future__ import annotations

import json
import math
import re
import struct
import warnings
import zlib

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from blobflow.errors import BlobDecodeError, DataError

MAGIC = b"BFB\x00"
FORMAT_VERSION = 1
FLAG_ZLIB = 0x01
MAX_DEPTH = 100  # well inside Python's recursion limit, so forged nesting cannot exhaust the stack
MAX_NDIM = 64  # numpy's own limit
_ZLIB_MAX_RATIO = 1032  # deflate cannot expand more than this, so a larger raw_length is forged

_HEADER = struct.Struct("<4sBB")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_C128 = struct.Struct("<dd")
_PLAIN_KINDS = frozenset("biufcmMSUV")  # fixed-size kinds whose bytes are the value (no objects, no "T")
_DESCR_STRING = re.compile(r"[<>|][biufcmMSUV]\d+(?:\[\d*[A-Za-z]+\])?")


# ----------------------------------------------------------------------------------------------- encoding


def encode(value: object, *, compress: bool = False) -> bytes:
    """Serialise `value`; raises DataError naming the type of anything that cannot be stored."""
    parts: list[bytes | memoryview] = []
    _encode_value(value, parts, 0)
    if compress:
        body = b"".join(parts)
        return _HEADER.pack(MAGIC, FORMAT_VERSION, FLAG_ZLIB) + _U64.pack(len(body)) + zlib.compress(body, 1)
    # One join copies every array buffer exactly once.
    return b"".join([_HEADER.pack(MAGIC, FORMAT_VERSION, 0), *parts])


def _encode_value(value: object, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DataError(f"cannot store a value nested more than {MAX_DEPTH} levels deep (or inside itself)")
    kind = type(value)  # exact types: a subclass would not come back as itself
    if value is None:
        out.append(b"N")
    elif kind is bool:
        out.append(b"T" if value else b"F")
    elif kind is int:
        size = (value.bit_length() + 8) // 8  # room for the sign bit
        out += (b"i", _U64.pack(size), value.to_bytes(size, "little", signed=True))
    elif kind is float:
        out += (b"f", _F64.pack(value))
    elif kind is complex:
        out += (b"c", _C128.pack(value.real, value.imag))
    elif kind in (str, np.str_):
        raw = value.encode("utf-8", "surrogatepass")
        out += (b"s" if kind is str else b"u", _U64.pack(len(raw)), raw)
    elif kind in (bytes, np.bytes_):
        out += (b"b" if kind is bytes else b"y", _U64.pack(len(value)), bytes(value))
    elif kind in (list, tuple):
        out += (b"l" if kind is list else b"t", _U64.pack(len(value)))
        for item in value:
            _encode_value(item, out, depth + 1)
    elif kind is dict:
        out += (b"d", _U64.pack(len(value)))
        for key, item in value.items():
            _encode_value(key, out, depth + 1)
            _encode_value(item, out, depth + 1)
    elif kind is np.ndarray:
        _encode_array(value, out, depth)
    elif isinstance(value, np.generic):
        out += (b"n", _dtype_bytes(value.dtype), value.tobytes())
    else:
        raise DataError(f"cannot store a value of type {kind.__name__!r} in a blob")


def _encode_array(arr: np.ndarray, out: list, depth: int) -> None:
    fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
    order = "F" if fortran else "C"
    layout = bytes([fortran, arr.ndim]) + struct.pack(f"<{arr.ndim}Q", *arr.shape)
    if arr.dtype == object:
        out += (b"o", layout)
        for item in arr.ravel(order="C"):
            _encode_value(item, out, depth + 1)
        return
    head = _dtype_bytes(arr.dtype)
    data = np.asarray(arr, order=order)  # copies only non-contiguous views
    # A uint8 view exposes the buffer of any dtype (datetimes refuse memoryview); nbytes 0 has no buffer.
    raw = memoryview(data.reshape(-1, order=order).view(np.uint8)) if data.nbytes else b""
    out += (b"a", head, layout, _U64.pack(data.nbytes), raw)


def _dtype_bytes(dtype: np.dtype) -> bytes:
    """The length-prefixed JSON descr of `dtype`, checked to read back as the same dtype."""
    if dtype.kind not in _PLAIN_KINDS or dtype.hasobject or dtype.subdtype is not None:
        raise DataError(f"cannot store a numpy value of dtype {dtype} in a blob")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dtype metadata is dropped, as for .npy files
            text = json.dumps(dtype_to_descr(dtype), separators=(",", ":")).encode()
    except (ValueError, TypeError) as exc:  # overlapping / out-of-order fields, odd titles
        raise DataError(f"cannot store a numpy value of dtype {dtype} in a blob: {exc}") from None
    try:
        same = _dtype_from_text(memoryview(text)) == dtype
    except BlobDecodeError:
        same = False
    if not same:
        raise DataError(f"cannot store a numpy value of dtype {dtype} in a blob: it does not round-trip")
    return _U64.pack(len(text)) + text


# ----------------------------------------------------------------------------------------------- decoding


class _Truncated(BlobDecodeError):
    """The buffer ended early; describe() reacts by inflating more of a compressed body."""


class _Reader:
    """A cursor over the body that refuses every read reaching past its end."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n > self.remaining:
            raise _Truncated(
                f"truncated blob: {what} needs {n} bytes at payload offset {self.pos}, "
                f"only {self.remaining} remain"
            )
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.take(8, what))[0]

    def count(self, what: str, min_item_bytes: int = 1) -> int:
        """A length or count, checked against the bytes left *before* anything is allocated for it."""
        n = self.u64(what)
        if n * min_item_bytes > self.remaining:
            raise BlobDecodeError(
                f"corrupt blob: {what} {n} at payload offset {self.pos - 8} points beyond the end "
                f"({self.remaining} bytes remain)"
            )
        return n


def decode(data: bytes | bytearray | memoryview) -> object:
    """Rebuild the value `encode` stored; any problem with `data` raises BlobDecodeError."""
    body = _inflate(*_open(data))
    reader = _Reader(body)
    value = _decode_value(reader, 0)
    if reader.remaining:
        raise BlobDecodeError(f"corrupt blob: {reader.remaining} bytes of trailing garbage after the value")
    return value


def _open(data: object) -> tuple[memoryview, bool]:
    """Check magic, version and flags; return what follows them and whether it is compressed."""
    try:
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BlobDecodeError(f"not a blobflow blob: expected bytes, got {type(data).__name__!r}") from None
    if bytes(view[:4]) != MAGIC:
        raise BlobDecodeError("not a blobflow blob (it does not start with the BFB magic bytes)")
    if len(view) < _HEADER.size:
        raise BlobDecodeError(f"truncated blob: {len(view)} bytes, less than the {_HEADER.size}-byte header")
    _, version, flags = _HEADER.unpack_from(view)
    if version > FORMAT_VERSION:
        raise BlobDecodeError(
            f"blob was written by a newer blobflow (format {version}, this reads up to {FORMAT_VERSION})"
        )
    if version == 0:
        raise BlobDecodeError("corrupt blob: format version 0 does not exist")
    if flags & ~FLAG_ZLIB:
        raise BlobDecodeError(f"corrupt blob: unknown flags 0x{flags:02x}")
    return view[_HEADER.size :], bool(flags & FLAG_ZLIB)


def _compressed_length(rest: memoryview) -> int:
    if len(rest) < 8:
        raise _Truncated("truncated blob: the compressed body has no length")
    raw_length = _U64.unpack_from(rest)[0]
    if not 1 <= raw_length <= (len(rest) - 8) * _ZLIB_MAX_RATIO:
        raise BlobDecodeError(f"corrupt blob: impossible uncompressed length {raw_length}")
    return raw_length


def _inflate(rest: memoryview, compressed: bool) -> memoryview:
    if not compressed:
        return rest
    raw_length = _compressed_length(rest)
    inflater = zlib.decompressobj()
    try:
        # max_length bounds memory by the declared size; a second 1-byte read proves the stream ends there.
        body = inflater.decompress(rest[8:], raw_length)
        if not inflater.eof:
            body += inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise BlobDecodeError(f"corrupt blob: compressed body is damaged ({exc})") from None
    if len(body) != raw_length or not inflater.eof or inflater.unused_data:
        raise BlobDecodeError(
            f"corrupt blob: compressed body does not inflate to exactly {raw_length} bytes and end there"
        )
    return memoryview(body)


def _decode_value(r: _Reader, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise BlobDecodeError(f"corrupt blob: values nested more than {MAX_DEPTH} levels deep")
    tag = r.u8("a value tag")
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise BlobDecodeError(f"corrupt blob: unknown tag {bytes([tag])!r} at payload offset {r.pos - 1}")
    return decoder(r, depth)


def _decode_int(r: _Reader, depth: int) -> int:
    n = r.count("int length")
    if n == 0:
        raise BlobDecodeError("corrupt blob: int of zero length")
    return int.from_bytes(r.take(n, "int"), "little", signed=True)


def _decode_text(r: _Reader) -> str:
    try:
        return str(r.take(r.count("str length"), "str"), "utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise BlobDecodeError(f"corrupt blob: str is not valid UTF-8 ({exc.reason})") from None


def _decode_dict(r: _Reader, depth: int) -> dict:
    n = r.count("dict size", 2)
    out: dict = {}
    for _ in range(n):
        key, item = _decode_value(r, depth + 1), _decode_value(r, depth + 1)
        try:
            out[key] = item
        except TypeError:
            kind = type(key).__name__
            raise BlobDecodeError(f"corrupt blob: a dict key of type {kind!r} is unhashable") from None
    if len(out) != n:
        raise BlobDecodeError("corrupt blob: dict has duplicate keys")
    return out


def _read_dtype(r: _Reader) -> np.dtype:
    return _dtype_from_text(r.take(r.count("dtype length"), "dtype"))


def _dtype_from_text(raw: memoryview) -> np.dtype:
    text = str(raw, "utf-8", "replace")
    try:
        dtype = descr_to_dtype(_descr_from_json(json.loads(text), 0))
    except BlobDecodeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise BlobDecodeError(f"corrupt blob: bad dtype text {text[:80]!r} ({exc})") from None
    if dtype.kind not in _PLAIN_KINDS or dtype.hasobject or dtype.subdtype is not None:
        raise BlobDecodeError(f"corrupt blob: dtype {text[:80]!r} is not one blobflow writes")
    return dtype


def _descr_from_json(obj: object, depth: int) -> str | list:
    """Rebuild a descr from JSON, accepting only the shapes dtype_to_descr produces."""
    if isinstance(obj, str) and _DESCR_STRING.fullmatch(obj):
        return obj
    if isinstance(obj, list) and depth < MAX_DEPTH:
        return [_field_from_json(field, depth) for field in obj]
    raise BlobDecodeError(f"corrupt blob: bad dtype text near {json.dumps(obj)[:80]}")


def _field_from_json(field: object, depth: int) -> tuple:
    if isinstance(field, list) and len(field) in (2, 3):
        name = field[0]
        if isinstance(name, list) and len(name) == 2 and all(isinstance(s, str) for s in name):
            name = tuple(name)
        descr = _descr_from_json(field[1], depth + 1)
        shape = field[2:]
        if isinstance(name, (str, tuple)) and all(
            isinstance(dims, list) and all(type(d) is int for d in dims) for dims in shape
        ):
            return (name, descr, *(tuple(dims) for dims in shape))
    raise BlobDecodeError(f"corrupt blob: bad dtype field {json.dumps(field)[:80]}")


def _read_layout(r: _Reader) -> tuple[str, tuple[int, ...]]:
    fortran, ndim = r.u8("array order"), r.u8("array ndim")
    if fortran > 1 or ndim > MAX_NDIM:
        raise BlobDecodeError(f"corrupt blob: bad array layout (order {fortran}, {ndim} dimensions)")
    return "F" if fortran else "C", struct.unpack(f"<{ndim}Q", r.take(8 * ndim, "array shape"))


def _read_array_header(r: _Reader) -> tuple[np.dtype, str, tuple[int, ...]]:
    dtype = _read_dtype(r)
    order, shape = _read_layout(r)
    nbytes = r.u64("array byte count")
    if nbytes != math.prod(shape) * dtype.itemsize:
        raise BlobDecodeError(
            f"corrupt blob: an array of shape {shape} and dtype {dtype} holds "
            f"{math.prod(shape) * dtype.itemsize} bytes, but the blob says {nbytes}"
        )
    return dtype, order, shape


def _decode_array(r: _Reader, depth: int) -> np.ndarray:
    dtype, order, shape = _read_array_header(r)
    raw = r.take(math.prod(shape) * dtype.itemsize, "array data")
    try:
        out = np.empty(shape, dtype, order=order)
        if raw:
            # One byte-wise copy: writable, aligned, independent of `data`, and unlike ndarray.copy() it
            # keeps the padding bytes of structured dtypes.
            out.reshape(-1, order=order).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
        return out
    except (ValueError, OverflowError) as exc:
        raise BlobDecodeError(f"corrupt blob: cannot build an array of shape {shape} ({exc})") from None


def _decode_object_array(r: _Reader, depth: int) -> np.ndarray:
    order, shape = _read_layout(r)
    count = math.prod(shape)
    if count > r.remaining:  # every element takes at least its tag byte
        raise BlobDecodeError(f"corrupt blob: object array of shape {shape} is longer than the blob")
    try:
        out = np.empty(shape, dtype=object, order=order)
    except (ValueError, OverflowError) as exc:
        raise BlobDecodeError(f"corrupt blob: cannot build an array of shape {shape} ({exc})") from None
    flat = np.empty(count, dtype=object)
    for i in range(count):
        flat[i] = _decode_value(r, depth + 1)  # item assignment stores lists / arrays as single elements
    out[...] = flat.reshape(shape)
    return out


def _decode_scalar(r: _Reader, depth: int) -> np.generic:
    dtype = _read_dtype(r)
    if dtype.kind in "US":  # written as tags u / y; numpy would also choke on invalid code points here
        raise BlobDecodeError(f"corrupt blob: numpy scalar of dtype {dtype} under tag 'n'")
    raw = r.take(dtype.itemsize, "numpy scalar")
    if not raw:
        return np.zeros(1, dtype)[0]
    return np.frombuffer(raw, dtype=np.uint8).copy().view(dtype)[0]  # copy: a void scalar would view `data`


_DECODERS = {
    ord("N"): lambda r, d: None,
    ord("T"): lambda r, d: True,
    ord("F"): lambda r, d: False,
    ord("i"): _decode_int,
    ord("f"): lambda r, d: _F64.unpack(r.take(8, "float"))[0],
    ord("c"): lambda r, d: complex(*_C128.unpack(r.take(16, "complex"))),
    ord("s"): lambda r, d: _decode_text(r),
    ord("u"): lambda r, d: np.str_(_decode_text(r)),
    ord("b"): lambda r, d: bytes(r.take(r.count("bytes length"), "bytes")),
    ord("y"): lambda r, d: np.bytes_(r.take(r.count("bytes length"), "bytes")),
    ord("l"): lambda r, d: [_decode_value(r, d + 1) for _ in range(r.count("list length"))],
    ord("t"): lambda r, d: tuple(_decode_value(r, d + 1) for _ in range(r.count("tuple length"))),
    ord("d"): _decode_dict,
    ord("a"): _decode_array,
    ord("o"): _decode_object_array,
    ord("n"): _decode_scalar,
}


# ----------------------------------------------------------------------------------------------- describe

_LABELS = {"N": "None", "T": "bool", "F": "bool", "i": "int", "f": "float", "c": "complex", "s": "str",
           "b": "bytes", "u": "numpy.str_", "y": "numpy.bytes_"}  # fmt: skip


def describe(data: bytes | bytearray | memoryview) -> str:
    """A short label such as `<blob float64 (872, 1000)>`, read from the headers only, never the payload."""
    rest, compressed = _open(data)
    if not compressed:
        return _describe_value(_Reader(rest))
    raw_length, inflater, body, want = _compressed_length(rest), zlib.decompressobj(), b"", 256
    pending = rest[8:]
    while True:  # inflate a growing prefix until it holds the whole top-level header
        try:
            body += inflater.decompress(pending, want - len(body))
        except zlib.error as exc:
            raise BlobDecodeError(f"corrupt blob: compressed body is damaged ({exc})") from None
        pending = inflater.unconsumed_tail
        try:
            return _describe_value(_Reader(memoryview(body)))
        except _Truncated:
            if len(body) >= raw_length or len(body) < want:  # nothing more will come
                raise
        want *= 4


def _dtype_label(dtype: np.dtype) -> str:
    if dtype.names is not None:
        return "struct"
    return dtype.str[1:] if dtype.kind in "SUV" else dtype.name  # "U12", not "str384"


def _describe_value(r: _Reader) -> str:
    tag = chr(r.u8("a value tag"))
    if tag in _LABELS:
        return f"<blob {_LABELS[tag]}>"
    if tag in "ltd":
        return f"<blob {dict(l='list', t='tuple', d='dict')[tag]}[{r.u64('length')}]>"
    if tag == "a":
        dtype, _, shape = _read_array_header(r)
        return f"<blob {_dtype_label(dtype)} {shape}>"
    if tag == "o":
        return f"<blob object {_read_layout(r)[1]}>"
    if tag == "n":
        return f"<blob {_dtype_label(_read_dtype(r))} scalar>"
    raise BlobDecodeError(f"corrupt blob: unknown tag {tag!r} at payload offset 0")
