from django.core.management.base import BaseCommand, CommandError

from ankisync import services
from ankisync.management.commands._common import user_or_error
from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError


class Command(BaseCommand):
    help = (
        "Delete a user's collection (and media) on the sync server. A dry run unless "
        "--confirm is given. Recorded in the sync admin audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--confirm", action="store_true", help="really delete (default: dry run)"
        )
        parser.add_argument(
            "--keep-media", action="store_true", help="delete the collection, keep the media"
        )

    def handle(self, *args, **options):
        user = user_or_error(options["username"])
        try:
            report, _ = services.sync_data_reset(
                user=user,
                actor=None,
                confirm=options["confirm"],
                keep_media=options["keep_media"],
                via=SyncAdminAudit.Via.COMMAND,
            )
        except SidecarError as error:
            raise CommandError(str(error)) from None
        deleted = report.deleted
        verb = "would delete" if report.dry_run else "deleted"
        media = (
            "media kept"
            if report.keep_media
            else f"{deleted.media_files} media files ({deleted.media_bytes} bytes)"
        )
        self.stdout.write(
            f"{user.get_username()}: {verb} {deleted.notes} notes, {deleted.cards} cards, "
            f"{deleted.revlog} revlog entries; {media}"
        )
        if report.dry_run:
            self.stdout.write("dry run: nothing was deleted; add --confirm to reset for real")
        else:
            self.stdout.write("the user's next sync will offer a full upload")
