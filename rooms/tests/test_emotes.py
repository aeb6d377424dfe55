"""Room emotes: uploads in the admin (only real PNG, GIF or WebP within the limits),
how the images are served, and the `emotes` a message carries."""

import io
import os
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from conftest import make_user
from moderation.services import do_delete_message
from rooms.models import Emote, RoomEvent
from rooms.services import do_create_room, do_send_message
from rooms.services.emotes import check_create_emote, emote_url
from tests.support.schema import validate_event

ADD_URL = reverse("admin:rooms_emote_add")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (28, 28)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA" if fmt != "GIF" else "P", size, 120).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(name: str, content: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def add_emote(room, host, code=":pog:", fmt="PNG"):
    return check_create_emote(host, room_id=room.pk, code=code, image=upload(f"x.{fmt.lower()}", image_bytes(fmt)))


def post_upload(client, room, code, file):
    return client.post(ADD_URL, {"room": room.pk, "code": code, "image": file})


def form_errors(response) -> dict:
    assert response.status_code == 200, "the upload should have been refused with the form shown again"
    return response.context["adminform"].form.errors


@pytest.fixture
def as_host(client, host, room):
    client.force_login(host)
    return client


# Uploads in the admin.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [
        ("PNG", "image/png", ".png"),
        ("GIF", "image/gif", ".gif"),
        ("WEBP", "image/webp", ".webp"),
    ],
)
def test_host_uploads_an_emote_stored_under_media_root_with_the_sniffed_type(
    as_host, host, room, media, fmt, content_type, extension
):
    # The name and the declared type say JPEG: the bytes decide.
    response = post_upload(as_host, room, ":pog:", upload("photo.jpeg", image_bytes(fmt), "image/jpeg"))

    assert response.status_code == 302, response.content
    emote = Emote.objects.get()
    assert (emote.room, emote.code, emote.content_type, emote.width, emote.height) == (
        room,
        ":pog:",
        content_type,
        28,
        28,
    )
    assert emote.created_by == host
    stored = Path(media) / emote.image.name
    assert stored.is_file() and stored.suffix == extension
    assert stored.parent == Path(media) / "emotes" / str(room.pk)


@pytest.mark.django_db
def test_a_code_without_colons_is_stored_with_them(as_host, room):
    post_upload(as_host, room, "GG_2", upload("gg.png", image_bytes()))

    assert Emote.objects.get().code == ":GG_2:"


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "content_type", "says"),
    [
        ("pog.svg", SVG, "image/svg+xml", "PNG, GIF or WebP"),
        ("pog.png", b"this is text, not an image at all\n" * 4, "image/png", "PNG, GIF or WebP"),
        ("pog.png", b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8, "image/png", "not a readable PNG"),
        ("pog.png", image_bytes(size=(257, 20)), "image/png", "at most 256×256 pixels; this one is 257×20"),
    ],
)
def test_bad_emote_files_are_refused_with_a_form_error(as_host, room, media, name, content, content_type, says):
    response = post_upload(as_host, room, ":pog:", upload(name, content, content_type))

    [error] = form_errors(response)["image"]
    assert says in error
    assert not Emote.objects.exists()
    assert not (Path(media) / "emotes").exists()


@pytest.mark.django_db
def test_an_emote_file_over_the_size_limit_is_refused(as_host, room, settings):
    settings.CHAT_EMOTE_MAX_BYTES = 1024
    buffer = io.BytesIO()
    # Noise does not compress: well over the limit, though only 64×64.
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buffer, format="PNG")
    big = buffer.getvalue()
    assert len(big) > 1024

    [error] = form_errors(post_upload(as_host, room, ":big:", upload("big.png", big)))["image"]

    assert "at most 1 KiB" in error
    assert not Emote.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("code", [":p:", ":pog!:", ":" + "x" * 33 + ":", "<b>", ":po g:"])
def test_bad_emote_codes_are_refused_with_a_form_error(as_host, room, code):
    [error] = form_errors(post_upload(as_host, room, code, upload("pog.png", image_bytes())))["code"]

    assert "2 to 32 letters" in error


@pytest.mark.django_db
def test_a_code_a_room_has_already_is_refused(as_host, host, room):
    add_emote(room, host)

    errors = form_errors(post_upload(as_host, room, ":pog:", upload("pog.png", image_bytes())))

    assert "already exists" in str(errors)
    assert Emote.objects.count() == 1


