"""The partial index of rare task statuses now covers `cancelled` too (the task list's status filter).

Not atomic: on PostgreSQL the index is rebuilt CONCURRENTLY (jobtarget_batch.online_migrations).
"""

from django.db import migrations, models

from jobtarget_batch.online_migrations import AddIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('processes', '0007_task_cancelled'),
    ]

    operations = [
        RemoveIndexOnline(
            model_name='task',
            name='task_unsuccessful_newest_idx',
        ),
        AddIndexOnline(
            model_name='task',
            index=models.Index(condition=models.Q(('status__in', ['running', 'failed', 'cancelled'])),
                               fields=['status', '-id'], name='task_unsuccessful_newest_idx'),
        ),
    ]
