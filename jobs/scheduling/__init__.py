"""What fires schedules: the beat tick (`tick`), EventBridge Scheduler (`eventbridge`,
`aws_cron`), and the time arithmetic both share (`times`).

Every run a schedule starts goes through `processes.services` with `(schedule, scheduled_for)`,
which the database keeps unique, so a second beat, a redelivered message or an at-least-once
EventBridge delivery starts nothing twice.
"""
