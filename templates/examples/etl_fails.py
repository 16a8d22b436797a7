"""Example template whose second step fails: shows a failed task, its traceback and a step never started."""


def main(ctx):
    with ctx.task("extract"):
        rows = [{"id": 1, "amount": "12.50"}, {"id": 2, "amount": "oops"}]
        ctx.log.info("extracted %d rows", len(rows))
    with ctx.task("transform"):
        total = sum(float(row["amount"]) for row in rows)
    with ctx.task("load"):
        ctx.log.info("loading total %s", total)
