"""The REST API's shared machinery: one error shape, permissions, pagination, parsing, schema."""
