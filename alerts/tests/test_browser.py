"""A person in a browser: make a webhook channel in the admin, and after a failed run read the
delivery and its attempts (a receiver error, then success) in the admin."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.models import Channel, ChannelKind, Delivery
from alerts.tasks import send_due_deliveries
from alerts.tests.receiver import Receiver
from jobs.models import Job
from processes import services as process_services
from processes.models import ProcessStatus, Trigger
from tests.support import admin_sign_in
from tests.test_browser_admin import browser_page  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_admin_makes_a_webhook_channel_and_reads_the_delivery_log(
    live_server, django_user_model, browser_page, settings, celery_eager, no_dispatch, monkeypatch, tmp_path,  # noqa: F811
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright keeps an event loop in this thread
    settings.JTB_ALERT_GROUP_SECONDS = 0
    django_user_model.objects.create_superuser("ada", "ada@example.com", "correct horse battery")
    page = browser_page
    admin_sign_in(page, live_server.url, "ada", "correct horse battery")
    page.wait_for_selector("text=Operations console")

    with Receiver(statuses=[500]) as receiver:
        page.goto(f"{live_server.url}/admin/alerts/channel/add/")
        page.fill("#id_name", "Ops webhook")
        page.select_option("#id_kind", "webhook")
        page.fill("#id_url", receiver.url + "/jtb")
        page.check("#id_is_default")
        page.click("input[name=_save]")
        page.wait_for_selector("text=was added successfully")
        channel = Channel.objects.get(name="Ops webhook")
        assert (channel.kind, channel.is_default, len(channel.secret) >= 32) == (ChannelKind.WEBHOOK, True, True)

        job = Job.objects.create(name="nightly export", template="examples/hello.py")
        process = process_services.process_start(job=job, trigger=Trigger.MANUAL)
        process_services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED,
                                        failure_reason="KeyError: 'id'", finalize_later=False)
        process_services.process_finalize(process_id=process.pk)
        send_due_deliveries()
    assert len(receiver.requests) == 2

    delivery = Delivery.objects.get()
    page.goto(f"{live_server.url}/admin/alerts/delivery/")
    page.click(f"a[href$='/admin/alerts/delivery/{delivery.pk}/change/']")
    page.wait_for_selector("text=HTTP 500")
    body = page.inner_text("body")
    assert "Ops webhook" in body and "Sent" in body
    assert "Job: nightly export" in body
    page.screenshot(path=str(tmp_path / f"delivery-{timezone.now():%H%M%S}.png"), full_page=True)
    print("screenshot:", tmp_path)
