from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from .request_context import api_token_bind
from .selectors import api_token_get_by_digest
from .services import API_TOKEN_PREFIX, api_token_digest, api_token_touch


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tw_…`: a hashed, revocable, organization-scoped token.

    request.user is the person who created the token (for audit), request.auth
    the token, which limits the request to the token's organization.
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
            or not token.is_active
            or not token.created_by.is_active
            or not token.organization.is_active
        ):
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        api_token_touch(token=token)
        # The audit trail records which token acted, not only whose it is.
        api_token_bind(token)
        return token.created_by, token

    def authenticate_header(self, request):
        return self.keyword
