from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction


def account_create(*, username: str, password: str):
    """A new, active user. The same username and password then log in to Anki too."""
    users = get_user_model()
    user = users(username=username)
    validate_password(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save()
    return user
