"""GlobalSign Atlas (HVCA API v2) client: mutual TLS, login, read-only account calls.

``proof.prove_credentials`` is the entry point for "do these credentials work?";
``client.AtlasClient`` is the transport the area modules (``policy``, ``quotas``,
``trustchain``) call through. httpx is imported lazily, inside the client.
"""
