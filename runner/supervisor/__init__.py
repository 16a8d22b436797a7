"""The supervisor behind `manage.py run_all`: keeps the web server, workers and beat running on one
machine, restarts what dies, stops every process group it started, and keeps the terminal quiet."""
