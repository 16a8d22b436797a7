"""Alerts: tell people when runs fail, recover, drag, wait, or a schedule stops firing."""
