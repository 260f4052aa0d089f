from django.core.management.base import BaseCommand

from decks import services


class Command(BaseCommand):
    help = (
        "Deliver 'Send to Anki' pushes left pending (e.g. the web process died after the "
        "commit and before the delivery). Safe to run from cron: each push has its own "
        "idempotency key, so the sidecar applies it at most once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=int, default=60, help="only pushes older than this (seconds)"
        )

    def handle(self, *args, **options):
        pushes = services.pending_pushes_deliver(older_than_seconds=options["older_than"])
        for push in pushes:
            self.stdout.write(f"push {push.pk} ({push.deck}): {push.status} {push.error}".rstrip())
        self.stdout.write(f"{len(pushes)} pending push(es) handled")
