"""Generators shared by the fuzz tests: JSON of any shape, deep nesting, truncation."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Unicode text without lone surrogates (nothing can carry those: not UTF-8, not TOML, not JSON).
text = st.text(st.characters(codec="utf-8"), max_size=24)

# Numbers at the edges: huge integers that do not fit a float, NaN and the infinities.
numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from([0, -1, 2**63, -(2**63), 10**400, -(10**400), 1e308, -0.0]),
)

scalars = st.one_of(st.none(), st.booleans(), numbers, text)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)

# The same without NaN and the infinities: what a strict JSON encoder can write.
finite_json: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


def dumps(value: Any) -> bytes:
    """JSON as Python writes it by default: NaN and Infinity included (not strict JSON)."""
    return json.dumps(value).encode()


def strict_loads(data: bytes | str) -> Any:
    """Parse strict JSON: NaN and Infinity are not JSON, and a parser in another language fails."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data, parse_constant=refuse)


def nested(depth: int) -> bytes:
    """`depth` nested JSON arrays: past ~1,000 levels Python's parser raises RecursionError."""
    return b"[" * depth + b"]" * depth


# Nesting depths: the shallow ones, around a limit of 16 or 32, and past Python's recursion limit.
depths = st.one_of(
    st.sampled_from([1, 2, 15, 16, 17, 32, 33]),
    st.sampled_from([999, 1000, 2000]),
    st.integers(0, 2040),
)

deep_json = depths.map(nested)


def truncations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` cut at every length short of whole."""
    return st.integers(0, max(0, len(data) - 1)).map(lambda n: data[:n])
