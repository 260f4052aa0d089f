from django.core.management.base import BaseCommand, CommandError

from ankisync import services
from ankisync.management.commands._common import user_or_error
from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError


class Command(BaseCommand):
    help = "Log a user out of Anki on every device (they must log in again)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, **options):
        user = user_or_error(options["username"])
        try:
            revoked = services.devices_logout(user=user, actor=None, via=SyncAdminAudit.Via.COMMAND)
        except SidecarError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"{user.get_username()}: logged out {revoked} device(s)")
