"""Certificates: PKCS#12 loading, certificate facts, policy checks, chains, identities."""
