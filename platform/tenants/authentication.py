from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from .permissions import principal_attach
from .request_context import api_token_bind
from .selectors import api_token_get_by_digest
from .services import API_TOKEN_PREFIX, api_token_digest, api_token_touch


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tw_…`: a hashed, revocable, organization-scoped token.

    request.user is the person who created the token (services record them as
    the actor), request.auth the token. The user carries the token's
    principal (tenants.permissions.principal_for), so every rule asks what
    the token may do: its organization and roles, never the creator's own.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Invalid Authorization header: expected 'Bearer <token>'.")
            )
        try:
            secret = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from exc
        if not secret.startswith(API_TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = api_token_get_by_digest(digest=api_token_digest(secret))
        # One message for unknown and revoked tokens and for inactive owners,
        # so the answer tells an attacker nothing.
        if (
            token is None
            or token.revoked_at is not None
            or not token.created_by.is_active
            or not token.organization.is_active
        ):
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        # Whoever holds the secret may learn why it stopped working.
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                _("This API token expired at %(when)s. Create a new one.")
                % {"when": timezone.localtime(token.expires_at).isoformat(timespec="seconds")}
            )
        user = token.created_by
        principal = principal_attach(user, token)
        if not principal.token_roles():
            raise exceptions.AuthenticationFailed(
                _(
                    "This API token carries no role any more: its creator no longer holds "
                    "the roles it was given in %(organization)s. Create a new one."
                )
                % {"organization": token.organization.name}
            )
        api_token_touch(token=token)
        # The audit trail records which token acted, not only whose it is.
        api_token_bind(token)
        return user, token

    def authenticate_header(self, request):
        return self.keyword
