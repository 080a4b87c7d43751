"""Every single-byte corruption of a DIP client certificate gets a precise verdict.

cryptography parses certificates lazily, so a corrupted version, key algorithm or
extension raises only when the policy first touches it; each must become
``clientcert.malformed`` (or another clientcert code), never an exception.
"""

import warnings
from collections import Counter

from shared.certs.trust import TrustPolicy
from shared.settings import load_settings


def test_single_byte_flips_never_raise(dip_pki):
    policy = TrustPolicy.for_client(load_settings(dip_pki.env()))
    der = dip_pki.client.cert_der()
    assert policy.check(der).accepted
    outcomes: Counter[str] = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns about negative serials
        for index in range(len(der)):
            for mask in (0x01, 0x80, 0xFF):
                mutated = bytearray(der)
                mutated[index] ^= mask
                verdict = policy.check(bytes(mutated))
                outcomes["accepted" if verdict.accepted else verdict.errors[0].code] += 1
    assert outcomes["clientcert.malformed"] > 0
    assert outcomes["clientcert.untrusted"] > 0
    assert set(outcomes) <= {"accepted", "clientcert.malformed", "clientcert.untrusted",
                             "clientcert.expired", "clientcert.identity_mismatch"}
    # Only flips outside the signed bytes (the signature BIT STRING's unused-bits count)
    # can leave a certificate that still verifies.
    assert outcomes["accepted"] <= 3
