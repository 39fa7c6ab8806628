"""The allow-list of request context fields that a notifier sends.

Notifications are often stored and read by other teams (billing, auditing,
search indexes), so by default a notifier sends only the fields named in
:data:`SAFE_CONTEXT_KEYS` and drops every other one. That keeps tokens,
passwords and service tokens (``auth_token``, ``service_token``,
``auth_token_info``, ``password``...) and any unknown key out of the
message. ``Notifier(include_secrets=True)`` sends the whole context.

oslo.messaging 18.3 sends an oslo.context ``RequestContext`` after
``redacted_copy()`` (``auth_token`` set to null) and drops a plain dict
context entirely.
"""

from __future__ import annotations

from typing import Any

from ._context import RequestContext

__all__ = ["SAFE_CONTEXT_KEYS", "notification_context"]

# Identity, scope and request-tracking fields of leveret's and oslo.context's
# RequestContext (oslo.context 6.5 ``to_dict()`` and its logging values),
# none of which is a credential.
SAFE_CONTEXT_KEYS = frozenset(
    {
        # request tracking
        "request_id",
        "global_request_id",
        "resource_uuid",
        # who: ids, names and the older oslo.context aliases
        "user_id",
        "user",
        "user_name",
        "user_identity",
        "project_id",
        "project",
        "project_name",
        "tenant",
        "tenant_id",
        "tenant_name",
        # domains and system scope
        "domain",
        "domain_id",
        "domain_name",
        "user_domain",
        "user_domain_id",
        "user_domain_name",
        "project_domain",
        "project_domain_id",
        "project_domain_name",
        "system_scope",
        # authorization flags
        "roles",
        "is_admin",
        "is_admin_project",
        "read_only",
        "show_deleted",
    }
)


def notification_context(
    context: RequestContext | None, include_secrets: bool
) -> dict[str, Any]:
    """Return the fields of *context* that a notification carries."""
    if context is None:
        return {}
    values = context.to_dict()
    if include_secrets:
        return values
    return {key: value for key, value in values.items() if key in SAFE_CONTEXT_KEYS}
