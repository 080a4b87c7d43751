"""GlobalSign Atlas (HVCA API v2) client: mutual TLS, login, read-only account calls.

``proof.prove_credentials(account, connection)`` is the entry point for "do these
credentials work?" (an ``account.Account`` bundles key, secret, certificate, key and chain);
``client.AtlasClient`` is the transport the area modules (``validation_policy``, ``quotas``,
``trustchain``) call through. httpx is imported lazily, inside the client.
"""
