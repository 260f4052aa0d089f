import json

from django.core.management.base import BaseCommand, CommandError

from ankisync import selectors
from ankisync.management.commands._common import user_or_error
from ankisync.sidecar_client import SidecarError


class Command(BaseCommand):
    help = "Show what the sync server holds for a user (cards, notes, revlog, media, last sync)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--json", action="store_true", help="print the raw stats as JSON")

    def handle(self, *args, **options):
        user = user_or_error(options["username"])
        try:
            stats = selectors.sync_stats_get(user=user)
        except SidecarError as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(stats.as_dict(), indent=2, sort_keys=True))
            return
        self.stdout.write(f"user: {user.get_username()} (id {user.pk})")
        for name, value in stats.as_dict().items():
            self.stdout.write(f"  {name}: {value}")
