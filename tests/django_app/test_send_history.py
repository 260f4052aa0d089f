"""The deck page's send history: a short human summary, the details behind a disclosure
(issue 16, item 10). Before, the details cell showed `replayed: False; package format: ...`."""

from __future__ import annotations

import re

import pytest

from decks import selectors, services
from decks.models import DeckPush

pytestmark = pytest.mark.django_db

# The shape of the sidecar's import answer (ImportSummary).
SUMMARY = {
    "import_id": 7,
    "replayed": False,
    "package": {"format": "legacy1", "notes": 5, "cards": 5, "media_files": 1},
    "notes": {"added": 4, "updated": 1, "skipped": 0},
    "cards": {"added": 4},
    "decks": {"added": 1, "matched": 0},
    "notetypes": {"added": 1, "updated": 0, "matched": 0},
    "media": {"added": 1, "renamed": 0, "unchanged": 0},
}


@pytest.fixture
def pushed(django_user_model):
    user = django_user_model.objects.create_user("hana", password="a-long-password-7")
    deck = services.deck_create(owner=user, name="Kanji")
    push = DeckPush.objects.create(
        deck=deck,
        requested_by=user,
        idempotency_key="6f1c2a4e-8f3b-4c59-9d1e-0a2b3c4d5e6f",
        note_count=5,
        media_count=1,
        status=DeckPush.Status.DELIVERED,
        summary=SUMMARY,
    )
    return user, deck, push


def test_the_summary_says_what_happened_in_words(pushed):
    _, _, push = pushed
    assert selectors.summary_text(push) == "4 notes added, 1 note updated; 1 media file"

    push.summary = {**SUMMARY, "notes": {"added": 0, "updated": 0, "skipped": 5}, "media": {}}
    assert selectors.summary_text(push) == "5 already up to date"

    push.summary = {**SUMMARY, "replayed": True}
    assert selectors.summary_text(push).endswith("(a repeat of an earlier send)")

    push.status, push.summary = DeckPush.Status.PENDING, None
    assert selectors.summary_text(push) == "Sending 5 notes and 1 media file"

    push.status, push.error = DeckPush.Status.FAILED, "sidecar answered 500"
    assert selectors.summary_text(push) == "Not delivered"


def test_the_page_shows_the_summary_with_the_details_behind_a_disclosure(client, pushed):
    user, deck, _ = pushed
    client.force_login(user)

    html = client.get(f"/decks/{deck.pk}/").content.decode()

    table = html[html.index('id="push-history"') : html.index("</table>")]
    assert re.search(
        r"<details>\s*<summary class=\"push-summary\">4 notes added, 1 note updated; "
        r"1 media file</summary>",
        table,
    )
    assert "<dt>Package format</dt><dd>legacy1</dd>" in table
    # No raw Python values in the visible text, and three columns, not four.
    assert "False" not in table.split("<details>")[0]
    assert table.count("<th>") == 3


def test_a_failed_send_shows_its_reason_in_the_details(client, pushed):
    user, deck, push = pushed
    push.status, push.summary = DeckPush.Status.FAILED, None
    push.error = "sidecar answered 500 to POST /internal/v1/users/1/imports: boom"
    push.save()
    client.force_login(user)

    html = client.get(f"/decks/{deck.pk}/").content.decode()

    assert '<summary class="push-summary">Not delivered</summary>' in html
    assert '<p class="push-error">sidecar answered 500' in html
