"""Azure Key Vault secrets through ``azure-keyvault-secrets`` (``SECRET_STORE=keyvault``).

In Azure the credential is ``DefaultAzureCredential`` (the Function App's managed
identity). The SDKs are imported on first use. TLS trust is the SDK's own: the system store,
or ``REQUESTS_CA_BUNDLE`` as for every requests-based client.

The SDK checks that a vault's authentication challenge names a resource whose domain the
vault's host belongs to (``*.vault.azure.net``). A loopback vault URL (a local stand-in
for Key Vault, as the tests use) can never pass that check, so it is switched off for
loopback hosts only.

Key Vault's answers are mapped to findings by what an operator has to do (the bodies are
``{"error": {"code", "message", "innererror": {"code"}}}``; ``reference/azure.md`` §8):
``secrets.forbidden`` (403 ``ForbiddenByRbac``: a role is missing; ``ForbiddenByFirewall``),
``secrets.disabled`` (403 ``SecretDisabled``), ``secrets.deleted_recoverable`` (409
``ObjectIsDeletedButRecoverable``), ``secrets.too_large`` (refused here before sending) are
permanent; 429 ``Throttled`` is retried by the SDK's policy after the server's
``Retry-After`` (waits longer than :data:`MAX_RETRY_AFTER_SECONDS` are not waited for) and
then, like 5xx and network failures, is ``secrets.unavailable`` carrying that
``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.problems import (
    CONFIG_INVALID,
    SECRET_DELETED_RECOVERABLE,
    SECRET_DISABLED,
    SECRET_FORBIDDEN,
    SECRET_NOT_FOUND,
    SECRET_STORE_UNAVAILABLE,
    SECRET_TOO_LARGE,
    DipEdgeError,
)
from shared.telemetry import dependency_failure
from shared.vault.base import StoredSecret, check_value_size

# A throttled request is retried after the server's Retry-After only if it is this short;
# a longer wait is the caller's to schedule (503 + Retry-After), not a blocked function's.
MAX_RETRY_AFTER_SECONDS = 10
# The RBAC role that grants each data action (Azure built-in roles for Key Vault).
_READER_ROLE = "Key Vault Secrets User"
_WRITER_ROLE = "Key Vault Secrets Officer"
_ACTIONS = {"read": ("getSecret", _READER_ROLE), "write": ("setSecret", _WRITER_ROLE),
            "tag": ("update", _WRITER_ROLE)}
_DATA_ACTION = re.compile(r"Action: '?Microsoft\.KeyVault/vaults/secrets/([A-Za-z]+)")
_CALLER_OID = re.compile(r"\boid=([0-9A-Fa-f-]{36})\b")

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
        client_options.setdefault("retry_policy", _retry_policy(max_retries))
        self._client = SecretClient(vault_url, credential, **client_options)
        # The vault's name, for the az commands a detail suggests.
        self._vault = (urlsplit(vault_url).hostname or "").split(".")[0] or "<vault>"

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self.vault_url!r})"

    def get_secret(self, name: str, version: str | None = None) -> StoredSecret:
        secret = self._call("read", name, lambda: self._client.get_secret(name, version),
                            version)
        return _stored(secret)

    def set_secret(self, name: str, value: str, *, content_type: str | None = None,
                   tags: Mapping[str, str] | None = None) -> StoredSecret:
        check_value_size(name, value)
        secret = self._call("write", name, lambda: self._client.set_secret(
            name, value, content_type=content_type, tags=dict(tags or {})))
        return _stored(secret)

    def update_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        current = self.get_secret(name, version)
        self._call("tag", name, lambda: self._client.update_secret_properties(
            name, version, tags={**current.tags, **tags}), version)

    def _call[T](self, action: str, name: str, operation: Callable[[], T],
                 version: str | None = None) -> T:
        """Run one SDK call; its failures become ``secrets.*`` findings naming no value."""
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
        except AzureError as exc:
            if isinstance(exc, ClientAuthenticationError):
                status = f" ({exc.status_code})" if exc.status_code else ""
                failure = DipEdgeError(SECRET_STORE_UNAVAILABLE(
                    f"Key Vault refused to {action} {name!r}{status}: no identity or no "
                    "access (check the managed identity and its role on the vault)."))
            elif isinstance(exc, HttpResponseError):
                failure = self._answer(exc, action, name, version)
            else:
                failure = DipEdgeError(SECRET_STORE_UNAVAILABLE(
                    f"Key Vault could not be reached to {action} {name!r} "
                    f"({type(exc).__name__})."))
            dependency_failure("keyvault", action, failure.code,
                               status=getattr(exc, "status_code", None),
                               error=type(exc).__name__)
            raise failure from None
        except ValueError as exc:  # the SDK's challenge-resource check
            raise DipEdgeError(CONFIG_INVALID(
                "KEY_VAULT_URL: the vault's authentication challenge was refused: "
                f"{exc}")) from None

    def _answer(self, exc: Any, action: str, name: str, version: str | None) -> DipEdgeError:
        """The finding for one of Key Vault's HTTP error answers."""
        status = exc.status_code
        error = exc.error
        code = (error.code if error else None) or ""
        inner = ((error.innererror or {}).get("code") if error else None) or ""
        message = (error.message if error else None) or ""
        vault = self._vault
        which = f"version {version} of {name!r}" if version else f"the latest version of {name!r}"
        if inner == "SecretDisabled" or code == "SecretDisabled":
            return DipEdgeError(SECRET_DISABLED(
                f"Key Vault keeps {which} disabled, so it cannot be read (403 SecretDisabled). "
                f"Enable it (az keyvault secret set-attributes --vault-name {vault} --name "
                f"{name}{f' --version {version}' if version else ''} --enabled true), or "
                "save a new version."))
        if inner == "ObjectIsDeletedButRecoverable":
            return DipEdgeError(SECRET_DELETED_RECOVERABLE(
                f"The secret name {name!r} was deleted and Key Vault keeps it recoverable "
                "(soft delete, up to 90 days), so no version can be written under it (409 "
                f"ObjectIsDeletedButRecoverable). Recover it (az keyvault secret recover "
                f"--vault-name {vault} --name {name}) and save again, or purge it (az keyvault "
                f"secret purge --vault-name {vault} --name {name}; refused while the vault has "
                "purge protection), or configure another secret name."))
        if inner == "ObjectIsBeingRecovered":
            return DipEdgeError(SECRET_STORE_UNAVAILABLE(
                f"Key Vault is recovering the deleted secret {name!r} (409 "
                "ObjectIsBeingRecovered); try again in a minute."), retry_after=60)
        if status == 403:
            return DipEdgeError(SECRET_FORBIDDEN(_forbidden(inner or code, message, action,
                                                            name)))
        if status == 400 and "maximum permitted length" in message:
            return DipEdgeError(SECRET_TOO_LARGE(
                f"Key Vault refused the value of {name!r}: longer than it keeps (400 "
                "BadParameter)."))
        retry_after = _retry_after(exc)
        what = f" {code}" if code else ""
        if status == 429:
            return DipEdgeError(SECRET_STORE_UNAVAILABLE(
                f"Key Vault is throttling this app (429{what}) when asked to {action} "
                f"{name!r}; try again "
                + (f"in {retry_after} s." if retry_after else "shortly.")),
                retry_after=retry_after)
        return DipEdgeError(SECRET_STORE_UNAVAILABLE(
            f"Key Vault answered {status}{what} when asked to {action} {name!r}."),
            retry_after=retry_after)


