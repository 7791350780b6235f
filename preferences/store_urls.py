"""The store tablet and phone capture, under /store/ (see the delegated-consent issue)."""

from __future__ import annotations

from django.urls import path

from preferences import store_views as views

urlpatterns = [
    path("", views.store_home, name="store_home"),
    path("login/", views.store_login, name="store_login"),
    path("logout/", views.store_logout, name="store_logout"),
    path("capture/", views.capture, name="store_capture"),
    path("thanks/", views.thanks, name="store_thanks"),
    path("purchase/", views.purchase, name="store_purchase"),
    path("phone/", views.phone, name="store_phone"),
    path("phone/done/", views.phone_done, name="store_phone_done"),
    path("devices/", views.devices, name="store_devices"),
    path("devices/<int:pk>/revoke/", views.device_revoke, name="store_device_revoke"),
    path("staff/", views.staff, name="store_staff"),
    path("staff/<int:pk>/add-store/", views.staff_store_add, name="store_staff_add_store"),
    path("staff/<int:pk>/remove-store/", views.staff_store_remove, name="store_staff_remove_store"),
    path("staff/<int:pk>/deactivate/", views.staff_deactivate, name="store_staff_deactivate"),
    path("staff/<int:pk>/reactivate/", views.staff_reactivate, name="store_staff_reactivate"),
    path("staff/<int:pk>/password/", views.staff_password, name="store_staff_password"),
    path("password/", views.own_password, name="store_password"),
]
