"""What the pinned upstream services' APIs are, as the kit reads them from their sources: routes and
the media types they are registered for. Standard library only and free of the kit's other layers, so
the configure Jobs (mounted into a stock Python) and the smoke checks share one description without
depending on each other."""
