from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ankisync.sidecar_client import SidecarError, get_client


class Command(BaseCommand):
    help = (
        "Find the sync data (folders under users/, host-key rows) of users that no longer "
        "exist in Django, and remove it. A dry run unless --confirm is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--confirm", action="store_true", help="really remove (default: dry run)"
        )

    def handle(self, *args, **options):
        client = get_client()
        try:
            found = client.deleted_users()
        except SidecarError as error:
            raise CommandError(str(error)) from None
        # The sidecar checked its side; Django checks again, so a live user is never touched.
        ids = [int(entry["user_id"]) for entry in found]
        alive = set(get_user_model().objects.filter(pk__in=ids).values_list("pk", flat=True))
        orphans = [entry for entry in found if int(entry["user_id"]) not in alive]
        if not orphans:
            self.stdout.write("no orphaned sync data")
            return
        for entry in orphans:
            what = []
            if entry.get("folder"):
                what.append(f"folder users/{entry['user_id']}/")
            if entry.get("host_keys"):
                what.append(f"{entry['host_keys']} host key(s)")
            description = " and ".join(what) or "nothing"
            if not options["confirm"]:
                self.stdout.write(f"user {entry['user_id']}: would remove {description}")
                continue
            try:
                client.remove_deleted_user(int(entry["user_id"]))
            except SidecarError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"user {entry['user_id']}: removed {description}")
        if not options["confirm"]:
            self.stdout.write("dry run: nothing was removed; add --confirm to remove it")
