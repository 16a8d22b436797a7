"""Empty rollup tables: new tables, so no lock on the history. Runs finalized from now on are
counted as they end; existing installs fill them from the history with `manage.py
rebuild_rollups` (batched, one day per transaction), not here: a migration must not read a
million-row history inline."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0003_job_schedule_history'),
        ('processes', '0009_process_job_version'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProcessHourly',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField(verbose_name='hour (UTC)')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('submitted', 'Submitted'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], max_length=10, verbose_name='final status')),
                ('trigger', models.CharField(choices=[('manual', 'Manual'), ('api', 'API'), ('schedule', 'Schedule'), ('rerun', 'Rerun')], max_length=10, verbose_name='trigger')),
                ('runs', models.PositiveIntegerField(default=0, verbose_name='runs finished')),
                ('timed_runs', models.PositiveIntegerField(default=0, verbose_name='runs that started')),
                ('duration_seconds', models.FloatField(default=0, verbose_name='total run time (s)')),
                ('longest_seconds', models.FloatField(default=0, verbose_name='longest run time (s)')),
                ('busy_seconds', models.FloatField(default=0, verbose_name='run time inside the hour (s)')),
                ('estimated_cost', models.DecimalField(decimal_places=6, default=0, max_digits=20, verbose_name='estimated cost')),
                ('job', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='jobs.job')),
            ],
            options={
                'verbose_name': 'hourly run count',
                'indexes': [models.Index(fields=['job', 'hour'], name='process_hourly_job_hour_idx')],
                'constraints': [models.UniqueConstraint(fields=('hour', 'job', 'status', 'trigger'), name='process_hourly_one_row')],
            },
        ),
        migrations.CreateModel(
            name='ProcessTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('submitted', 'Submitted'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], max_length=10, verbose_name='final status')),
                ('trigger', models.CharField(choices=[('manual', 'Manual'), ('api', 'API'), ('schedule', 'Schedule'), ('rerun', 'Rerun')], max_length=10, verbose_name='trigger')),
                ('runs', models.PositiveBigIntegerField(default=0, verbose_name='runs finished')),
                ('timed_runs', models.PositiveBigIntegerField(default=0, verbose_name='runs that ran')),
                ('duration_seconds', models.FloatField(default=0, verbose_name='total run time (s)')),
                ('waited_runs', models.PositiveBigIntegerField(default=0, verbose_name='runs that started')),
                ('wait_seconds', models.FloatField(default=0, verbose_name='total wait to start (s)')),
                ('duration_le_1', models.PositiveBigIntegerField(default=0, verbose_name='at most 1 s')),
                ('duration_le_5', models.PositiveBigIntegerField(default=0, verbose_name='at most 5 s')),
                ('duration_le_10', models.PositiveBigIntegerField(default=0, verbose_name='at most 10 s')),
                ('duration_le_30', models.PositiveBigIntegerField(default=0, verbose_name='at most 30 s')),
                ('duration_le_60', models.PositiveBigIntegerField(default=0, verbose_name='at most 60 s')),
                ('duration_le_120', models.PositiveBigIntegerField(default=0, verbose_name='at most 120 s')),
                ('duration_le_300', models.PositiveBigIntegerField(default=0, verbose_name='at most 300 s')),
                ('duration_le_600', models.PositiveBigIntegerField(default=0, verbose_name='at most 600 s')),
                ('duration_le_1800', models.PositiveBigIntegerField(default=0, verbose_name='at most 1800 s')),
                ('duration_le_3600', models.PositiveBigIntegerField(default=0, verbose_name='at most 3600 s')),
                ('duration_le_7200', models.PositiveBigIntegerField(default=0, verbose_name='at most 7200 s')),
                ('duration_le_14400', models.PositiveBigIntegerField(default=0, verbose_name='at most 14400 s')),
                ('duration_le_43200', models.PositiveBigIntegerField(default=0, verbose_name='at most 43200 s')),
                ('duration_le_86400', models.PositiveBigIntegerField(default=0, verbose_name='at most 86400 s')),
                ('wait_le_1', models.PositiveBigIntegerField(default=0, verbose_name='at most 1 s')),
                ('wait_le_5', models.PositiveBigIntegerField(default=0, verbose_name='at most 5 s')),
                ('wait_le_10', models.PositiveBigIntegerField(default=0, verbose_name='at most 10 s')),
                ('wait_le_30', models.PositiveBigIntegerField(default=0, verbose_name='at most 30 s')),
                ('wait_le_60', models.PositiveBigIntegerField(default=0, verbose_name='at most 60 s')),
                ('wait_le_120', models.PositiveBigIntegerField(default=0, verbose_name='at most 120 s')),
                ('wait_le_300', models.PositiveBigIntegerField(default=0, verbose_name='at most 300 s')),
                ('wait_le_600', models.PositiveBigIntegerField(default=0, verbose_name='at most 600 s')),
                ('wait_le_1800', models.PositiveBigIntegerField(default=0, verbose_name='at most 1800 s')),
                ('wait_le_3600', models.PositiveBigIntegerField(default=0, verbose_name='at most 3600 s')),
                ('wait_le_7200', models.PositiveBigIntegerField(default=0, verbose_name='at most 7200 s')),
                ('wait_le_21600', models.PositiveBigIntegerField(default=0, verbose_name='at most 21600 s')),
                ('job', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='jobs.job')),
            ],
            options={
                'verbose_name': 'run total',
                'constraints': [models.UniqueConstraint(fields=('job', 'status', 'trigger'), name='process_total_one_row')],
            },
        ),
    ]
