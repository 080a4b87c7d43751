"""What a person must never be shown: the certificate library's own vocabulary."""

from __future__ import annotations

import re

# "candidates exhausted", reprs, Rust debug dumps, Python exception names, and extension
# OIDs (2.5.29.x) instead of their names.
INTERNALS = re.compile(r"candidates exhausted|<Certificate|<Name\(|DefinedByMarker|"
                       r"AlgorithmIdentifier|ParseError|PhantomData|Python|\w+Error:|"
                       r"\b2\.5\.29\.\d+")


def assert_our_words(text: str) -> None:
    found = INTERNALS.search(text)
    assert found is None, f"library internals {found.group(0)!r} in: {text}"
