import sys

from django.core.management.base import BaseCommand, CommandError

from ankisync import services
from ankisync.management.commands._common import user_or_error
from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError


class Command(BaseCommand):
    help = (
        "Delete a user's collection (and media) on the sync server. A dry run unless --confirm "
        "is given, or unless the username is typed at the prompt when run in a terminal. "
        "Recorded in the sync admin audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--confirm", action="store_true", help="really delete, no questions (default: dry run)"
        )
        media = parser.add_mutually_exclusive_group()
        media.add_argument(
            "--keep-media",
            action="store_true",
            help="keep the media files and the media database as they are",
        )
        media.add_argument(
            "--keep-media-files",
            action="store_true",
            help=(
                "keep the media files but delete the media database, which is then rebuilt "
                "(the older server's reset_user_collection.py --keep-media-files; repairs a "
                "broken media.db)"
            ),
        )

    def handle(self, *args, **options):
        user = user_or_error(options["username"])
        if options["keep_media_files"]:
            media = "keep_files"
        elif options["keep_media"]:
            media = "keep"
        else:
            media = "delete"
        confirm = options["confirm"]
        report = self._reset(user, confirm=confirm, media=media)
        if not confirm and self._interactive():
            name = user.get_username()
            answer = input(f"Type the username ({name}) to reset for real, anything else to stop: ")
            if answer.strip() == name:
                report = self._reset(user, confirm=True, media=media)
            else:
                self.stdout.write("not confirmed: nothing was deleted")
                return
        if report.dry_run:
            self.stdout.write("dry run: nothing was deleted; add --confirm to reset for real")
        else:
            self.stdout.write("the user's next sync will offer a full upload")

    def _interactive(self) -> bool:
        return sys.stdin.isatty()

    def _reset(self, user, *, confirm: bool, media: str):
        try:
            report, _ = services.sync_data_reset(
                user=user,
                actor=None,
                confirm=confirm,
                media=media,
                via=SyncAdminAudit.Via.COMMAND,
            )
        except SidecarError as error:
            raise CommandError(str(error)) from None
        deleted = report.deleted
        verb = "would delete" if report.dry_run else "deleted"
        if media == "keep":
            media_text = "media kept (files and media database)"
        elif media == "keep_files":
            media_text = "media files kept, media database deleted (it is rebuilt)"
        else:
            media_text = f"{deleted.media_files} media files ({deleted.media_bytes} bytes)"
        self.stdout.write(
            f"{user.get_username()}: {verb} {deleted.notes} notes, {deleted.cards} cards, "
            f"{deleted.revlog} revlog entries; {media_text}; "
            f"{report.leftovers} leftover temp or import files"
        )
        return report