@pytest.mark.django_db
def test_a_host_cannot_add_emotes_to_someone_elses_room(as_host, room):
    other = do_create_room(None, slug="other", title="Other", host_username=make_user("olga").username)

    errors = form_errors(post_upload(as_host, other, ":pog:", upload("pog.png", image_bytes())))

    assert "room" in errors
    assert not Emote.objects.exists()


@pytest.mark.django_db
def test_a_host_sees_and_removes_only_their_rooms_emotes(
    as_host, host, room, media, django_capture_on_commit_callbacks
):
    mine = add_emote(room, host)
    other_host = make_user("olga")
    other = do_create_room(None, slug="other", title="Other", host_username=other_host.username)
    theirs = add_emote(other, other_host, code=":theirs:")

    listing = as_host.get(reverse("admin:rooms_emote_changelist")).content.decode()
    assert ":pog:" in listing and ":theirs:" not in listing
    assert as_host.get(reverse("admin:rooms_emote_delete", args=[theirs.pk])).status_code in (302, 403, 404)

    with_file = Path(media) / mine.image.name
    with django_capture_on_commit_callbacks(execute=True):
        response = as_host.post(reverse("admin:rooms_emote_delete", args=[mine.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert list(Emote.objects.all()) == [theirs]
    assert not with_file.exists()


# Serving.


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("GIF", "image/gif")])
def test_an_emote_is_served_with_its_stored_type_and_nosniff(client, host, room, fmt, content_type):
    emote = add_emote(room, host, fmt=fmt)

    response = client.get(emote_url(emote))

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response.content == Path(emote.image.path).read_bytes()


@pytest.mark.django_db
def test_an_emote_url_with_another_file_name_is_404(client, host, room):
    emote = add_emote(room, host)

    assert client.get(f"/emotes/{emote.pk}/other.png").status_code == 404
    assert client.get("/emotes/999/x.png").status_code == 404


@pytest.mark.django_db
def test_the_emotes_api_lists_a_rooms_emotes_for_anyone(client, host, room):
    pog = add_emote(room, host)
    gg = add_emote(room, host, code=":gg:")

    response = client.get(f"/api/rooms/{room.slug}/emotes")

    assert response.json() == {
        "emotes": [{"code": ":gg:", "url": emote_url(gg)}, {"code": ":pog:", "url": emote_url(pog)}]
    }
    assert client.get("/api/rooms/nope/emotes").status_code == 404


# Messages.


@pytest.mark.django_db
def test_a_message_carries_the_emotes_it_uses_in_order_of_first_use(
    host, room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    pog = add_emote(room, host)
    gg = add_emote(room, host, code=":gg:")

    with django_capture_on_commit_callbacks(execute=True):
        do_send_message(viewer, room_id=room.pk, body="gg:gg::pog: :nope: :pog:")

    [event] = broadcasts
    assert event["emotes"] == [{"code": ":gg:", "url": emote_url(gg)}, {"code": ":pog:", "url": emote_url(pog)}]


@pytest.mark.django_db
def test_another_rooms_emote_is_text_here(host, room, viewer):
    other_host = make_user("olga")
    other = do_create_room(None, slug="other", title="Other", host_username=other_host.username)
    add_emote(other, other_host)

    message = do_send_message(viewer, room_id=room.pk, body=":pog:")

    assert RoomEvent.objects.get(room=room, seq=message.seq).data["emotes"] == []


@pytest.mark.django_db
def test_a_deleted_message_keeps_no_emotes(host, room, viewer):
    add_emote(room, host)
    message = do_send_message(viewer, room_id=room.pk, body=":pog: secret")

    do_delete_message(host, message_id=message.pk)

    data = RoomEvent.objects.get(room=room, seq=message.seq).data
    assert (data["body"], data["emotes"]) == ("", [])
    validate_event({"type": "message", "seq": message.seq, **data})


@pytest.mark.django_db(transaction=True)
async def test_emotes_travel_with_a_message_over_the_socket(connect, room, host, viewer, outsider):
    pog = await database_sync_to_async(add_emote)(room, host)
    sender = await connect(room, viewer)
    other = await connect(room, outsider)

    await sender.send({"type": "send", "client_id": "e-1", "body": "nice :pog:"})

    event = await other.expect("message")
    assert (event["body"], event["emotes"]) == ("nice :pog:", [{"code": ":pog:", "url": emote_url(pog)}])
