from django.urls import path

from ankisync import views

app_name = "ankisync"

urlpatterns = [
    path("", views.connect, name="connect"),
]
