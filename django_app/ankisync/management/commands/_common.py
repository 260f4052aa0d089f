from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from ankisync import selectors


def user_or_error(username: str):
    try:
        return selectors.user_get_by_username(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no user named {username!r}") from None
