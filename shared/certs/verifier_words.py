"""``cryptography``'s path-validation and parsing errors in our words.

``cryptography.x509.verification`` explains a refusal in its own vocabulary: "candidates
exhausted: ...", extension OIDs, ``<Certificate(...)>`` reprs, and for refused algorithms
a Rust debug dump (``AlgorithmIdentifier { oid: DefinedByMarker... }``). People reading a
``clientcert.untrusted`` detail (operators, ``check-cert`` users) get a sentence instead,
naming the certificate it concerns and, where the certificate is at hand, its own value
beside the rule it failed. Messages of our own extension validators (already words) pass
through; anything unrecognised is summarised, never echoed raw. :func:`parse_error`
does the same for the message of a certificate that cannot be parsed.
"""

from __future__ import annotations

import re

from cryptography import x509

# RFC 5280 names of the extensions the verifier reports by OID.
EXTENSION_NAMES = {
    "2.5.29.14": "subjectKeyIdentifier", "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName", "2.5.29.18": "issuerAltName",
    "2.5.29.19": "basicConstraints", "2.5.29.30": "nameConstraints",
    "2.5.29.31": "cRLDistributionPoints", "2.5.29.32": "certificatePolicies",
    "2.5.29.33": "policyMappings", "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.36": "policyConstraints", "2.5.29.37": "extendedKeyUsage",
    "2.5.29.54": "inhibitAnyPolicy", "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
    "1.3.6.1.5.5.7.1.11": "subjectInfoAccess", "1.3.6.1.4.1.11129.2.4.2":
    "signed certificate timestamps",
}
_ENCOUNTERED = re.compile(r"\s*\(encountered processing <Certificate\(subject=<Name\((.*?)\)>"
                          r".*$", re.DOTALL)
_EXTENSION = re.compile(r"invalid extension: ([0-9.]+): (.*)", re.DOTALL)
_PREFIXES = ("validation failed: ", "candidates exhausted: ")
_HASH_NAMES = {"sha1": "SHA-1", "md5": "MD5"}
_INTERNALS = re.compile(r"\{|\}|<|>|DefinedByMarker|ParseError|PhantomData|Python object")

# (pattern, words) for the verifier's own messages; {subject} is the certificate's name.
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), words) for pattern, words in (
        (r"all candidates exhausted with no interior errors",
         "no trust anchor or intermediate certificate named as its issuer verifies as its "
         "issuer"),
        (r"chain construction exceeds max depth",
         "the chain to a trust anchor would be longer than the maximum depth allowed"),
        (r"path length constraint violated",
         "a CA's path length constraint forbids a chain this long"),
        (r"signature does not match",
         "a signature in the chain does not verify with its issuer's key"),
        (r"cert is not valid at validation time",
         "a CA certificate of the chain is outside its validity period"),
        (r"Exceeded maximum signature check limit|Exceeded maximum name constraint",
         "the search for a chain was abandoned after too many checks (the intermediates "
         "offered form a loop or a maze)"),
        (r"basicConstraints\.cA must not be asserted in an EE",
         "it is a CA certificate (basicConstraints CA:TRUE), not an end-entity certificate"),
        (r"basicConstraints\.cA must be asserted in a CA",
         "a CA certificate of the chain does not assert basicConstraints CA:TRUE"),
        (r"keyUsage\.keyCertSign must be asserted in a CA",
         "a CA certificate of the chain lacks keyCertSign in its key usage"),
        (r"EE keyUsage must not assert keyCertSign",
         "its key usage asserts keyCertSign, which only CA certificates may"),
        (r"Path length given without key usage keyCertSign|Path length invalid for non-CA",
         "it carries a path length constraint without being a CA"),
        (r"Neither EKU nor anyEKU could be found",
         "a CA certificate's extended key usage allows neither this usage nor any usage"),
        (r"authorityKeyIdentifier must contain keyIdentifier",
         "an authority key identifier holds no key identifier"),
        (r"serial between 1 and 20 octets|serial number cannot be negative",
         "its serial number is not a positive integer of 1 to 20 octets"),
        (r"must have a non-empty Issuer", "its issuer name is empty"),
        (r"mismatch between signatureAlgorithm and SPKI",
         "its signature algorithm does not match its issuer's key type"),
        (r"must be an X509v3", "it is not an X.509 version 3 certificate"),
        (r"validity dates between 1950 and 2049 must be UtcTime",
         "its validity dates are encoded against RFC 5280 (UTCTime before 2050)"),
        (r"issuer has malformed public key", "an issuer's public key is malformed"),
        (r"CA certificate key too weak|RSA key is too weak",
         "a CA certificate's key is too weak (RSA below 2048 bits)"),
        (r"EE certificate key too weak", "its key is too weak (RSA below 2048 bits)"),
        (r"Forbidden public key algorithm|Forbidden signature algorithm|signature digest "
         r"algorithm too weak",
         "{algorithm}"),
        (r"no permitted name constraints matched|excluded name constraint matched|"
         r"unsupported name constraint",
         "its names are outside a CA's name constraints"),
        (r"ASN\.1 parsing error|error parsing asn1|while converting Extension",
         "one of its extensions cannot be parsed (malformed DER)"),
    ))
