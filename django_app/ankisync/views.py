from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ankisync import selectors


@login_required
def connect(request: HttpRequest) -> HttpResponse:
    """How to point Anki at this server, and what the server holds for this user."""
    return render(
        request,
        "ankisync/connect.html",
        {
            "sync_url": settings.ANKI_SYNC_PUBLIC_URL,
            "status": selectors.sync_status_get(user=request.user),
        },
    )
