"""Indexes for a history of millions of runs (issue 12), changed without locking the tables.

Not atomic: on PostgreSQL every index is built and dropped CONCURRENTLY, which cannot run in a
transaction (jobtarget_batch.online_migrations); elsewhere the operations are the plain ones.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from jobtarget_batch.online_migrations import AddIndexOnline, DropForeignKeyIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('jobs', '0002_schedule_driver_window_next_fire'),
        ('processes', '0004_idempotency_record'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # New indexes first, so no query loses its index in between.
        AddIndexOnline(
            model_name='process',
            index=models.Index(fields=['job', '-id'], name='process_job_newest_idx'),
        ),
        AddIndexOnline(
            model_name='process',
            index=models.Index(fields=['trigger', '-id'], name='process_trigger_newest_idx'),
        ),
        AddIndexOnline(
            model_name='process',
            index=models.Index(fields=['triggered_by', '-id'], name='process_user_newest_idx'),
        ),
        AddIndexOnline(
            model_name='process',
            index=models.Index(fields=['external_id'], name='process_external_id_idx'),
        ),
        AddIndexOnline(
            model_name='process',
            index=models.Index(fields=['-created_at', '-id'], name='process_created_newest_idx'),
        ),
        AddIndexOnline(
            model_name='task',
            index=models.Index(condition=models.Q(('status__in', ['running', 'failed'])), fields=['status', '-id'],
                               name='task_unsuccessful_newest_idx'),
        ),
        RemoveIndexOnline(
            model_name='process',
            name='process_created_idx',
        ),
        DropForeignKeyIndexOnline(
            model_name='process',
            name='job',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='processes', to='jobs.job', verbose_name='job'),
        ),
        DropForeignKeyIndexOnline(
            model_name='process',
            name='triggered_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name='+',
                                    to=settings.AUTH_USER_MODEL, verbose_name='triggered by'),
        ),
        DropForeignKeyIndexOnline(
            model_name='task',
            name='process',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='tasks', to='processes.process', verbose_name='process'),
        ),
    ]
