"""Azure Key Vault secrets through ``azure-keyvault-secrets`` (``SECRET_STORE=keyvault``).

In Azure the credential is ``DefaultAzureCredential`` (the Function App's managed
identity). The SDKs are imported on first use. TLS trust is the SDK's own: the system store,
or ``REQUESTS_CA_BUNDLE`` as for every requests-based client.

The SDK checks that a vault's authentication challenge names a resource whose domain the
vault's host belongs to (``*.vault.azure.net``). A loopback vault URL (a local stand-in
for Key Vault, as the tests use) can never pass that check, so it is switched off for
loopback hosts only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.problems import (
    CONFIG_INVALID,
    SECRET_NOT_FOUND,
    SECRET_STORE_UNAVAILABLE,
    DipEdgeError,
)
from shared.vault.base import StoredSecret

if TYPE_CHECKING:
    from azure.keyvault.secrets import KeyVaultSecret


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KeyVaultSecretStore:
    """Implements :class:`shared.vault.base.SecretStore` with a real ``SecretClient``.

    ``credential`` defaults to ``DefaultAzureCredential()``; ``client_options`` go to
    ``SecretClient`` as they are (e.g. ``connection_verify=<CA path>`` for a test vault).
    """

    def __init__(self, vault_url: str, credential: Any = None, *, max_retries: int = 3,
                 **client_options: Any) -> None:
        from azure.keyvault.secrets import SecretClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.vault_url = vault_url
        client_options.setdefault("verify_challenge_resource", not is_loopback(vault_url))
        self._client = SecretClient(vault_url, credential, retry_total=max_retries,
                                    **client_options)

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self.vault_url!r})"

    def get_secret(self, name: str, version: str | None = None) -> StoredSecret:
        secret = _call("read", name, lambda: self._client.get_secret(name, version))
        return _stored(secret)

    def set_secret(self, name: str, value: str, *, content_type: str | None = None,
                   tags: Mapping[str, str] | None = None) -> StoredSecret:
        secret = _call("write", name, lambda: self._client.set_secret(
            name, value, content_type=content_type, tags=dict(tags or {})))
        return _stored(secret)

    def update_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        current = self.get_secret(name, version)
        _call("tag", name, lambda: self._client.update_secret_properties(
            name, version, tags={**current.tags, **tags}))


def _stored(secret: KeyVaultSecret) -> StoredSecret:
    props = secret.properties
    return StoredSecret(name=secret.name, value=secret.value or "", version=props.version,
                        content_type=props.content_type, tags=dict(props.tags or {}),
                        created_on=props.created_on, expires_on=props.expires_on)


def _call[T](action: str, name: str, operation: Callable[[], T]) -> T:
    """Run one SDK call; its failures become ``secrets.*`` findings naming no secret value."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )

    try:
        return operation()
    except ResourceNotFoundError:
        raise DipEdgeError(SECRET_NOT_FOUND(
            f"Key Vault holds no secret {name!r} (or not that version).")) from None
    except ClientAuthenticationError as exc:
        status = f" ({exc.status_code})" if exc.status_code else ""
        raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"Key Vault refused to {action} {name!r}{status}: no identity or no access "
            "(check the managed identity and its role on the vault).")) from None
    except HttpResponseError as exc:
        code = f" {exc.error.code}" if exc.error and exc.error.code else ""
        raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"Key Vault answered {exc.status_code}{code} when asked to {action} "
            f"{name!r}.")) from None
    except AzureError as exc:
        raise DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"Key Vault could not be reached to {action} {name!r} "
            f"({type(exc).__name__}).")) from None
    except ValueError as exc:  # the SDK's challenge-resource check
        raise DipEdgeError(CONFIG_INVALID(
            f"KEY_VAULT_URL: the vault's authentication challenge was refused: {exc}")) from None
