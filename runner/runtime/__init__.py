"""The runner: one run of a job, from its template to the recorded outcome.

Both ways in share one data model, `RunSpec` (spec.py), and one flow (runner.py):

- The local executor's worker claims the run and `prepare.run_prepare` writes the spec, template
  and parameters into a work folder; it then starts `python -m runner.runtime <id> --workdir DIR`,
  which starts the template's interpreter before it loads Django (the template does not wait for
  Django's start-up; its events wait in the pipe until the recorder is ready).
- In an AWS Batch container, `manage.py run_process <id>` claims the run itself, prepares the same
  work folder, and continues exactly like the local path.

`child_process.py` starts and watches the template's interpreter (limits, timeout, memory, events;
no Django), `recorder.py` writes what it reports through the services, `runner.py` ties them
together and turns SIGTERM/SIGINT into a recorded `cancelled` or `failed`. The runner records
results only: notifications and releasing queued runs are the control plane's
(processes.services.process_finalize).

Nothing here imports Django at module level: the fast path must not pay for it before the child
has started.
"""
