"""Example template: greets someone in two steps. Parameters: name (default "world")."""


def main(ctx):
    with ctx.task("prepare"):
        name = ctx.params.get("name", "world")
        ctx.log.info("preparing a greeting for %s", name)
    with ctx.task("greet"):
        print(f"Hello, {name}!")
