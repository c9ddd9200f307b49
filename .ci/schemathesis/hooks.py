"""schemathesis hooks for the mock server's reply-conformance run (`.ci/run`, docs/mock.md).

Proxmox answers many client mistakes with HTTP 500 and a message: a plain `die` in a handler
("storage 'x' does not exist", "no such VM ('100')"), and 501 "method 'TRACE' not available" (as
reason phrase, without a body) for an unknown method. The mock does the same, so schemathesis'
`not_a_server_error` would flag every such answer. This check replaces it: a 5xx passes only when
it carries a Proxmox message, the `message` of the error envelope `{"data": null, "message": ...}`
or, for an empty body, the reason phrase. It fails when the body is anything else, when there is
no message (or only a standard reason phrase), when the message is the mock's generic
"internal error" (an `AppError::Internal`, i.e. a bug), or when it still holds an unfilled
`{placeholder}` from a path template.
"""

import json
import re

import schemathesis

PLACEHOLDER = re.compile(r"\{[a-z][a-z0-9_-]*\}")
# Reason phrases that say nothing: a 5xx with one of these and no body has no Proxmox message.
STANDARD_REASONS = {"", "Internal Server Error", "Not Implemented", "Bad Gateway", "Service Unavailable"}


@schemathesis.check
def not_a_bare_server_error(ctx, response, case):
    """A 5xx must carry a Proxmox error message, as Proxmox's own 5xx do."""
    if response.status_code < 500:
        return None
    text = response.content.decode("utf-8", "replace") if response.content else ""
    if text.strip():
        try:
            body = json.loads(text)
        except ValueError:
            raise AssertionError(f"{response.status_code} without a JSON error body: {text[:200]!r}")
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("data") is not None:
            raise AssertionError(f"{response.status_code} with data besides the message: {text[:200]!r}")
    else:
        # `PVE::APIServer::AnyEvent::error` sends some answers (501 for an unknown method) with
        # the message as reason phrase and no body.
        message = response.message
        if message in STANDARD_REASONS:
            message = None
    if not isinstance(message, str) or not message.strip():
        raise AssertionError(f"{response.status_code} without a Proxmox message: {text[:200]!r}")
    if message.strip() == "internal error":
        raise AssertionError(f"{response.status_code} internal error (a mock bug; see the server log)")
    if PLACEHOLDER.search(message):
        raise AssertionError(f"{response.status_code} message leaks a path template: {message.strip()!r}")
    return None
