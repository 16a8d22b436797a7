"""Alerts in the admin: channels are made and checked there; alerts and deliveries are read there."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import (
    Alert,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    JobAlertRule,
)

pytestmark = pytest.mark.django_db


def channel_form(**fields) -> dict:
    return {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/jtb", "emails": "", "secret": "abc",
            "enabled": "on", **fields}


def test_webhook_channel_is_created_with_its_secret(admin_client):
    response = admin_client.post(reverse("admin:alerts_channel_add"), channel_form(is_default="on"))
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert (channel.kind, channel.url, channel.secret, channel.is_default) == (
        "webhook", "https://hooks.example.com/jtb", "abc", True
    )


def test_new_channel_gets_a_generated_secret():
    assert len(Channel.objects.create(name="x", kind=ChannelKind.WEBHOOK, url="https://h.example.com").secret) >= 32


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"kind": "webhook", "url": ""}, "url", "needs the URL"),
    ({"kind": "email", "url": "", "emails": ""}, "emails", "at least one address"),
    ({"kind": "email", "url": "", "emails": "not-an-email"}, "emails", "not a valid e-mail address"),
])
def test_channel_form_explains_what_is_missing(admin_client, fields, field, message):
    response = admin_client.post(reverse("admin:alerts_channel_add"), channel_form(**fields))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert not Channel.objects.exists()


def test_email_channel_takes_one_address_per_line(admin_client):
    response = admin_client.post(reverse("admin:alerts_channel_add"),
                                 channel_form(kind="email", url="", emails="a@example.com\nb@example.com"))
    assert response.status_code == 302
    assert Channel.objects.get().emails == ["a@example.com", "b@example.com"]


def test_delivery_page_shows_its_alerts_and_every_attempt(admin_client, make_job):
    job = make_job(name="nightly")
    alert = Alert.objects.create(event=Event.FAILED, job=job, summary="Job: nightly\nProcess: #1")
    delivery = Delivery.objects.create(channel_key="channel:9", channel_name="ops webhook", kind=ChannelKind.WEBHOOK,
                                       job=job, event=Event.FAILED, status=DeliveryStatus.SENT,
                                       send_after=timezone.now(), attempts=2)
    delivery.alerts.add(alert)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, ok=False, status_code=500, error="HTTP 500: down")
    DeliveryAttempt.objects.create(delivery=delivery, number=2, ok=True, status_code=200)
    page = admin_client.get(reverse("admin:alerts_delivery_change", args=[delivery.pk])).content.decode()
    assert "HTTP 500: down" in page and "Job: nightly" in page
    listing = admin_client.get(reverse("admin:alerts_delivery_changelist")).content.decode()
    assert "ops webhook" in listing
    alert_page = admin_client.get(reverse("admin:alerts_alert_change", args=[alert.pk])).content.decode()
    assert f"#{delivery.pk} ops webhook (Sent)" in alert_page


def test_delivery_list_costs_the_same_queries_for_many_rows(admin_client, make_job, django_assert_max_num_queries):
    job = make_job()
    for number in range(30):
        delivery = Delivery.objects.create(channel_key=f"channel:{number}", channel_name=f"c{number}",
                                           kind=ChannelKind.SLACK, job=job, event=Event.SLOW,
                                           status=DeliveryStatus.FAILED, send_after=timezone.now())
        delivery.alerts.add(Alert.objects.create(event=Event.SLOW, job=job, summary="slow"))
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:alerts_delivery_changelist")).status_code == 200
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:alerts_alert_changelist")).status_code == 200


def test_alert_rule_is_chosen_per_job_and_event(admin_client, make_job):
    job = make_job()
    channel = Channel.objects.create(name="team", kind=ChannelKind.SLACK, url="https://hooks.slack.com/x")
    response = admin_client.post(reverse("admin:alerts_jobalertrule_add"),
                                 {"job": job.pk, "event": "recovered", "channel": channel.pk})
    assert response.status_code == 302
    assert list(JobAlertRule.objects.values_list("job_id", "event", "channel_id")) == [(job.pk, "recovered", channel.pk)]
    assert admin_client.get(reverse("admin:alerts_jobalertpolicy_add")).status_code == 200
