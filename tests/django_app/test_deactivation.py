"""Deactivating a user in Django asks the sidecar to revoke their host keys after commit."""

import logging

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def dave(django_user_model):
    return django_user_model.objects.create_user("dave", password="a-long-password-4")


def host_key_calls(fake_sidecar):
    return [(r.method, r.path) for r in fake_sidecar.requests]


def test_deactivation_revokes_the_keys_after_commit(
    dave, fake_sidecar, django_capture_on_commit_callbacks
):
    path = f"/internal/v1/users/{dave.pk}/host-keys"
    fake_sidecar.answer("DELETE", path, 200, {"revoked": 2})

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dave.is_active = False
        dave.save()
        # Nothing is sent before the transaction commits.
        assert fake_sidecar.requests == []

    assert len(callbacks) == 1
    assert host_key_calls(fake_sidecar) == [("DELETE", path)]


def test_only_a_deactivation_calls_the_sidecar(
    dave, django_user_model, fake_sidecar, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dave.first_name = "Dave"
        dave.save()
        django_user_model.objects.create_user("erin", password="x-long-password-5")
        frank = django_user_model.objects.create_user("frank", password="x-long-password-6")
        frank.is_active = False
        frank.save(update_fields=["is_active"])
        frank.last_name = "F."
        frank.save(update_fields=["last_name"])

    # Only frank's deactivation; not the other saves, nor a later save that leaves
    # is_active alone.
    assert len(callbacks) == 1
    assert host_key_calls(fake_sidecar) == [("DELETE", f"/internal/v1/users/{frank.pk}/host-keys")]


def test_an_unreachable_sidecar_only_logs_a_warning(
    dave, settings, caplog, django_capture_on_commit_callbacks
):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    settings.SIDECAR_INTERNAL_TOKEN = "some-token"
    settings.SIDECAR_TIMEOUT_SECONDS = 2

    with (
        caplog.at_level(logging.WARNING, logger="ankisync.deactivation"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        dave.is_active = False
        dave.save()

    dave.refresh_from_db()
    assert dave.is_active is False
    assert "could not revoke the host keys" in caplog.text
    assert "some-token" not in caplog.text


def test_without_a_token_nothing_is_sent(dave, settings, django_capture_on_commit_callbacks):
    settings.SIDECAR_INTERNAL_TOKEN = ""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dave.is_active = False
        dave.save()
    assert callbacks == []
