"""Pages of the deck builder. Thin: parse the form, call a service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from decks import selectors, services
from decks.forms import CsvImportForm, DeckForm, NoteForm
from decks.models import DeckPush


def _deck(request: HttpRequest, deck_id: int):
    return get_object_or_404(selectors.deck_queryset(user=request.user), pk=deck_id)


def _note(request: HttpRequest, note_id: int):
    return get_object_or_404(selectors.note_queryset(user=request.user), pk=note_id)


@login_required
def deck_list(request: HttpRequest) -> HttpResponse:
    form = DeckForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deck = services.deck_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Deck “{deck.name}” created.")
            return redirect("decks:detail", deck_id=deck.pk)
    return render(
        request,
        "decks/deck_list.html",
        {"decks": selectors.deck_list(user=request.user), "form": form},
    )


@login_required
def deck_detail(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    pushes = selectors.deck_pushes(deck=deck)
    return render(
        request,
        "decks/deck_detail.html",
        {
            "deck": deck,
            "notes": selectors.deck_notes(deck=deck),
            "pushes": [
                (push, selectors.summary_text(push), selectors.summary_items(push))
                for push in pushes
            ],
            "csv_form": CsvImportForm(),
        },
    )


@login_required
def deck_edit(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    form = DeckForm(
        request.POST or None, initial={"name": deck.name, "description": deck.description}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.deck_update(deck=deck, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Deck saved.")
            return redirect("decks:detail", deck_id=deck.pk)
    return render(request, "decks/deck_form.html", {"deck": deck, "form": form})


@login_required
def deck_delete(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    if request.method == "POST":
        services.deck_delete(deck=deck)
        messages.success(request, f"Deck “{deck.name}” deleted here. Anki keeps its copy.")
        return redirect("decks:list")
    return render(request, "decks/confirm_delete.html", {"object": deck, "kind": "deck"})


@login_required
def note_create(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    form = NoteForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.note_create(
                deck=deck,
                note_type=data["note_type"],
                front=data["front"],
                back=data["back"],
                tags=data["tags"],
                image=data["image"] or None,
                audio=data["audio"] or None,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Note added.")
            if "add_another" in request.POST:
                return redirect("decks:note_create", deck_id=deck.pk)
            return redirect("decks:detail", deck_id=deck.pk)
    return render(request, "decks/note_form.html", {"deck": deck, "form": form})


@login_required
def note_edit(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    initial = {"front": note.front, "back": note.back, "tags": note.tags}
    form = NoteForm(request.POST or None, request.FILES or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.note_update(
                note=note,
                front=data["front"],
                back=data["back"],
                tags=data["tags"],
                image=data["image"] or None,
                audio=data["audio"] or None,
                remove_image=data["remove_image"],
                remove_audio=data["remove_audio"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Note saved.")
            return redirect("decks:detail", deck_id=note.deck_id)
    return render(request, "decks/note_form.html", {"deck": note.deck, "note": note, "form": form})


@login_required
def note_delete(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    if request.method == "POST":
        services.note_delete(note=note)
        messages.success(request, "Note deleted here. Anki keeps its copy.")
        return redirect("decks:detail", deck_id=note.deck_id)
    return render(request, "decks/confirm_delete.html", {"object": note, "kind": "note"})


@login_required
def note_media(request: HttpRequest, note_id: int, kind: str) -> FileResponse:
    """A note's image or audio, for its owner only (uploads are private, not under a public
    MEDIA_URL)."""
    note = _note(request, note_id)
    field_file = {"image": note.image, "audio": note.audio}.get(kind)
    if not field_file:
        raise Http404("no such media")
    response = FileResponse(field_file.open("rb"))
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def csv_import(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    form = CsvImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        report = services.deck_csv_import(
            deck=deck, data=upload.read(), note_type=form.cleaned_data["note_type"]
        )
    return render(request, "decks/csv_import.html", {"deck": deck, "form": form, "report": report})


@login_required
@require_POST
def deck_push(request: HttpRequest, deck_id: int) -> HttpResponse:
    deck = _deck(request, deck_id)
    try:
        push = services.deck_push_request(deck=deck, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("decks:detail", deck_id=deck.pk)
    push.refresh_from_db()
    if push.status == DeckPush.Status.DELIVERED:
        messages.success(
            request,
            f"Sent {push.note_count} notes to Anki; your devices get them on their next sync.",
        )
    elif push.status == DeckPush.Status.FAILED:
        messages.error(request, f"Sending failed: {push.error}")
    else:
        messages.info(request, "Sending… check the history below.")
    return redirect("decks:detail", deck_id=deck.pk)
