from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from accounts import services


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("decks:list")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.account_create(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as error:
            form.add_error("password1", error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! Your account works in Anki too.")
            return redirect("decks:list")
    return render(request, "accounts/signup.html", {"form": form})


class AnkiPasswordChangeView(PasswordChangeView):
    """Django's own password change; the done page explains the Anki side."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")
