"""Event Grid events delivered through a Storage queue: parsing, storage, queue polling."""
