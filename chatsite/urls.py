from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from moderation import views as moderation_views
from moderation.admin import UsernameAutocompleteView
from rooms import sse, views

urlpatterns = [
    path("", views.room_list, name="room_list"),
    path("rooms/<slug:slug>/", views.room_page, name="room"),
    path("rooms/<slug:slug>/chat/", views.room_popout, name="room_popout"),
    path("rooms/<slug:slug>/overlay/", views.room_overlay, name="room_overlay"),
    path("api/rooms/<slug:slug>/emotes", views.room_emotes, name="room_emotes"),
    path("emotes/<int:emote_id>/<str:name>", views.emote_image, name="emote_image"),
    path("rooms/<slug:slug>/commands", sse.room_commands, name="room_commands"),
    path("api/rooms/<slug:slug>/events", views.room_events, name="room_events"),
    path("api/rooms/<slug:slug>/leaderboard", views.room_leaderboard, name="room_leaderboard"),
    path("api/rooms/<slug:slug>/moderation-log", moderation_views.room_moderation_log, name="room_moderation_log"),
    path("api/me/blocks", moderation_views.my_blocks, name="my_blocks"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("livez", views.livez, name="livez"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Before the admin's own URLs: the mute and ban forms' user search (moderation/admin.py).
    path(
        "admin/autocomplete/usernames/",
        admin.site.admin_view(UsernameAutocompleteView.as_view(admin_site=admin.site)),
        name="admin_username_autocomplete",
    ),
    path("admin/", admin.site.urls),
    path("api/rooms/<slug:slug>/me", views.my_standing, name="my_standing"),
    path("api/rooms/<slug:slug>/people/<int:user_id>", views.room_person, name="room_person"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", views.javascript_catalog, name="javascript-catalog"),
]
