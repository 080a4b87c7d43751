"""Secret stores: Azure Key Vault or a local directory, behind one interface.

``open_store(settings)`` gives the configured store; ``credentials`` keeps the GlobalSign
credential set in it, atomically.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.vault.base import SecretStore

# What open_store reads (the local store lives in the state directory).
STORE_SETTINGS = (Settings.secret_store, Settings.key_vault_url, Settings.key_vault_max_retries,
                  Settings.dip_edge_state_dir)


def open_store(settings: Settings) -> SecretStore:
    """The store ``SECRET_STORE`` names; raises ``DipEdgeError(config.invalid)`` if misconfigured.

    Key Vault clients are kept per vault, so the managed-identity token and the vault's
    authentication challenge are fetched once per process, not once per request.
    """
    settings.require(*STORE_SETTINGS)
    vault_url = settings.key_vault_url
    if settings.secret_store == "keyvault" and vault_url:  # noqa: S105 - a store kind
        return _key_vault(vault_url, settings.key_vault_max_retries)
    from shared.vault.local import LocalSecretStore

    return LocalSecretStore(settings.state_dir / "secrets")


@lru_cache(maxsize=4)
def _key_vault(vault_url: str, max_retries: int) -> SecretStore:
    from shared.vault.keyvault import KeyVaultSecretStore

    return KeyVaultSecretStore(vault_url, max_retries=max_retries)
