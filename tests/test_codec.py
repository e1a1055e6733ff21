"""Tests for blobflow.codec: bit-exact round trips, header-only describe(), and a decoder that only ever
raises BlobDecodeError, whatever bytes it is given."""

from __future__ import annotations

import inspect
import struct
import tracemalloc
import zlib
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blobflow import codec
from blobflow.codec import FORMAT_VERSION, MAGIC, decode, describe, encode
from blobflow.errors import BlobDecodeError, DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------ helpers


def assert_identical(a: object, b: object, path: str = "value") -> None:
    """Same type, dtype (byte order included), shape, memory order and raw bytes, recursively; NaN-safe."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str, f"{path}: dtype {a.dtype} became {b.dtype}"
        assert a.dtype.descr == b.dtype.descr, f"{path}: dtype layout changed"
        assert a.shape == b.shape, f"{path}: shape {a.shape} became {b.shape}"
        if a.flags.f_contiguous:
            assert b.flags.f_contiguous, f"{path}: Fortran order lost"
        if a.flags.c_contiguous:
            assert b.flags.c_contiguous, f"{path}: C order lost"
        assert b.flags.c_contiguous or b.flags.f_contiguous, f"{path}: decoded array is not contiguous"
        assert b.flags.writeable and b.flags.aligned, f"{path}: decoded array is read-only or unaligned"
        if a.dtype == object:
            for index in np.ndindex(a.shape):
                assert_identical(a[index], b[index], f"{path}[{index}]")
        else:
            assert a.tobytes() == b.tobytes(), f"{path}: bytes differ"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} became {b.dtype}"
        assert a.tobytes() == b.tobytes(), f"{path}: bytes differ"
        if isinstance(a, (np.str_, np.bytes_)):
            assert len(a) == len(b) and str(a) == str(b), f"{path}: {a!r} became {b!r}"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} became {b!r}"
    elif isinstance(a, complex):
        bits = [struct.pack("<dd", z.real, z.imag) for z in (a, b)]
        assert bits[0] == bits[1], f"{path}: {a!r} became {b!r}"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert len(a) == len(b), f"{path}: {len(a)} keys became {len(b)}"
        for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items(), strict=True)):
            assert_identical(ka, kb, f"{path}.keys()[{i}]")
            assert_identical(va, vb, f"{path}[{ka!r}]")
    else:
        assert a == b, f"{path}: {a!r} became {b!r}"


def round_trip(value: object, compress: bool = False) -> object:
    decoded = decode(encode(value, compress=compress))
    assert_identical(value, decoded)
    return decoded


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def forged(*parts: bytes, version: int = FORMAT_VERSION, flags: int = 0) -> bytes:
    return MAGIC + bytes([version, flags]) + b"".join(parts)


def array_entry(descr: bytes, shape: tuple, nbytes: int, data: bytes = b"", order: int = 0) -> bytes:
    layout = bytes([order, len(shape)]) + b"".join(u64(d) for d in shape)
    return b"a" + u64(len(descr)) + descr + layout + u64(nbytes) + data


def object_array(items: list, shape: tuple | None = None) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item  # element-wise, so lists and arrays stay single elements
    return arr.reshape(shape) if shape else arr


# ------------------------------------------------------------------------------------------------ strategies

LONG = [np.dtype(np.longdouble), np.dtype(np.clongdouble)]
LONG += [d.newbyteorder() for d in LONG]

dtypes = st.one_of(
    hnp.scalar_dtypes(),
    hnp.unicode_string_dtypes(endianness="?", max_len=6),
    hnp.byte_string_dtypes(max_len=6),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.nested_dtypes(max_itemsize=256),
)
# Hypothesis cannot draw values for these, so they only appear in raw_arrays().
raw_dtypes = dtypes | st.sampled_from([*LONG, np.dtype("V5"), np.dtype("U0")])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def raw_arrays(draw: st.DrawFn, shapes: st.SearchStrategy = shapes, dtypes: st.SearchStrategy = raw_dtypes):
    """Arrays filled with arbitrary bytes: every bit pattern, NaN payloads and padding included."""
    dtype, shape = draw(dtypes), draw(shapes)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    if not nbytes:
        return np.zeros(shape, dtype)
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


@st.composite
def laid_out(draw: st.DrawFn, arrays: st.SearchStrategy[np.ndarray]) -> np.ndarray:
    arr = draw(arrays)
    how = draw(st.sampled_from(["as is", "fortran", "step", "reversed", "transposed"]))
    if how == "fortran":
        return np.asfortranarray(arr)
    if how == "step" and arr.ndim:
        return arr[::2]
    if how == "reversed" and arr.ndim:
        return arr[..., ::-1]
    return arr.T if how == "transposed" else arr


any_arrays = laid_out(st.one_of(hnp.arrays(dtypes, shapes), raw_arrays()))
# Arbitrary bytes are not always valid code points, so "U" scalars come from hnp.arrays only.
raw_scalar_dtypes = raw_dtypes.filter(lambda d: d.kind != "U")
zero_d = st.one_of(hnp.arrays(dtypes, ()), raw_arrays(st.just(()), raw_scalar_dtypes))
numpy_scalars = zero_d.map(lambda a: a[()])
keys = st.one_of(st.integers(), st.text(max_size=4), st.tuples(st.integers(), st.text(max_size=2)), st.none())
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=8),
    st.binary(max_size=8),
    hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
    numpy_scalars,
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.lists(children, min_size=0, max_size=4).map(object_array),
    ),
    max_leaves=12,
)


# ------------------------------------------------------------------------------------------------ round trips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_arrays, st.booleans())
def test_arrays_round_trip(arr: np.ndarray, compress: bool) -> None:
    round_trip(arr, compress)


@FAST
@given(numpy_scalars)
def test_numpy_scalars_round_trip(scalar: np.generic) -> None:
    round_trip(scalar)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.booleans())
def test_nested_values_round_trip(value: object, compress: bool) -> None:
    round_trip(value, compress)


def test_image_like_float64() -> None:
    import skimage.data

    image = skimage.data.camera()[::4, ::4].astype(np.float64) / 255.0
    assert image.shape == (128, 128)
    blob = encode(image)
    assert len(blob) - image.nbytes < 64, "a plain array should cost its bytes plus a small header"
    round_trip(image)


@pytest.mark.parametrize(
    "arr",
    [
        np.array(2.5),
        np.array("text"),
        np.zeros((0, 3)),
        np.zeros((3, 0, 2), dtype=">i2"),
        np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)),
        np.arange(12.0).reshape(3, 4)[::-1, ::-2],
        np.arange(5, dtype=">u4"),
        np.array([True, False]),
        np.array(["2020-01-01", "NaT"], dtype="datetime64[ms]"),
        np.array([3, -1], dtype="timedelta64[10us]"),
        np.array([b"a\x00b", b""], dtype="S4"),
        np.array([1 + 2j], dtype=np.complex64),
        np.array([1.5], dtype=np.longdouble),
        np.zeros(2, dtype=[("a", ">i4"), ("b", [("c", "<f8", (2, 3))], (2,)), ("s", "U3")]),
        np.zeros(3, dtype=np.dtype({"names": ["x", "y"], "formats": ["i1", "<f8"], "offsets": [0, 8]})),
        np.zeros(2, dtype=[(("a title", "t"), "<i4")]),
        np.zeros(4, dtype="S0"),
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_explicit_arrays(arr: np.ndarray) -> None:
    round_trip(arr)
    round_trip(arr, compress=True)


def test_fortran_stays_fortran_and_views_become_contiguous() -> None:
    fortran = decode(encode(np.asfortranarray(np.ones((3, 4)))))
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    view = np.arange(20.0).reshape(4, 5)[::-1, 1::2]
    decoded = decode(encode(view))
    assert decoded.flags.c_contiguous and decoded.flags.owndata
    np.testing.assert_array_equal(decoded, view)


def test_nan_payloads_survive() -> None:
    bits = np.array([0x7FF0000000000123, 0xFFF8000000000001, 0x7FF4000000000000], dtype=np.uint64)
    round_trip(bits.view(np.float64))
    round_trip(float(bits.view(np.float64)[0]))
    assert struct.pack("<d", decode(encode(float(bits.view(np.float64)[0])))) == bits[:1].tobytes()


@pytest.mark.parametrize(
    "value",
    [
        np.float32(1.5),
        np.float16(-0.0),
        np.int8(-3),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.complex128(1j),
        np.datetime64("2021-03-04T05:06", "s"),
        np.timedelta64(7, "D"),
        np.str_("a\x00"),
        np.bytes_(b"b\x00"),
        np.longdouble(1) / 3,
        np.zeros(1, dtype=[("a", "<i4"), ("b", "S2")])[0],
    ],
    ids=repr,
)
def test_numpy_scalars_keep_their_type(value: np.generic) -> None:
    round_trip(value)


def test_void_scalar_keeps_padding_and_does_not_alias_the_input() -> None:
    padded = np.dtype({"names": ["a", "b"], "formats": ["i1", "<i4"], "offsets": [0, 4], "itemsize": 12})
    scalar = np.frombuffer(bytes(range(1, 13)), dtype=padded)[0]
    buffer = bytearray(encode(scalar))
    decoded = decode(buffer)
    buffer[-12:] = b"\x00" * 12
    assert type(decoded) is np.void and decoded.tobytes() == bytes(range(1, 13))


def test_float32_scalar_is_not_a_python_float() -> None:
    decoded = decode(encode(np.float32(1.5)))
    assert type(decoded) is np.float32 and decoded == 1.5


@pytest.mark.parametrize("n", [0, 1, -1, 127, 128, -128, -129, 2**63, -(2**63), 2**200, -(2**200) + 1])
def test_ints_of_any_size(n: int) -> None:
    round_trip(n)


@pytest.mark.parametrize("text", ["", "plain", "émoji 🎉", "lone \ud800 surrogate", "nul\x00inside"])
def test_strings(text: str) -> None:
    round_trip(text)


def test_containers_keep_types_order_and_odd_keys() -> None:
    value = {
        (1, "a"): [1, (2, 3)],
        7: (),
        None: [],
        "z": {"inner": np.arange(3)},
        2.5: b"bytes",
        True: False,
        (): {},
    }
    decoded = round_trip(value)
    assert list(decoded) == list(value)
    assert type(decoded[7]) is tuple and type(decoded[None]) is list


def test_object_arrays_encode_element_wise() -> None:
    arr = object_array([1, "two", None, [3, 4], np.arange(2), {"k": (5,)}], shape=(2, 3))
    round_trip(arr)
    round_trip(np.asfortranarray(arr))
    round_trip(object_array([(1, 2)], shape=()))
    round_trip(np.empty((0, 2), dtype=object))


def test_compress_round_trip_and_flag() -> None:
    arr = np.zeros((512, 512))
    blob = encode({"a": arr, "b": "x" * 1000}, compress=True)
    assert blob[:4] == MAGIC and blob[4] == FORMAT_VERSION and blob[5] == 1
    assert len(blob) < arr.nbytes // 100
    round_trip({"a": arr, "b": "x" * 1000}, compress=True)
    assert encode(arr)[5] == 0 and len(encode(arr)) > arr.nbytes


def test_decode_accepts_buffers_and_does_not_alias_them() -> None:
    arr = np.arange(6.0)
    buffer = bytearray(encode(arr))
    for data in (buffer, memoryview(buffer), bytes(buffer)):
        decoded = decode(data)
        decoded[0] = 99.0  # writable
    decoded = decode(buffer)
    buffer[-8:] = b"\xff" * 8
    np.testing.assert_array_equal(decoded, arr)


# ------------------------------------------------------------------------------------------------ describe


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (np.zeros((872, 1000)), "<blob float64 (872, 1000)>"),
        (np.zeros((), dtype=">i2"), "<blob int16 ()>"),
        (np.array(["ab", "c"]), "<blob U2 (2,)>"),
        (np.zeros(3, dtype="M8[ns]"), "<blob datetime64[ns] (3,)>"),
        (np.zeros(2, dtype=[("a", "i4")]), "<blob struct (2,)>"),
        (object_array([1, 2]), "<blob object (2,)>"),
        ({"a": 1, "b": 2, 3: 4}, "<blob dict[3]>"),
        ([1, 2, 3, 4, 5], "<blob list[5]>"),
        ((1, 2), "<blob tuple[2]>"),
        ("text", "<blob str>"),
        (b"raw", "<blob bytes>"),
        (2**100, "<blob int>"),
        (None, "<blob None>"),
        (True, "<blob bool>"),
        (np.float32(1.5), "<blob float32 scalar>"),
    ],
)
def test_describe(value: object, label: str) -> None:
    assert describe(encode(value)) == label
    assert describe(encode(value, compress=True)) == label


def test_describe_reads_only_the_header() -> None:
    blob = encode(np.zeros((872, 1000)))
    header = len(blob) - 872 * 1000 * 8
    assert describe(blob[:header]) == "<blob float64 (872, 1000)>"
    with pytest.raises(BlobDecodeError):
        decode(blob[:header])
    assert describe(encode([np.zeros(10)] * 5)[:20]) == "<blob list[5]>"


def test_describe_rejects_non_blobs() -> None:
    with pytest.raises(BlobDecodeError, match="not a blobflow blob"):
        describe(b"legacy raw string")


# ------------------------------------------------------------------------------------------------ errors

NESTED = {
    "a": np.arange(6.0).reshape(2, 3),
    (1, 2): [None, True, 2**70, 1.5, 2j, "é", b"\x00", (np.float32(1), np.array(["x"]))],
    3: object_array([1, "s"]),
}


@pytest.mark.parametrize("data", [b"", b"BF", b"legacy raw string", b"PK\x03\x04\x00\x00", b"\x00" * 64])
def test_not_a_blob(data: bytes) -> None:
    with pytest.raises(BlobDecodeError, match="not a blobflow blob"):
        decode(data)


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(BlobDecodeError, match="expected bytes, got 'str'"):
        decode("BFB")  # type: ignore[arg-type]


def test_newer_version_is_refused_with_both_numbers() -> None:
    blob = bytearray(encode(1))
    blob[4] = FORMAT_VERSION + 1
    with pytest.raises(BlobDecodeError, match=rf"newer blobflow \(format {FORMAT_VERSION + 1}, "):
        decode(bytes(blob))
    with pytest.raises(BlobDecodeError, match=f"reads up to {FORMAT_VERSION}"):
        describe(bytes(blob))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (forged(b"N", version=0), "version 0"),
        (forged(b"N", flags=0x80), "unknown flags"),
        (forged(b"Z"), "unknown tag b'Z'"),
        (forged(b"N\x00"), "1 bytes of trailing garbage"),
        (forged(b"i" + u64(0)), "zero length"),
        (forged(b"s" + u64(2) + b"\xc3\x28"), "not valid UTF-8"),
        (forged(b"d" + u64(1) + b"l" + u64(0) + b"N"), "dict key of type 'list' is unhashable"),
        (forged(b"d" + u64(2) + b"i" + u64(1) + b"\x01N" + b"i" + u64(1) + b"\x01N"), "duplicate keys"),
        (forged(array_entry(b"not json", (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'"<f3"', (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'"|O"', (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'"T"', (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'[["a","|O8"]]', (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'[["a","<f8",[-1]]]', (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'[["a","<f8"],["a","<f8"]]', (1,), 16, b"\x00" * 16)), "bad dtype text"),
        (forged(array_entry(b"[" * 100_000, (1,), 8, b"\x00" * 8)), "bad dtype text"),
        (forged(array_entry(b'"<f8"', (2, 3), 40, b"\x00" * 40)), r"shape \(2, 3\).*holds 48 bytes"),
        (forged(array_entry(b'"<f8"', (2, 3), 56, b"\x00" * 56)), r"holds 48 bytes, but the blob says 56"),
        (forged(b"n" + u64(5) + b'"<U1"' + b"\xff" * 4), "numpy scalar of dtype <U1 under tag 'n'"),
        (forged(array_entry(b'"<f8"', (1,), 8, b"\x00" * 8, order=2)), "bad array layout"),
        (forged(array_entry(b'"<f8"', (1,) * 65, 8, b"\x00" * 8)), "bad array layout"),
        (forged(array_entry(b'"<f8"', (0, 2**64 - 1), 0)), "cannot build an array"),
        (forged(b"n" + u64(5) + b'"<f8"' + b"\x00" * 4), "truncated blob: numpy scalar needs 8 bytes"),
        (forged(b"l" + u64(1) + b"l" + u64(1)), "list length 1 at payload offset 10 points beyond the end"),
        (forged(b"t" + u64(3) + b"NN"), "tuple length 3 at payload offset 1 points beyond the end"),
        (forged(b"l" + u64(1) + b"s"), "truncated blob: str length needs 8 bytes"),
    ],
)
def test_corrupt_blobs_are_explained(data: bytes, message: str) -> None:
    with pytest.raises(BlobDecodeError, match=message):
        decode(data)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = forged(b"l" + u64(1)) + (b"l" + u64(1)) * 5000 + b"N"
    with pytest.raises(BlobDecodeError, match="nested more than"):
        decode(deep)


@pytest.mark.parametrize("compress", [False, True])
def test_every_truncation_is_a_decode_error(compress: bool) -> None:
    blob = encode(NESTED, compress=compress)
    assert_identical(NESTED, decode(blob))
    for n in range(len(blob)):
        with pytest.raises(BlobDecodeError):
            decode(blob[:n])


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_garbage(compress: bool) -> None:
    blob = encode(NESTED, compress=compress)
    for extra in (b"\x00", b"N", blob):
        with pytest.raises(BlobDecodeError):
            decode(blob + extra)


def test_damaged_compressed_bodies() -> None:
    body = b"l" + u64(2) + b"NN"
    good = forged(u64(len(body)) + zlib.compress(body), flags=1)
    assert decode(good) == [None, None]
    with pytest.raises(BlobDecodeError, match="exactly 10 bytes"):
        decode(forged(u64(len(body) - 1) + zlib.compress(body), flags=1))
    with pytest.raises(BlobDecodeError, match="exactly 12 bytes"):
        decode(forged(u64(len(body) + 1) + zlib.compress(body), flags=1))
    with pytest.raises(BlobDecodeError, match="damaged"):
        decode(forged(u64(len(body)) + b"\x00" * 20, flags=1))
    with pytest.raises(BlobDecodeError, match="impossible uncompressed length"):
        decode(forged(u64(0) + zlib.compress(b""), flags=1))


@pytest.mark.parametrize(
    "data",
    [
        forged(b"s" + u64(2**62)),
        forged(b"b" + u64(2**64 - 1)),
        forged(b"i" + u64(2**40)),
        forged(b"l" + u64(2**62)),
        forged(b"d" + u64(2**62)),
        forged(array_entry(b'"<f8"', (2**30, 2**30), 2**63)),
        forged(b"o" + bytes([0, 2]) + u64(2**31) + u64(2**31)),
        forged(u64(2**60) + zlib.compress(b"N"), flags=1),
    ],
    ids=["str", "bytes", "int", "list", "dict", "array", "object-array", "zlib"],
)
def test_forged_huge_lengths_do_not_allocate(data: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BlobDecodeError, match=r"beyond the end|truncated|impossible|longer than"):
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"decoding a forged length allocated {peak} bytes"


def decodes_or_refuses(data: bytes) -> None:
    for reader in (decode, describe):
        try:
            reader(data)
        except BlobDecodeError as exc:
            assert str(exc) and "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)
    decodes_or_refuses(MAGIC + bytes([FORMAT_VERSION, 0]) + data)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=1), st.binary(min_size=1, max_size=96))
def test_fuzz_valid_header_with_tagged_garbage(flags: int, data: bytes) -> None:
    tags = b"NTFifcsbuyltdnao"
    decodes_or_refuses(forged(bytes([tags[data[0] % len(tags)]]) + data[1:], flags=flags))


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.data())
def test_fuzz_mutated_valid_blobs(compress: bool, data: st.DataObject) -> None:
    blob = bytearray(encode(NESTED, compress=compress))
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(blob) // 2, len(blob)))
    decodes_or_refuses(bytes(blob[:cut]))


class Opaque:
    pass


class ArraySubclass(np.ndarray):
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (Opaque(), "Opaque"),
        (bytearray(b"x"), "bytearray"),
        (OrderedDict(a=1), "OrderedDict"),
        ({"k": [1, {2}]}, "set"),
        (object_array([1, {3}]), "set"),
        (np.arange(3).view(ArraySubclass), "ArraySubclass"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_values_name_their_type(value: object, type_name: str) -> None:
    with pytest.raises(DataError, match=f"cannot store a value of type '{type_name}' in a blob") as info:
        encode(value)
    assert "\n" not in str(info.value) and not isinstance(info.value, BlobDecodeError)


@pytest.mark.parametrize(
    "arr",
    [
        np.array(["a"], dtype=np.dtypes.StringDType()),
        np.zeros(1, dtype=[("a", "O")]),
        np.zeros(1, dtype=np.dtype({"names": ["a", "b"], "formats": ["i4", "i4"], "offsets": [4, 0]})),
    ],
    ids=["StringDType", "object-field", "out-of-order-fields"],
)
def test_unsupported_dtypes(arr: np.ndarray) -> None:
    with pytest.raises(DataError, match="cannot store a numpy value of dtype"):
        encode(arr)


def test_self_reference_is_a_data_error() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(DataError, match="nested more than"):
        encode(loop)


def test_codec_never_unpickles_or_evaluates() -> None:
    source = inspect.getsource(codec)
    assert "pickle" not in source.lower()
    assert "eval(" not in source and "exec(" not in source and "np.load" not in source
