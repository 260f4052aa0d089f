"""User operations done by real Django against the database in DATABASE_URL.

The suite runs this file in a subprocess (see `support.django_db`), so that every backend's
Django is configured exactly as `manage.py` would configure it, and passwords are hashed by
Django's own hashers. It prints one JSON object on stdout.

    DATABASE_URL=... python tests/support/django_cli.py create-user --username u --password p
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DJANGO_APP = HERE.parents[1] / "django_app"
# Run as a script, this folder is first on sys.path; none of the harness modules beside this
# file may shadow a module Django imports.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--inactive", action="store_true")
    set_password = commands.add_parser("set-password")
    set_password.add_argument("--username", required=True)
    set_password.add_argument("--password", required=True)
    set_active = commands.add_parser("set-active")
    set_active.add_argument("--username", required=True)
    set_active.add_argument("--active", choices=["yes", "no"], required=True)
    args = parser.parse_args()

    sys.path.insert(0, str(DJANGO_APP))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Imported here: Django must see the settings module before anything of it is loaded.
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    users = get_user_model()
    if args.command == "create-user":
        user = users.objects.create_user(args.username, password=args.password)
        if args.inactive:
            user.is_active = False
            user.save(update_fields=["is_active"])
    elif args.command == "set-password":
        user = users.objects.get(username=args.username)
        user.set_password(args.password)
        user.save()
    else:
        user = users.objects.get(username=args.username)
        user.is_active = args.active == "yes"
        user.save()
    print(json.dumps({"id": user.pk, "username": user.get_username(), "password": user.password}))


if __name__ == "__main__":
    main()
