from django import forms


class ResetForm(forms.Form):
    """A reset is a dry run unless `confirm` is ticked."""

    keep_media = forms.BooleanField(
        required=False,
        label="Keep media",
        help_text="Delete only the collection; leave the user's media files on the server.",
    )
    confirm = forms.BooleanField(
        required=False,
        label="Yes, delete this user's data on the sync server",
    )
