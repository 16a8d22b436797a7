"""URLs of the REST API (see issue: REST API). Kept apart so the API can grow on its own."""

urlpatterns: list = []
