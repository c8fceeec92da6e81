"""The HTTP edge: the route table and the handlers that turn HTTP into calls of the relay."""

__all__: list[str] = []
