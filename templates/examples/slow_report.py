"""Example template that takes a while: four steps, each sleeping a quarter of `seconds`."""

import time


def main(ctx):
    seconds = float(ctx.params.get("seconds", 60))
    for step in ("query", "aggregate", "render", "publish"):
        with ctx.task(step):
            ctx.log.info("%s: working for %.1f s", step, seconds / 4)
            time.sleep(seconds / 4)
