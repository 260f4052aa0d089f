"""Input forms. They only parse input; the rules live in `decks.services` / `decks.content`."""

from django import forms

from decks.models import NoteType


class DeckForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )


class NoteForm(forms.Form):
    note_type = forms.ChoiceField(choices=NoteType.choices, initial=NoteType.BASIC)
    front = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Front",
        help_text="For Cloze: the text with deletions, e.g. {{c1::Paris}} is in France.",
    )
    back = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Back",
        help_text="For Cloze: extra text shown on the answer side.",
    )
    tags = forms.CharField(
        required=False, max_length=500, help_text="Separated by spaces or commas."
    )
    image = forms.FileField(
        required=False,
        help_text="PNG, JPEG, GIF or WebP, at most 5 MB. Shown on the answer side.",
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}
        ),
    )
    audio = forms.FileField(
        required=False,
        help_text="MP3, OGG/Opus, M4A or WAV, at most 10 MB. Played on the answer side.",
        widget=forms.ClearableFileInput(attrs={"accept": "audio/*"}),
    )
    remove_image = forms.BooleanField(required=False, label="Remove the image")
    remove_audio = forms.BooleanField(required=False, label="Remove the audio")

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # The note type is fixed once a note exists.
            del self.fields["note_type"]
        else:
            del self.fields["remove_image"]
            del self.fields["remove_audio"]


class CsvImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns: front, back, tags (tags optional). UTF-8. A header row is skipped.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}),
    )
    note_type = forms.ChoiceField(choices=NoteType.choices, initial=NoteType.BASIC)
