"""Lists of names chosen from a fixed set: MRI sequences, tumor regions.

Reference: docs/data.md.
"""

from __future__ import annotations


def distinct_names(value, allowed, what: str, example: str) -> tuple[str, ...]:
    """`value` ("a", "a,b": comma-separated, or a sequence of names) as a tuple in the order
    given; ValueError unless they are distinct names of `allowed`."""
    names = tuple(value.split(",")) if isinstance(value, str) else tuple(value or ())
    names = tuple(n.strip() if isinstance(n, str) else n for n in names)
    if not names or any(n not in allowed for n in names) or len(set(names)) != len(names):
        raise ValueError(f"must name distinct {what} among {', '.join(allowed)} in order (for "
                         f"example {example}), got {value!r}")
    return names
