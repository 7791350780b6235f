from __future__ import annotations

from django.urls import path

from preferences.views import data, dev_mail, preference_center, signup, unsubscribe

# These addresses live in emails already sent: never change them (PRODUCT.md, "Public URLs").
urlpatterns = [
    # The two most requested first.
    path("preferences/", preference_center.preferences, name="preferences"),
    path("subscribe/", signup.subscribe, name="subscribe"),
    path("", preference_center.home, name="home"),
    path("subscribe/done/", signup.subscribe_done, name="subscribe_done"),
    path("confirm/<str:token>/", signup.confirm, name="confirm"),
    path("confirm/<str:token>/resend/", signup.confirm_resend, name="confirm_resend"),
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", preference_center.preferences_open, name="preferences_open"),
    path("my-data/<str:token>/", data.data_download, name="data_download"),
    path("dev/mail/", dev_mail.dev_mail, name="dev_mail"),
    path("dev/mail/<str:name>/", dev_mail.dev_mail_message, name="dev_mail_message"),
]