def _stored(secret: KeyVaultSecret) -> StoredSecret:
    props = secret.properties
    return StoredSecret(name=secret.name or "", value=secret.value or "",
                        version=props.version or "",
                        content_type=props.content_type, tags=dict(props.tags or {}),
                        created_on=props.created_on, expires_on=props.expires_on)



def _forbidden(reason: str, message: str, action: str, name: str) -> str:
    if reason == "ForbiddenByFirewall":
        return (f"Key Vault's firewall refused this app's network address when asked to "
                f"{action} {name!r} (403 ForbiddenByFirewall): allow the app's outbound "
                "addresses or its virtual network in the vault's networking settings, or "
                "reach the vault through a private endpoint.")
    data_action, role = _ACTIONS.get(action, ("", _WRITER_ROLE))
    named = _DATA_ACTION.search(message)
    if named:
        data_action = named.group(1)
        role = _READER_ROLE if data_action in {"getSecret", "readMetadata"} else _WRITER_ROLE
    caller = _CALLER_OID.search(message)
    who = f" (object id {caller.group(1)})" if caller else ""
    return (f"Key Vault refused this app's identity{who} permission to {action} {name!r} "
            f"(403 {reason or 'Forbidden'}, data action {data_action}). Assign the identity "
            f"the role '{role}' on the vault (az role assignment create --role '{role}' "
            "--assignee <identity's object id> --scope <vault resource id>); a new "
            "assignment takes a few minutes to apply.")


def _retry_after(exc: Any) -> int | None:
    """The server's Retry-After in whole seconds (delta-seconds only), if it sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return max(1, math.ceil(seconds)) if seconds is not None and seconds >= 0 else None


def _retry_policy(max_retries: int) -> Any:
    """The SDK's retry policy (429 and 5xx, honouring Retry-After), with long waits left
    to the caller."""
    from azure.core.pipeline.policies import RetryPolicy

    class _Retry(RetryPolicy):
        def is_retry(self, settings: dict, response: Any) -> bool:
            wait = self.get_retry_after(response)
            if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
                return False
            return super().is_retry(settings, response)

    return _Retry(retry_total=max_retries)