_EXTENSION_REASONS = (
    ("missing required extension", "lacks the {name} extension, which is required"),
    ("incorrect criticality", "marks its {name} extension with the wrong criticality"),
    ("unaccounted-for critical", "carries a critical {name} extension that TLS peers do not "
                                 "know and must refuse"),
    ("duplicate extension", "carries the {name} extension more than once"),
)


def in_our_words(message: str, leaf: x509.Certificate | None = None) -> str:
    """One verifier refusal as a sentence (without a trailing full stop)."""
    text = message.strip()
    where = None
    found = _ENCOUNTERED.search(text)
    if found:
        where = found.group(1)
        text = text[:found.start()]
    interior = False
    for prefix in _PREFIXES:
        while text.startswith(prefix):
            interior = interior or prefix.startswith("candidates")
            text = text[len(prefix):]
    text = re.sub(r"^(Python extension validator failed: )?\w+Error: ", "", text)
    words = _translate(text, leaf, interior)
    if where and where != _subject(leaf):
        words = f"the certificate '{where}': {words}"
    return words


def _translate(text: str, leaf: x509.Certificate | None, interior: bool) -> str:
    """``interior``: the verifier refused while judging the leaf's issuers (a CA)."""
    extension = _EXTENSION.match(text)
    if extension:
        oid, reason = extension.groups()
        name = EXTENSION_NAMES.get(oid, f"unrecognised (object identifier {oid})")
        who = "a CA certificate of the chain" if interior else "it"
        if "CA certificate has no" in reason:
            return f"a CA certificate of the chain has no {name} extension"
        for clue, words in _EXTENSION_REASONS:
            if clue in reason:
                return f"{who} " + words.format(name=name)
        return f"{who} has a {name} extension that is not acceptable"
    for pattern, words in _MESSAGES:
        if pattern.search(text):
            return words.format(algorithm=_algorithm(text, leaf))
    if _INTERNALS.search(text) or not text:
        return "the certificate path validation refused it"
    return text.rstrip(".")


def _algorithm(text: str, leaf: x509.Certificate | None) -> str:
    """Which algorithm was refused: named from the leaf when it is the leaf's own."""
    if "public key" in text:
        return ("a CA certificate's key type is not accepted (RSA of 2048 bits or more, or "
                "ECDSA on P-256, P-384 or P-521)")
    hash_name = _signature_hash(leaf)
    if hash_name in {"sha1", "md5"}:
        return f"it is signed with {_HASH_NAMES[hash_name]}, which is not accepted"
    return ("a certificate of the chain is signed with an algorithm that is not accepted "
            "(such as SHA-1 or MD5)")


def _signature_hash(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - unsupported: not one we can name
        return None
    return algorithm.name if algorithm is not None else None


def _subject(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return None


_PARSE_KINDS = {
    "UnexpectedTag": "an element of the wrong type", "InvalidValue": "an invalid value",
    "ShortData": "data cut short", "InvalidLength": "an invalid length",
    "ExtraData": "unexpected data after the end", "InvalidSetOrdering": "a set out of order",
    "EncodedDefault": "a default value written out", "OidTooLong": "an overlong identifier",
    "IntegerOverflow": "an integer too large", "InvalidTag": "an invalid tag",
    "UnknownDefinedBy": "an unknown algorithm", "InvalidSize": "a value of the wrong size",
}
_PARSE_KIND = re.compile(r"ParseError \{ kind: (\w+)")
_DOTTED = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def parse_error(exc: Exception) -> str:
    """Why a certificate (or a part of it) cannot be parsed, from cryptography's error."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kind = _PARSE_KIND.search(text)
    if kind:
        return f"malformed DER: {_PARSE_KINDS.get(kind.group(1), 'it cannot be decoded')}"
    if _INTERNALS.search(text):
        return "it cannot be decoded"
    text = _DOTTED.sub(lambda m: EXTENSION_NAMES.get(
        m.group(0), f"object identifier {m.group(0)}"), text)
    return text[:200]
