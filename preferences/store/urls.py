"""The store tablet and phone capture, under /store/ (see the delegated-consent issue)."""

from __future__ import annotations

from django.urls import path

from preferences.store.views import access, management, phone, purchase, tablet

urlpatterns = [
    path("", tablet.store_home, name="store_home"),
    path("login/", access.store_login, name="store_login"),
    path("logout/", access.store_logout, name="store_logout"),
    path("capture/", tablet.capture, name="store_capture"),
    path("thanks/", tablet.thanks, name="store_thanks"),
    path("purchase/", purchase.purchase, name="store_purchase"),
    path("phone/", phone.phone, name="store_phone"),
    path("phone/done/", phone.phone_done, name="store_phone_done"),
    path("devices/", management.devices, name="store_devices"),
    path("devices/<int:pk>/revoke/", management.device_revoke, name="store_device_revoke"),
    path("staff/", management.staff, name="store_staff"),
    path("staff/<int:pk>/add-store/", management.staff_store_add, name="store_staff_add_store"),
    path(
        "staff/<int:pk>/remove-store/",
        management.staff_store_remove,
        name="store_staff_remove_store",
    ),
    path("staff/<int:pk>/deactivate/", management.staff_deactivate, name="store_staff_deactivate"),
    path("staff/<int:pk>/reactivate/", management.staff_reactivate, name="store_staff_reactivate"),
    path("staff/<int:pk>/password/", management.staff_password, name="store_staff_password"),
    path("password/", management.own_password, name="store_password"),
]
