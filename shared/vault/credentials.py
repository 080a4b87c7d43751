"""The GlobalSign credential set (API key, API secret, PFX), current together or not at all.

Design: Key Vault has no transactions, but it never overwrites: every write is a new
version with an id of its own. So a save writes

1. a new version of the API key secret (``SECRET_NAME_API_KEY``),
2. a new version of the API secret (``SECRET_NAME_API_SECRET``),
3. a new version of the PFX secret (``SECRET_NAME_PFX``: base64 of a password-less PFX,
   content type ``application/x-pkcs12``, tags thumbprint/subject/notAfter/validatedAt),

and only then, **last**, a new version of a small manifest secret
(``SECRET_NAME_CREDENTIAL_SET``, JSON, no secret in it) naming the exact versions written in
1–3. Readers (:func:`load_credentials`) read the manifest and fetch those exact versions,
never "the latest" of each. So:

* a failure before the manifest is written (Key Vault down mid-store) leaves the previous
  manifest, and so the previous complete set, current; the versions already written are
  orphans that no reader follows (tagged with their ``credentialSet`` id, which no manifest
  names);
* two concurrent saves each write a complete set and a manifest naming it; whichever
  manifest is written last is current, and a reader sees one set or the other, never a mix;
* retrying a save is harmless: it writes another complete set.

The manifest is the one place where "current" lives. Tools that read the PFX secret's
latest version directly (App Service certificate import) may see a newer PFX than the
manifest after a failed save — always one that passed validation, as nothing is written
before every check passes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.problems import SECRET_NOT_FOUND, SECRET_STORE_UNAVAILABLE, DipEdgeError
from shared.settings import Settings
from shared.vault.base import check_value_size

if TYPE_CHECKING:
    from shared.certs.report import CertificateFacts
    from shared.vault.base import SecretStore

# The names of the set's secrets; every function here checks them first.
CREDENTIAL_SET_SETTINGS = (Settings.secret_name_api_key, Settings.secret_name_api_secret,
                           Settings.secret_name_pfx, Settings.secret_name_credential_set)

PFX_CONTENT_TYPE = "application/x-pkcs12"
MANIFEST_CONTENT_TYPE = "application/json"
_TAG_LIMIT = 256  # Key Vault's limit on a tag value


@dataclass(frozen=True)
class CredentialMetadata:
    """What is known about a stored set without reading a secret; safe to show and log."""

    set_id: str
    thumbprint: str  # SHA-1, upper-case hex, as the Azure portal shows it
    thumbprint_sha256: str
    subject: str
    not_after: datetime
    validated_at: datetime
    versions: Mapping[str, str]  # apiKey / apiSecret / pfx -> secret version
    validated_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "credentialSet": self.set_id,
            "thumbprint": self.thumbprint,
            "thumbprintSha256": self.thumbprint_sha256,
            "subject": self.subject,
            "notAfter": self.not_after.isoformat(),
            "validatedAt": self.validated_at.isoformat(),
            "validatedBy": self.validated_by,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CredentialMetadata:
        """Raises ``ValueError``/``KeyError``/``TypeError`` for a manifest it cannot follow."""
        versions = doc["versions"]
        if not isinstance(versions, Mapping) or not all(
                isinstance(versions.get(k), str) and versions[k]
                for k in ("apiKey", "apiSecret", "pfx")):
            raise ValueError("the manifest does not name a version of each secret")
        return cls(set_id=doc["credentialSet"], thumbprint=doc["thumbprint"],
                   thumbprint_sha256=doc["thumbprintSha256"], subject=doc["subject"],
                   not_after=datetime.fromisoformat(doc["notAfter"]),
                   validated_at=datetime.fromisoformat(doc["validatedAt"]),
                   versions=dict(doc["versions"]), validated_by=doc.get("validatedBy"))


@dataclass(frozen=True)
class StoredCredentials:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    pfx: bytes = field(repr=False)  # password-less PKCS#12
    metadata: CredentialMetadata


def save_credentials(store: SecretStore, settings: Settings, *, api_key: str, api_secret: str,
                     pfx_passwordless: bytes, facts: CertificateFacts,
                     validated_at: datetime | None = None,
                     validated_by: str | None = None) -> CredentialMetadata:
    """Store a validated set and make it current (see the module docstring).

    Raises ``DipEdgeError(secrets.too_large)`` before writing anything when a value is
    longer than a secret may be, and the store's errors (``secrets.unavailable``,
    ``secrets.forbidden``...) as they come; the previous set then stays current.
    """
    settings.require(*CREDENTIAL_SET_SETTINGS)
    set_id = uuid.uuid4().hex
    validated_at = validated_at or datetime.now(UTC)
    tags = {"credentialSet": set_id, "thumbprint": facts.thumbprint_sha1,
            "subject": facts.subject[:_TAG_LIMIT], "notAfter": facts.not_after.isoformat(),
            "validatedAt": validated_at.isoformat()}
    pfx_value = base64.b64encode(pfx_passwordless).decode()

    def manifest(versions: Mapping[str, str]) -> CredentialMetadata:
        return CredentialMetadata(
            set_id=set_id, thumbprint=facts.thumbprint_sha1,
            thumbprint_sha256=facts.thumbprint_sha256, subject=facts.subject,
            not_after=facts.not_after, validated_at=validated_at, versions=versions,
            validated_by=validated_by)

    # Every value is measured before the first write: a set that cannot be kept whole
    # must not leave some of its parts behind. (Versions are 32 hex digits in both stores.)
    placeholder = manifest(dict.fromkeys(("apiKey", "apiSecret", "pfx"), "0" * 32))
    check_value_size(settings.secret_name_api_key, api_key, "The API key")
    check_value_size(settings.secret_name_api_secret, api_secret, "The API secret")
    check_value_size(settings.secret_name_pfx, pfx_value,
                     f"The PFX ({len(pfx_passwordless):,} bytes) in base64")
    check_value_size(settings.secret_name_credential_set, json.dumps(placeholder.to_dict()),
                     "The credential set's manifest")
    key = store.set_secret(settings.secret_name_api_key, api_key, content_type="text/plain",
                           tags={"credentialSet": set_id, "thumbprint": facts.thumbprint_sha1})
    secret = store.set_secret(settings.secret_name_api_secret, api_secret,
                              content_type="text/plain",
                              tags={"credentialSet": set_id,
                                    "thumbprint": facts.thumbprint_sha1})
    pfx = store.set_secret(settings.secret_name_pfx, pfx_value,
                           content_type=PFX_CONTENT_TYPE, tags=tags)
    metadata = manifest({"apiKey": key.version, "apiSecret": secret.version,
                         "pfx": pfx.version})
    # The commit point: until this write succeeds, readers keep following the old manifest.
    store.set_secret(settings.secret_name_credential_set, json.dumps(metadata.to_dict()),
                     content_type=MANIFEST_CONTENT_TYPE, tags=tags)
    return metadata


def load_metadata(store: SecretStore, settings: Settings) -> CredentialMetadata | None:
    """The current set's metadata (reads only the manifest), or ``None`` when none is stored."""
    settings.require(*CREDENTIAL_SET_SETTINGS)
    try:
        manifest = store.get_secret(settings.secret_name_credential_set)
    except DipEdgeError as err:
        if err.is_(SECRET_NOT_FOUND):
            return None
        raise
    try:
        return CredentialMetadata.from_dict(json.loads(manifest.value))
    except (ValueError, KeyError, TypeError):
        raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"The manifest {settings.secret_name_credential_set!r} version "
            f"{manifest.version} is not readable.")) from None


def load_credentials(store: SecretStore, settings: Settings) -> StoredCredentials:
    """The current set, each secret at the version the manifest names.

    Raises ``DipEdgeError(secrets.not_found)`` when no set was ever stored.
    """
    metadata = load_metadata(store, settings)
    if metadata is None:
        raise DipEdgeError(SECRET_NOT_FOUND("No GlobalSign credentials are stored."))
    versions = metadata.versions
    api_key = store.get_secret(settings.secret_name_api_key, versions["apiKey"])
    api_secret = store.get_secret(settings.secret_name_api_secret, versions["apiSecret"])
    pfx = store.get_secret(settings.secret_name_pfx, versions["pfx"])
    try:
        pfx_bytes = base64.b64decode(pfx.value, validate=True)
    except ValueError:
        raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"The stored PFX {settings.secret_name_pfx!r} version {pfx.version} is not "
            "base64.")) from None
    return StoredCredentials(api_key.value, api_secret.value, pfx_bytes, metadata)
