"""The shared hold book (``services.ports.HoldBook``): in memory or in Redis."""
