"""Certificates: PKCS#12 loading, certificate facts, policy checks, chains, identities."""

# The largest PFX accepted anywhere (pfx.too_large above it): real ones are a few KB. Here,
# not in pfx_check, so that the portal page can print it without loading cryptography.
MAX_PFX_BYTES = 1024 * 1024
