"""``POST /api/webhooks/dip[/{channel}]``: authenticate a DIP delivery, store it, acknowledge it.

Checks run in this order, and the first that fails answers (a ``{channel}`` that could
not be logged or stored safely is not a route at all: ``request.not_found``, 404):

1. body size (``message.too_large``, 413) and media type (``message.unsupported_media_type``,
   415: ``application/json``, charset optional but UTF-8 if given);
2. the client certificate App Service forwards in ``X-ARR-ClientCert`` (``clientcert.*``);
   before it, the configuration: with no identity rules set the webhook fails closed, every
   delivery answered 503 ``config.invalid`` with ``Retry-After`` naming the settings to set
   (nothing read from the request beyond step 1, nothing stored);
3. the DIP signature headers (``signature.*``);
4. the envelope (``message.malformed_json``, ``message.invalid_envelope``);
5. the inbox: every message stored durably before the answer (``inbox.unavailable``, 503).

Success is ``200 {"accepted": n, "duplicates": m, "conflicts": k, "transactionIds": [...]}``
(conflicts are duplicates whose bytes differ from the stored copy; the inbox logs them).
The policy, the verifier and the inbox are built once per settings object and reused: this
is the hot path.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.certs.trust import TrustPolicy
from shared.certs.trust_config import identities_missing, missing_identities
from shared.dip.envelope import MAX_ID_LENGTH, is_storable_id, parse_delivery
from shared.dip.inbox import Inbox, Receipt, open_inbox
from shared.dip.signature import SignatureVerifier
from shared.problems import (
    MESSAGE_TOO_LARGE,
    MESSAGE_UNSUPPORTED_MEDIA_TYPE,
    REQUEST_NOT_FOUND,
    DipEdgeError,
    error_result,
    problem_result,
)
from shared.settings import Settings
from shared.telemetry import MAX_ITEMS, emit
from shared.web import HttpResult, Request, json_result

logger = logging.getLogger("dip_edge.webhook")
UNDECODABLE = "\ufffd"  # what a percent-encoded byte that is not UTF-8 decodes to


@dataclass(frozen=True)
class Components:
    """What every delivery uses, built once per settings object."""

    settings: Settings
    client_policy: TrustPolicy
    verifier: SignatureVerifier
    inbox: Inbox


# The webhook's own setting; each component checks the settings it reads when built.
WEBHOOK_SETTINGS = (Settings.webhook_max_body_bytes,)

_lock = threading.Lock()
_current: Components | None = None


def components(settings: Settings) -> Components:
    """The cached components for ``settings``; raises ``DipEdgeError`` if they can't be built."""
    global _current
    current = _current
    if current is not None and current.settings is settings:
        return current
    with _lock:
        if _current is not None and _current.settings is settings:
            return _current
        settings.require(*WEBHOOK_SETTINGS)
        missing = missing_identities(settings)
        if missing:  # fail closed, before anything else is built or opened
            raise identities_missing(missing)
        built = Components(settings, TrustPolicy.for_client(settings),
                           SignatureVerifier.from_settings(settings), open_inbox(settings))
        if _current is not None:
            _current.inbox.close()
        _current = built
        return built


