"""A test PKI that imitates the DIP's GlobalSign hierarchy, and the settings that trust it.

Use the session fixture ``dip_pki`` (declared in ``tests/conftest.py``)::

    def test_something(dip_pki, app_env):
        app_env(**dip_pki.env())                       # trust this PKI, pin the DIP's identities
        headers = {"x-arr-clientcert": dip_pki.client_header(),
                   **dip_pki.sign("POST", url, body)}  # the DIP's four X-DIP-* headers

Hierarchy: a root and an issuing CA named like GlobalSign's (organisation
"GlobalSign nv-sa", but a test key: nothing here chains to the real roots), a DIP client
certificate (clientAuth) and a DIP signing certificate. ``impostor``, ``expired``,
``stranger`` and ``other_signer_key`` are the hostile variants, built on first use.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from functools import cached_property

from shared.certs.devpki import CLIENT_AUTH, SERVER_AUTH, Issued, issue, new_key

DIP_ORG = "Elexon Limited"
CLIENT_CN = "dip-webhook-client.elexon.example"
SIGNER_CN = "dip-message-signing.elexon.example"


def header_value(issued: Issued) -> str:
    """What App Service puts in X-ARR-ClientCert: base64 of the DER, one line."""
    return base64.b64encode(issued.cert_der()).decode()


@dataclass
class DipPki:
    root: Issued
    intermediate: Issued
    client: Issued
    signer: Issued

    @classmethod
    def create(cls) -> DipPki:
        root = issue("GlobalSign Test Root R46", organization="GlobalSign nv-sa", country="BE",
                     ca=True, ekus=None, days=3650)
        intermediate = issue("GlobalSign Test Atlas R46 TLS CA 2026 Q2",
                             organization="GlobalSign nv-sa", country="BE", issuer=root,
                             ca=True, path_length=0, ekus=None, days=400)
        client = issue(CLIENT_CN, organization=DIP_ORG, country="GB", issuer=intermediate,
                       dns_names=(CLIENT_CN,), ekus=(CLIENT_AUTH,), days=200)
        signer = issue(SIGNER_CN, organization=DIP_ORG, country="GB", issuer=intermediate,
                       dns_names=(SIGNER_CN,), ekus=(CLIENT_AUTH,), days=200)
        return cls(root, intermediate, client, signer)

    # --- settings -------------------------------------------------------------------
    def anchors_pem(self) -> str:
        return self.root.cert_pem().decode()

    def intermediates_pem(self) -> str:
        return self.intermediate.cert_pem().decode()

    def client_identities(self) -> list[dict[str, str]]:
        """Identity rules that accept exactly the DIP client certificate's identity."""
        return [{"subject": self.client.certificate.subject.rfc4514_string(),
                 "issuer_subject": self.intermediate.certificate.subject.rfc4514_string()}]

    def signer_identities(self) -> list[dict[str, str]]:
        return [{"common_name": SIGNER_CN,
                 "issuer_subject": self.intermediate.certificate.subject.rfc4514_string()}]

    def env(self, **overrides: str) -> dict[str, str]:
        """Settings (for ``app_env`` or a subprocess env) that trust this PKI."""
        values = {
            "DIP_CLIENT_TRUST_ANCHORS": self.anchors_pem(),
            "DIP_CLIENT_INTERMEDIATES": self.intermediates_pem(),
            "DIP_CLIENT_IDENTITIES": json.dumps(self.client_identities()),
            "DIP_SIGNER_IDENTITIES": json.dumps(self.signer_identities()),
            "DIP_CLIENT_EKU": "client",
            "DIP_SIGNATURE_MODE": "required",
            "AIA_FETCH": "false",
        }
        values.update(overrides)
        return values

    # --- what the DIP sends ---------------------------------------------------------
    def client_header(self) -> str:
        return header_value(self.client)

    def sign(self, method: str, url: str, body: bytes, *, at: dt.datetime | None = None,
             signer: Issued | None = None, private_key=None) -> dict[str, str]:
        """The four X-DIP-* headers, signed by the DIP signer (or ``signer``/``private_key``)."""
        from shared.dip.signature import sign_request

        signer = signer or self.signer
        return sign_request(method, url, body, private_key=private_key or signer.private_key,
                            certificate=signer.certificate, at=at)

    # --- hostile variants -------------------------------------------------------------
    @cached_property
    def impostor(self) -> Issued:
        """Self-signed, with the DIP client certificate's exact subject and SAN."""
        return issue(CLIENT_CN, organization=DIP_ORG, country="GB", dns_names=(CLIENT_CN,),
                     ekus=(CLIENT_AUTH,))

    @cached_property
    def impostor_signer(self) -> Issued:
        """Self-signed, with the DIP signing certificate's exact subject."""
        return issue(SIGNER_CN, organization=DIP_ORG, country="GB", dns_names=(SIGNER_CN,),
                     ekus=(CLIENT_AUTH,))

    @cached_property
    def expired(self) -> Issued:
        """The DIP's identity, properly issued, but expired yesterday."""
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        return issue(CLIENT_CN, organization=DIP_ORG, country="GB", issuer=self.intermediate,
                     dns_names=(CLIENT_CN,), ekus=(CLIENT_AUTH,), not_before=start,
                     not_after=start + dt.timedelta(days=29))

    @cached_property
    def stranger(self) -> Issued:
        """Chains to the same CA, but is somebody else (another participant)."""
        return issue("someone-else.example", organization="Other Energy Ltd", country="GB",
                     issuer=self.intermediate, dns_names=("someone-else.example",),
                     ekus=(CLIENT_AUTH,))

    @cached_property
    def server_only(self) -> Issued:
        """The DIP's identity with serverAuth only (public TLS certificates since June 2026)."""
        return issue(CLIENT_CN, organization=DIP_ORG, country="GB", issuer=self.intermediate,
                     dns_names=(CLIENT_CN,), ekus=(SERVER_AUTH,))

    @cached_property
    def other_signer_key(self):
        """An RSA key that is not the signer's (a signature from another key)."""
        return new_key("rsa2048")
