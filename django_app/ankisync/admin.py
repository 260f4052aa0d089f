"""Accounts in Django's admin, plus a page per user for their Anki sync data.

The page (`/admin/auth/user/<id>/sync/`) shows the sidecar's stats and offers the reset
(a dry run first; the real reset needs an explicit confirmation) and "log out all devices".
All of it calls `ankisync.services`; this module only wires forms and templates.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ankisync import selectors, services
from ankisync.forms import ResetForm
from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError

User = get_user_model()


class SyncUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "is_active", "sync_data_link")
    readonly_fields = (*UserAdmin.readonly_fields, "sync_data_link")
    fieldsets = (*UserAdmin.fieldsets, ("Anki sync", {"fields": ("sync_data_link",)}))

    @admin.display(description="Anki sync data")
    def sync_data_link(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:ankisync_user_sync", args=[obj.pk])
        return format_html('<a href="{}">Sync stats, reset, log out devices</a>', url)

    def get_urls(self):
        own = [
            path(
                "<int:user_id>/sync/",
                self.admin_site.admin_view(self.sync_view),
                name="ankisync_user_sync",
            )
        ]
        return own + super().get_urls()

    def sync_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        target = get_object_or_404(User, pk=user_id)
        if not self.has_view_permission(request, target):
            raise PermissionDenied
        here = reverse("admin:ankisync_user_sync", args=[target.pk])
        form = ResetForm()
        report = None
        if request.method == "POST":
            if not self.has_change_permission(request, target):
                raise PermissionDenied
            operation = request.POST.get("operation")
            if operation == "logout":
                try:
                    revoked = services.devices_logout(user=target, actor=request.user)
                    self.message_user(request, f"Logged out {revoked} device(s).")
                except SidecarError as error:
                    self.message_user(request, f"Failed: {error}", messages.ERROR)
                return HttpResponseRedirect(here)
            form = ResetForm(request.POST)
            if form.is_valid():
                confirm = operation == "reset" and form.cleaned_data["confirm"]
                if operation == "reset" and not confirm:
                    self.message_user(
                        request,
                        "Nothing was deleted: tick the confirmation box to reset for real. "
                        "This was a dry run.",
                        messages.WARNING,
                    )
                try:
                    report, _ = services.sync_data_reset(
                        user=target,
                        actor=request.user,
                        confirm=confirm,
                        keep_media=form.cleaned_data["keep_media"],
                    )
                except SidecarError as error:
                    self.message_user(request, f"Reset failed: {error}", messages.ERROR)
                    return HttpResponseRedirect(here)
                if confirm:
                    self.message_user(
                        request,
                        f"Reset done: deleted {report.deleted.notes} notes, "
                        f"{report.deleted.cards} cards, {report.deleted.media_files} media "
                        "files. The user's next sync offers a full upload.",
                    )
                    return HttpResponseRedirect(here)
                form = ResetForm(initial={"keep_media": report.keep_media})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Anki sync data of {target.get_username()}",
            "opts": self.model._meta,
            "original": target,
            "target": target,
            "status": selectors.sync_status_get(user=target),
            "report": report,
            "form": form,
            "audit_entries": selectors.audit_entries_for_user(user=target),
            "can_change": self.has_change_permission(request, target),
        }
        return TemplateResponse(request, "admin/ankisync/user_sync.html", context)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, SyncUserAdmin)


@admin.register(SyncAdminAudit)
class SyncAdminAuditAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "action",
        "target_username",
        "actor_username",
        "via",
        "keep_media",
        "succeeded",
    )
    list_filter = ("action", "via", "succeeded")
    search_fields = ("target_username", "actor_username")
    readonly_fields = tuple(field.name for field in SyncAdminAudit._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
