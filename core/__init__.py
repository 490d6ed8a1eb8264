"""btd.core: the minimal core (see docs/ARCHITECTURE.md)."""
