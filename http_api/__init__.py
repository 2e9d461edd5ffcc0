"""The HTTP front door: a stateless service that submits bills and reads their results."""
