"""Password checks with a lockout: the one authentication backend (console and admin login).

Every password check goes through :class:`LockoutModelBackend`, so the admin's login is
locked out exactly as the console's is. The console's login view checks the lockout first
to answer a clear 429 page (``api/console/views/entry.py``); the admin's form, told
nothing more by Django, shows its usual "enter a correct username and password".
"""
from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from api.core import lockout
from api.core.errors import ApplicationError


def login_identities(request, username: str | None) -> dict[str, str | None]:
    """What a login attempt's failures are counted under: the client's address and the username."""
    return {"address": lockout.client_address(request) if request is not None else None, "account": username}


class LockoutModelBackend(ModelBackend):
    """Django's ``ModelBackend`` behind :data:`api.core.lockout.LOGIN`.

    While the address or the username is locked out the password is not checked at all
    (``PermissionDenied`` stops ``authenticate()`` there); a wrong password counts one
    failure under both; a right one clears the username's failures (not the address's: a
    guesser with an account of their own could otherwise reset it between guesses).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if username is None or password is None:
            return None
        identities = login_identities(request, str(username))
        try:
            lockout.LOGIN.check(**identities)
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            lockout.LOGIN.failed(**identities)
        else:
            lockout.LOGIN.succeeded(account=identities["account"])
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
