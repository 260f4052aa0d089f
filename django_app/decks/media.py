"""Uploaded note media: what is accepted, where it is stored, and its name inside Anki.

* Only a few image and audio formats are accepted, checked by extension *and* by the file's
  first bytes, with a size cap. SVG is refused (it can carry scripts).
* The stored name never comes from the user: `notes/<user id>/<random hex>.<ext>` under
  MEDIA_ROOT, through Django's storage.
* Inside Anki the file is named after its content, `deckbuilder-<sha1 prefix>.<ext>`: the
  same file sent twice is the same media file, a changed one is a new file, and the name is
  lower case ASCII, which every Anki client accepts as is.
"""

from __future__ import annotations

import hashlib
import os
import uuid

from django.core.exceptions import ValidationError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
AUDIO_EXTENSIONS = {".mp3", ".ogg", ".oga", ".opus", ".m4a", ".wav"}
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_AUDIO_BYTES = 10 * 1024 * 1024


def _extension(name: str) -> str:
    return os.path.splitext(name or "")[1].lower()


def _looks_like(ext: str, head: bytes) -> bool:
    if ext == ".png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if ext in {".jpg", ".jpeg"}:
        return head.startswith(b"\xff\xd8\xff")
    if ext == ".gif":
        return head.startswith((b"GIF87a", b"GIF89a"))
    if ext == ".webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if ext == ".mp3":
        return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] >= 0xE0)
    if ext in {".ogg", ".oga", ".opus"}:
        return head.startswith(b"OggS")
    if ext == ".m4a":
        return head[4:8] == b"ftyp"
    if ext == ".wav":
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    return False


def _validate(upload, allowed: set[str], max_bytes: int, kind: str) -> None:
    ext = _extension(upload.name)
    if ext not in allowed:
        names = ", ".join(sorted(allowed))
        raise ValidationError(f"This {kind} type is not supported. Use one of: {names}.")
    if upload.size is not None and upload.size > max_bytes:
        raise ValidationError(f"The {kind} is too large (at most {max_bytes // 1024 // 1024} MB).")
    position = upload.tell() if hasattr(upload, "tell") else 0
    upload.seek(0)
    head = upload.read(16)
    upload.seek(position)
    if not _looks_like(ext, head):
        raise ValidationError(f"This file is not a valid {ext.lstrip('.')} {kind}.")


def validate_image(upload) -> None:
    _validate(upload, IMAGE_EXTENSIONS, MAX_IMAGE_BYTES, "image")


def validate_audio(upload) -> None:
    _validate(upload, AUDIO_EXTENSIONS, MAX_AUDIO_BYTES, "audio file")


def _safe_name(instance, filename: str, kind: str) -> str:
    ext = _extension(filename)
    owner_id = instance.deck.owner_id if getattr(instance, "deck_id", None) else 0
    return f"notes/{owner_id}/{kind}-{uuid.uuid4().hex}{ext}"


def image_upload_to(instance, filename: str) -> str:
    return _safe_name(instance, filename, "image")


def audio_upload_to(instance, filename: str) -> str:
    return _safe_name(instance, filename, "audio")


def anki_media_name(content: bytes, stored_name: str) -> str:
    digest = hashlib.sha1(content).hexdigest()[:20]
    return f"deckbuilder-{digest}{_extension(stored_name)}"
