from django.urls import path

from decks import views

app_name = "decks"

urlpatterns = [
    path("", views.deck_list, name="list"),
    path("<int:deck_id>/", views.deck_detail, name="detail"),
    path("<int:deck_id>/edit/", views.deck_edit, name="edit"),
    path("<int:deck_id>/delete/", views.deck_delete, name="delete"),
    path("<int:deck_id>/notes/new/", views.note_create, name="note_create"),
    path("<int:deck_id>/import/", views.csv_import, name="csv_import"),
    path("<int:deck_id>/send/", views.deck_push, name="push"),
    path("notes/<int:note_id>/edit/", views.note_edit, name="note_edit"),
    path("notes/<int:note_id>/delete/", views.note_delete, name="note_delete"),
    path("notes/<int:note_id>/<str:kind>/", views.note_media, name="note_media"),
]