def _media_type_problem(request: Request) -> HttpResult | None:
    content_type = request.header("content-type") or ""
    media_type, *params = [part.strip() for part in content_type.split(";")]
    if media_type.lower() != "application/json":
        shown = media_type[:80] or "none"
        return problem_result(MESSAGE_UNSUPPORTED_MEDIA_TYPE(
            f"Deliveries must be application/json, not {shown}."))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
                "utf-8", "utf8"}:
            return problem_result(MESSAGE_UNSUPPORTED_MEDIA_TYPE(
                "Deliveries must be UTF-8 (charset=utf-8, or no charset)."))
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def receive(request: Request, settings: Settings) -> HttpResult:
    """Handle one delivery (see the module docstring for the order of checks)."""
    started = time.perf_counter()
    channel = request.route_params.get("channel") or None
    seen: dict = {}
    if channel is not None and (not is_storable_id(channel) or UNDECODABLE in channel):
        # The route decodes %0D%0A and the like: such a channel would reach the inbox as
        # it is. And bytes that are not UTF-8 are decoded to U+FFFD, so %ff%fe and %fe%ff
        # would become one channel: no webhook is served at either.
        finding = REQUEST_NOT_FOUND("No webhook channel has that name (at most "
                                    f"{MAX_ID_LENGTH} characters of UTF-8 text, no control "
                                    "characters).")
        result = _rejected(problem_result(finding), finding.code, seen)
        channel = "(invalid)"
    else:
        result = _receive(request, settings, channel, seen)
    # One record per delivery: codes, counts, IDs and thumbprints, never headers or bodies
    # (JSON escapes every control, separator and non-ASCII character of the caller's text).
    emit(logger, "delivery", {
        "status": result.status, "code": seen.get("code"), "channel": channel,
        "accepted": seen.get("accepted"), "duplicates": seen.get("duplicates"),
        "conflicts": seen.get("conflicts"), "messages": seen.get("messages"),
        "transactionIds": seen.get("transactionIds", []),
        "interfaceIds": seen.get("interfaceIds", []),
        "clientThumbprint": seen.get("clientThumbprint"),
        "signerThumbprint": seen.get("signerThumbprint"),
        "retryAfter": int(retry) if (retry := result.headers.get("Retry-After", "")).isdigit()
        else None,
        "bytes": len(request.body),
        "durationMs": (time.perf_counter() - started) * 1000,
    }, level=logging.INFO if result.status == 200 else logging.WARNING)
    return result


def _rejected(result: HttpResult, code: str, seen: dict) -> HttpResult:
    seen["code"] = code
    return result


def _receive(request: Request, settings: Settings, channel: str | None,
             seen: dict) -> HttpResult:
    limit = settings.webhook_max_body_bytes
    if len(request.body) > limit:
        finding = MESSAGE_TOO_LARGE(
            f"The delivery is {len(request.body)} bytes; the limit is {limit}.")
        return _rejected(problem_result(finding), finding.code, seen)
    problem = _media_type_problem(request)
    if problem is not None:
        return _rejected(problem, MESSAGE_UNSUPPORTED_MEDIA_TYPE.code, seen)
    try:
        parts = components(settings)
        verdict = parts.client_policy.check_header(request.header("x-arr-clientcert"))
        if verdict.certificate is not None:
            seen["clientThumbprint"] = verdict.certificate.thumbprint_sha256
        if not verdict.accepted:
            result = problem_result(verdict.errors[0], errors=verdict.errors,
                                    warnings=verdict.warnings)
            return _rejected(result, verdict.errors[0].code, seen)
        signature = parts.verifier.verify(request.method, request.url, request.headers,
                                          request.body)
        if signature.signer is not None:
            seen["signerThumbprint"] = signature.signer.thumbprint_sha256
        messages = parse_delivery(request.body)
        seen["messages"] = len(messages)
        seen["transactionIds"] = [m.transaction_id for m in messages[:MAX_ITEMS]]
        seen["interfaceIds"] = sorted({m.interface_id for m in messages})
        receipt = Receipt(
            received_at=_now(),
            channel=channel,
            client_thumbprint=verdict.certificate.thumbprint_sha256 if verdict.certificate
            else None,
            signer_thumbprint=signature.signer.thumbprint_sha256 if signature.signer else None,
        )
        stored = parts.inbox.store(messages, receipt)
    except DipEdgeError as err:
        return _rejected(error_result(err), err.code, seen)
    document = {"accepted": stored.accepted, "duplicates": stored.duplicates,
                "conflicts": stored.conflicts, "transactionIds": list(stored.transaction_ids)}
    seen.update(accepted=stored.accepted, duplicates=stored.duplicates,
                conflicts=stored.conflicts)
    return json_result(200, document)
